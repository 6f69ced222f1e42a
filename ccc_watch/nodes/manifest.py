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
from typing import Any

import blake3
import pyarrow as pa
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


def build_manifest(cfg: Config, store: Store, *, now: float | None = None) -> Manifest:
    """This node's manifest from ONE snapshot of the store: its rows sorted by key, its
    header carrying that snapshot's chain head."""
    node = node_name(cfg)
    private = cfg.manifest_paths == "private"
    names = ROW_SCHEMA.names
    columns: dict[str, list[Any]] = {name: [] for name in names}
    keys, paths, ids, digests, sizes, mtimes, types, levels = (columns[n] for n in names)
    left_out = 0
    key: bytes | None = None
    asked = False  # the vault's key is looked up once, at the first SECRET record
    with store.snapshot() as snap:
        vault_id = str(snap.meta_value("vault_id"))
        seq, head_hash = snap.chain_head()
        for rec in snap.records():
            level = rec.get("classification")
            path = rec["path"]
            if level == SECRET and private:
                if not asked:
                    key, asked = _digest_key(cfg, vault_id), True
                if key is None:
                    left_out += 1
                    continue
                # Only the digest, the content's blake3 and the level leave the device.
                keys.append(secret_key_of(path, key))
                digests.append(rec.get("blake3"))
                levels.append(level)
                for column in (paths, ids, sizes, mtimes, types):
                    column.append(None)
                continue
            keys.append(path)
            paths.append(path)
            ids.append(rec.get("id"))
            digests.append(rec.get("blake3"))
            sizes.append(rec.get("size"))
            mtimes.append(rec.get("mtime_ns"))
            types.append(rec.get("record_type"))
            levels.append(level)
    if left_out:
        logger.warning(
            "manifest: {} SECRET record(s) left out: no key for vault {} to digest their "
            'paths (see README "Keys"), and manifest_paths = private never publishes them',
            left_out,
            vault_id,
        )
    # Sorted by key as Arrow orders strings (by their UTF-8 bytes), whatever the store's
    # order: a digest key sorts elsewhere than its path did.
    table = pa.table(columns, schema=ROW_SCHEMA).sort_by("key")
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
