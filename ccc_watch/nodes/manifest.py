"""Build this node's manifest from one read snapshot of the store.

What each classification level publishes (README "Headquarters and outposts"):

- PUBLIC, INTERNAL, CONFIDENTIAL: every ROW_SCHEMA field (path, id, blake3, size,
  mtime_ns, record_type, classification) and nothing else: no title, tag, link or text
  (the ROW_SCHEMA has no place for them).
- SECRET under manifest_paths = "private" (the default): key "secret:" + a keyed
  blake3 of the path (the key derived from the vault's key, so nobody without it can
  confirm a guessed name), the content's blake3 and the classification; path, id,
  size, mtime_ns and record_type are null (an id or a record type may be made from the
  name; a size or an mtime would tell more than the issue allows). With no key
  for the vault, SECRET records are left out entirely, with one WARNING: privacy fails
  closed.
- SECRET under manifest_paths = "plain": as the other levels.
"""

from __future__ import annotations

import time

import blake3
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from loguru import logger

from ccc_watch.config import Config
from ccc_watch.nodes.carrier import ROW_SCHEMA, Manifest, ManifestHeader
from ccc_watch.nodes.identity import node_name
from ccc_watch.store import Store

SECRET = "SECRET"
SECRET_PREFIX = "secret:"
# The blake3 key-derivation context of the path digest's key (never change it: every
# node must derive the same key from the same vault key).
DIGEST_CONTEXT = "ccc-watch 2026-11 node manifest SECRET path digest"


def digest_key(vault_key: bytes) -> bytes:
    """The key of SECRET path digests, derived from the vault's key."""
    return blake3.blake3(vault_key, derive_key_context=DIGEST_CONTEXT).digest()


def secret_key_of(path: str, key: bytes) -> str:
    """The manifest key of a SECRET record at path."""
    return (
        SECRET_PREFIX + blake3.blake3(path.encode("utf-8", "surrogateescape"), key=key).hexdigest()
    )


def _digest_key(cfg: Config, vault_id: str) -> bytes | None:
    from ccc_watch.keys import NoKeyError, key_for

    try:
        return digest_key(key_for(cfg, vault_id))
    except NoKeyError:
        return None


# The record fields a manifest row is made of: ROW_SCHEMA less its key.
FIELDS = pa.schema(list(ROW_SCHEMA)[1:])


def _from_mirror(cfg: Config, store: Store, head: int) -> pa.Table | None:
    """The records' FIELDS from the mirror when it reflects exactly the store's snapshot
    at head (its watermark is head, and it is this store's), else None. A column store
    hands over 100,000 rows' small fields in tens of milliseconds, where the store has
    to parse every record (bench/nodes_bench.py)."""
    from ccc_watch.mirror.mirror import Mirror, MirrorError

    mirror = Mirror(cfg.resolved_data_dir())
    if not mirror.path.exists():
        return None
    try:
        con = mirror.connect(retry_seconds=0.5)
    except (MirrorError, duckdb.Error):
        return None  # held by a flush, or unreadable: the store answers
    try:
        state = mirror.state(con)
        if state is None or state != (head, store.meta.get("store_id")):
            return None
        table = con.sql(f"SELECT {', '.join(FIELDS.names)} FROM notes").to_arrow_table()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return table.cast(FIELDS)


def build_manifest(cfg: Config, store: Store, *, now: float | None = None) -> Manifest:
    """This node's manifest from ONE snapshot of the store: its rows sorted by key, its
    header carrying that snapshot's chain head. The rows' fields come from the mirror
    when it is at that snapshot, else from the store's records."""
    node = node_name(cfg)
    with store.snapshot() as snap:
        vault_id = str(snap.meta_value("vault_id"))
        seq, head_hash = snap.chain_head()
        fields = _from_mirror(cfg, store, snap.head())
        if fields is None:
            fields = pa.Table.from_pylist(list(snap.records(FIELDS.names[1:])), schema=FIELDS)
    plain = fields
    hidden = ROW_SCHEMA.empty_table()
    left_out = 0
    if cfg.manifest_paths == "private":
        secret = pc.fill_null(pc.equal(fields.column("classification"), SECRET), False)
        if pc.any(secret).as_py():
            plain = fields.filter(pc.invert(secret))
            secrets = fields.filter(secret)
            key = _digest_key(cfg, vault_id)
            if key is None:
                left_out = secrets.num_rows
            else:
                # Only the digest, the content's blake3 and the level leave the device.
                n = secrets.num_rows
                hidden = pa.table(
                    {
                        "key": [secret_key_of(p, key) for p in secrets.column("path").to_pylist()],
                        **{f.name: pa.nulls(n, f.type) for f in FIELDS},
                        "blake3": secrets.column("blake3"),
                        "classification": secrets.column("classification"),
                    },
                    schema=ROW_SCHEMA,
                )
    plain = plain.add_column(0, ROW_SCHEMA.field("key"), plain.column("path"))
    if left_out:
        logger.warning(
            "manifest: {} SECRET record(s) left out: no key for vault {} to digest their "
            'paths (see README "Keys"), and manifest_paths = private never publishes them',
            left_out,
            vault_id,
        )
    # Sorted by key as Arrow orders strings (by their UTF-8 bytes), whatever the store's
    # order: a digest key sorts elsewhere than its path did.
    table = pa.concat_tables([plain, hidden]).sort_by("key")
    header = ManifestHeader(
        node=node,
        role=cfg.role,
        vault_id=vault_id,
        written_at=time.time() if now is None else now,
        head_seq=seq,
        head_hash=head_hash,
        records=table.num_rows,
    )
    return Manifest(header, table)
