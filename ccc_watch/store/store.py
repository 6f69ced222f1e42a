"""The Store: records keyed by vault path, an append-only changelog, and meta.

Every change is an idempotent upsert, delete or move. An operation that would not
change a record writes nothing and appends no changelog entry, so the watcher, the
scanner and `rebuild` can all send the same operation as often as they like.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ccc_watch.errors import StoreCorruptError, StoreError
from ccc_watch.store import codec
from ccc_watch.store.backend import TABLES, Backend, Key, Reader, Writer, iter_scan
from ccc_watch.store.chain import ANCHOR, GENESIS, TIP, anchor_of, link
from ccc_watch.vault.paths import vault_key

# 2: changelog entries carry the audit chain's hash (see chain.py). A store of schema 1
# is read as it is (its entries unchained) and chained in place by the first writable
# open.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

Record = dict[str, Any]

# The meta value that says a note became private and its old text may still be in the
# free pages of the store's or the mirror's files: set before the change is applied,
# cleared once both are scrubbed, so a crash in between leaves it set.
SCRUB_DUE = "scrub_due"

# Fields that change on every indexing without the file changing; an upsert that
# differs only in these is a no-op.
VOLATILE_FIELDS = frozenset({"indexed_at"})
# A CONFIDENTIAL record's sealed text (index/seal.py) is sealed with a fresh nonce each
# time: two sealings are the same when they name the same key and text digest.
SEALED_FIELD = "sealed"
_SEALED_IDENTITY = ("key_id", "digest")


def comparable(record: Mapping[str, Any]) -> dict[str, Any]:
    """What decides whether two records are the same: every field but the volatile
    ones, a sealed field by its key id and text digest."""
    out = {k: v for k, v in record.items() if k not in VOLATILE_FIELDS}
    sealed = out.get(SEALED_FIELD)
    if isinstance(sealed, Mapping):
        out[SEALED_FIELD] = {k: sealed.get(k) for k in _SEALED_IDENTITY}
    return out


@dataclass(frozen=True)
class Upsert:
    """Insert or replace the record at record['path'].

    For a new store that carries an old one's history forward (rebuild), before is the
    blake3 that history last gave the path (its entry's blake3_before when the store
    holds no record there), and logged=False stores a record the history already
    describes without a new entry.
    """

    record: Mapping[str, Any]
    cause: str = "scan"
    before: str | None = None
    logged: bool = True
    # The whole record as codec.encode gives it, made where the record was (a rebuild's
    # worker process): record then needs only its path (canonical), id and blake3.
    encoded: bytes | None = None


@dataclass(frozen=True)
class Delete:
    """Forget the record at path."""

    path: str
    cause: str = "scan"


@dataclass(frozen=True)
class Move:
    """Move the record at old to new, keeping its id."""

    old: str
    new: str
    cause: str = "scan"


@dataclass
class History:
    """What Store.carry_history() carried: entries, whether some could not be read, and
    the vault as the history left it (path -> {"id", "blake3"}); the new changelog's
    first entry is seq `after` + 1 (after: the old store's pruning anchor, or 0)."""

    carried: int = 0
    lost: bool = False
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    after: int = 0


@dataclass(frozen=True)
class Forget:
    """A delete entry for a path the carried history knows but the new store never held
    (a file gone since the old store's last entry about it): no record is touched."""

    path: str
    id: str
    before: str | None
    cause: str = "rebuild"


Operation = Upsert | Delete | Move | Forget


@dataclass(frozen=True)
class Change:
    """One changelog entry: what an operation did to the store."""

    seq: int
    op: Literal["upsert", "delete", "move", "prune"]  # prune: path "", see Store.prune
    path: str
    prev_path: str | None
    id: str | None
    blake3_before: str | None
    blake3_after: str | None
    cause: str
    ts: float
    hash: str | None = None  # the audit chain's link (chain.py); None in a schema-1 store

    def to_bytes(self) -> bytes:
        """The stored form."""
        return codec.encode(vars(self))  # flat fields: no need for asdict()'s deep copy

    @classmethod
    def from_bytes(cls, blob: bytes) -> Change:
        """Inverse of to_bytes()."""
        return cls(**codec.decode(blob))


_CHANGE_FIELDS = frozenset(f.name for f in fields(Change))
_CHANGE_SHAPES = (_CHANGE_FIELDS, _CHANGE_FIELDS - {"hash"})  # schema 2, schema 1


def _decoded(file: Path, blob: bytes, shape: str) -> dict[str, Any]:
    """A stored value of a shape ("record", "change" or "meta"), or StoreCorruptError.

    Neither engine verifies a value's bytes when it reads them (redb checks its page
    checksums only in `check`), so a flipped byte shows here first: as bytes that are
    no JSON object of that shape. The message never quotes them (they are note text).
    """
    try:
        value = codec.decode(blob)
        if shape == "record":
            ok = isinstance(value.get("path"), str) and isinstance(value.get("id"), str)
        elif shape == "change":
            ok = value.keys() in _CHANGE_SHAPES
        else:
            ok = "value" in value
    except (ValueError, TypeError) as e:  # orjson's JSONDecodeError is a ValueError
        raise StoreCorruptError(file, f"a stored {shape} cannot be read: {e}") from e
    if not ok:
        raise StoreCorruptError(file, f"a stored {shape} lacks its fields")
    return value


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two records are equal apart from their volatile fields (and the nonce
    of their sealed text)."""
    return comparable(a) == comparable(b)


def _hash_key(blake3: str, path: str) -> str:
    return f"{blake3}:{path}"


def _checked(record: Mapping[str, Any]) -> Record:
    """A copy of record with a canonical path, or StoreError naming what is wrong."""
    if not isinstance(record.get("path"), str):
        raise StoreError(f"record has no 'path' string: {dict(record)!r:.200}")
    rec = dict(record)
    rec["path"] = vault_key(rec["path"])
    if not isinstance(rec.get("id"), str) or not rec["id"]:
        raise StoreError(f"record has no 'id' string: {rec['path']}")
    if rec.get("blake3") is not None and not isinstance(rec["blake3"], str):
        raise StoreError(f"record's 'blake3' is not a string: {rec['path']}")
    return rec


class _Batch:
    """The operations of one write transaction, numbering changelog entries as it goes.

    Writes are buffered per table (the last value per key; None deletes) and written
    with one put_many per table at the end: one call into the backend per table
    instead of three or four per record. Reads see the buffer first.
    """

    def __init__(self, tx: Writer, file: Path) -> None:
        self.tx = tx
        self.file = file
        self.next_seq, last_hash = _last(tx, file)
        self.next_seq += 1
        self.prev_hash = last_hash or _anchor_hash(tx, file)
        self.changes: list[Change] = []
        self.now = time.time()
        self.pending: dict[str, dict[Key, bytes | None]] = {t: {} for t in TABLES}

    def _read(self, table: str, key: Key) -> bytes | None:
        pending = self.pending[table]
        return pending[key] if key in pending else self.tx.get(table, key)

    def quiet_writes(self) -> bool:
        """Whether records were written without an entry (Upsert logged=False)."""
        return bool(self.pending["records"])

    def flush(self, hash_index: bool = True) -> None:
        """Write the buffered changes into the transaction (with the chain's tip); those
        of by_blake3 only with hash_index (else they stay in pending["by_blake3"])."""
        if self.changes:
            tip = {"seq": self.changes[-1].seq, "hash": self.changes[-1].hash}
            self.pending["meta"][TIP] = codec.encode({"value": tip})
        for table, pending in self.pending.items():
            if table == "by_blake3" and not hash_index:
                continue
            puts = [(k, v) for k, v in pending.items() if v is not None]
            if puts:
                self.tx.put_many(table, puts)
            for key in (k for k, v in pending.items() if v is None):
                self.tx.delete(table, key)

    def _log(
        self,
        op: Literal["upsert", "delete", "move", "prune"],
        path: str,
        prev: str | None,
        rec: Mapping[str, Any],
        before: str | None,
        cause: str,
    ) -> Change:
        entry: dict[str, Any] = {
            "seq": self.next_seq,
            "op": op,
            "path": path,
            "prev_path": prev,
            "id": rec.get("id"),
            "blake3_before": before,
            "blake3_after": rec.get("blake3") if op != "delete" else None,
            "cause": cause,
            "ts": self.now,
        }
        self.prev_hash = link(self.prev_hash, entry)
        change = Change(**entry, hash=self.prev_hash)
        self.pending["changelog"][change.seq] = change.to_bytes()
        self.next_seq += 1
        self.changes.append(change)
        return change

    def _get(self, key: str) -> Record | None:
        blob = self._read("records", key)
        return None if blob is None else _decoded(self.file, blob, "record")

    def _unindex(self, rec: Mapping[str, Any] | None) -> None:
        if rec is not None and rec.get("blake3"):
            self.pending["by_blake3"][_hash_key(rec["blake3"], rec["path"])] = None

    def _store(self, rec: Record, encoded: bytes | None = None) -> None:
        self.pending["records"][rec["path"]] = codec.encode(rec) if encoded is None else encoded
        if rec.get("blake3"):
            self.pending["by_blake3"][_hash_key(rec["blake3"], rec["path"])] = b""

    def upsert(self, op: Upsert) -> Change | None:
        rec = _checked(op.record)
        if op.encoded is not None and rec["path"] != op.record["path"]:
            raise StoreError(f"an encoded record's path is not a vault key: {rec['path']}")
        old = self._get(rec["path"])
        if old is not None and _same(
            old, rec if op.encoded is None else _decoded(self.file, op.encoded, "record")
        ):
            return None
        self._unindex(old)
        self._store(rec, op.encoded)
        if not op.logged:
            return None
        before = op.before if old is None else old.get("blake3")
        return self._log("upsert", rec["path"], None, rec, before, op.cause)

    def forget(self, op: Forget) -> Change:
        key = vault_key(op.path)
        return self._log("delete", key, None, {"id": op.id}, op.before, op.cause)

    def delete(self, path: str, cause: str) -> Change | None:
        key = vault_key(path)
        old = self._get(key)
        if old is None:
            return None
        self.pending["records"][key] = None
        self._unindex(old)
        return self._log("delete", key, None, old, old.get("blake3"), cause)

    def move(self, old_path: str, new_path: str, cause: str) -> Change | None:
        src_key, dst_key = vault_key(old_path), vault_key(new_path)
        src = self._get(src_key)
        if src is None or src_key == dst_key:
            return None
        self._unindex(self._get(dst_key))  # a record the move replaces
        self.pending["records"][src_key] = None
        self._unindex(src)
        moved = dict(src, path=dst_key)
        self._store(moved)
        return self._log("move", dst_key, src_key, moved, src.get("blake3"), cause)


class _Unchanged(Exception):
    """Raised inside a write transaction that changed nothing, to roll it back."""


class Store:
    """Records of one vault, on a redb or SQLite backend."""

    def __init__(
        self, backend: Backend, vault_root: Path | None = None, vault_id: str | None = None
    ) -> None:
        self.backend = backend
        # Index keys by content hash kept back by defer_hash_index().
        self._unindexed: set[Key] | None = None
        if not backend.readonly:
            self._init_meta(vault_root, vault_id)
        self.meta = self._read_meta()
        version = self.meta.get("schema_version")
        if version == 1 and not backend.readonly:
            self._chain_schema_1()
            self.meta = self._read_meta()
            version = self.meta.get("schema_version")
        if version not in READABLE_VERSIONS:
            backend.close()
            raise StoreError(
                f"store has schema version {version}, this ccc-watch reads {SCHEMA_VERSION}; "
                f"run `ccc-watch rebuild`: {backend.path}"
            )

    @property
    def path(self) -> Path:
        """The database file."""
        return self.backend.path

    @property
    def readonly(self) -> bool:
        """True when opened for reading only."""
        return self.backend.readonly

    def _init_meta(self, vault_root: Path | None, vault_id: str | None) -> None:
        root = None if vault_root is None else str(vault_root)
        with self.backend.writing() as tx:
            if tx.get("meta", "schema_version") is None:
                for name, value in {
                    "schema_version": SCHEMA_VERSION,
                    "vault_id": vault_id or str(uuid.uuid4()),
                    "vault_root": root,
                    # A new id for every new store file: the mirror sees a rebuilt
                    # store (whose changelog starts again at 1) and rebuilds itself.
                    "store_id": str(uuid.uuid4()),
                    "created_at": time.time(),
                }.items():
                    tx.put("meta", name, codec.encode({"value": value}))
                return
            stored = tx.get("meta", "vault_root")
            known = None if stored is None else _decoded(self.path, stored, "meta")["value"]
            if root is not None and known not in (None, root):
                raise StoreError(
                    f"store at {self.backend.path} indexes the vault {known}, not {root}; "
                    f"choose another data dir or run `ccc-watch rebuild`"
                )

    def _chain_schema_1(self) -> None:
        """Give every entry of a schema-1 store its chain hash, in one transaction."""
        with self.backend.writing() as tx:
            prev = GENESIS
            tip = None
            for seq, blob in list(iter_scan(tx, "changelog")):
                entry = _decoded(self.path, blob, "change")
                entry["hash"] = prev = link(prev, entry)
                tx.put("changelog", seq, codec.encode(entry))
                tip = {"seq": entry["seq"], "hash": prev}
            if tip is not None:
                tx.put("meta", TIP, codec.encode({"value": tip}))
            tx.put("meta", "schema_version", codec.encode({"value": SCHEMA_VERSION}))

    def _read_meta(self) -> dict[str, Any]:
        with self.backend.reading() as tx:
            return {str(k): _decoded(self.path, v, "meta")["value"] for k, v in tx.scan("meta")}

    # --- writes -------------------------------------------------------------

    def apply(self, ops: Iterable[Operation]) -> list[Change]:
        """Apply operations in ONE write transaction: all of them land, or none.

        Returns the changelog entries appended, in order; operations that changed
        nothing append none.
        """
        if self.readonly:
            raise StoreError(f"store is open read-only: {self.path}")
        try:
            with self.backend.writing() as tx:
                batch = _Batch(tx, self.path)
                for op in ops:
                    if isinstance(op, Upsert):
                        batch.upsert(op)
                    elif isinstance(op, Forget):
                        batch.forget(op)
                    elif isinstance(op, Delete):
                        batch.delete(op.path, op.cause)
                    elif isinstance(op, Move):
                        batch.move(op.old, op.new, op.cause)
                    else:
                        raise TypeError(f"not a store operation: {op!r}")
                batch.flush(hash_index=self._unindexed is None)
                if not batch.changes and not batch.quiet_writes():
                    # Roll back: a redb commit costs two fsyncs even when empty, and
                    # re-sending unchanged operations is the common case.
                    raise _Unchanged
        except _Unchanged:
            return []
        if self._unindexed is not None:  # committed: its index entries wait
            for key, value in batch.pending["by_blake3"].items():
                if value is None:
                    self._unindexed.discard(key)
                else:
                    self._unindexed.add(key)
        return batch.changes

    def defer_hash_index(self) -> None:
        """Until index_hashes(), apply() keeps the index by content hash (by_blake3) in
        memory instead of writing it: for a bulk load into a new store (a rebuild),
        whose hash keys, in no order, left the index's pages part-filled when written
        batch by batch (15.9 MB for 105,000 entries; 11.2 MB written once in order).
        Nothing may read paths_with_blake3() meanwhile."""
        if self._unindexed is None:
            self._unindexed = set()

    def index_hashes(self) -> None:
        """Write the index entries defer_hash_index() kept back, in key order, in one
        transaction; apply() writes them itself again from then on."""
        if self.readonly:
            raise StoreError(f"store is open read-only: {self.path}")
        if self._unindexed is None:
            return
        if self._unindexed:
            with self.backend.writing() as tx:
                tx.put_many("by_blake3", [(key, b"") for key in sorted(self._unindexed, key=str)])
        self._unindexed = None

    def carry_history(
        self, old: Snapshot, on_carried: Callable[[list[Change]], None] | None = None
    ) -> History:
        """Copy an old store's history into this new, empty one: its changelog entries
        as stored (hashes and all, so the chain goes on and an entry tampered with
        stays visible; entries of a schema-1 store are chained on the way), its pruning
        anchor and checkpoint. Entries are read in order up to the first that cannot be
        (a damaged store). Returns what was carried and the vault as it left it.
        on_carried receives the entries as they are carried, in order, batch by batch
        (each batch once it is in the transaction, which ends with this call)."""
        if self.readonly or self.head() != 0:
            raise StoreError(f"history can only be carried into a new store: {self.path}")
        history = History()
        after, prev = 0, GENESIS
        with self.backend.writing() as tx:
            try:
                anchor = old.meta_value(ANCHOR)
                if anchor is not None:
                    tx.put("meta", ANCHOR, codec.encode({"value": anchor}))
                    after, prev = anchor_of({ANCHOR: anchor})
                    history.after = after
                rows: list[tuple[Key, bytes]] = []
                for path, value in old.checkpoint():
                    history.state[path] = value
                    rows.append((path, codec.encode(value)))
                if rows:
                    tx.put_many("checkpoint", rows)
                while not history.lost and (batch := old.raw_changes(after, 10_000)):
                    kept: list[tuple[Key, bytes]] = []
                    changes: list[Change] = []
                    for seq, blob in batch:
                        entry = _checked_change(self.path, blob)
                        if seq != after + 1 or entry is None:
                            history.lost = True  # a gap, or an entry that does not decode
                            break
                        if entry.get("hash") is None:  # schema 1: chained now
                            entry["hash"] = link(prev, entry)
                            blob = codec.encode(entry)
                        kept.append((seq, blob))
                        if on_carried is not None:
                            changes.append(Change(**entry))
                        replay(history.state, entry)
                        after, prev = seq, str(entry["hash"])
                    if kept:
                        tx.put_many("changelog", kept)
                        history.carried += len(kept)
                    if on_carried is not None and changes:
                        on_carried(changes)
            except StoreError:  # the old file gives out: what was read is kept
                history.lost = True
            if history.carried:
                tx.put("meta", TIP, codec.encode({"value": {"seq": after, "hash": prev}}))
        return history

    def prune(self, through: int) -> Change | None:
        """Remove the changelog entries up to seq `through`, in one transaction, and
        append an audited entry saying so (op "prune", path ""). The chain goes on: the
        pruning anchor in meta keeps the seq and hash of the last entry removed, which
        the oldest kept entry links to, and the checkpoint table the vault as those
        entries left it (paths, ids, blake3), so `manifest --as-of` still answers for
        any time after the anchor. None when nothing is that old."""
        if self.readonly:
            raise StoreError(f"store is open read-only: {self.path}")
        with self.backend.writing() as tx:
            batch = _Batch(tx, self.path)
            anchor = _meta(tx, self.path, ANCHOR) or {}
            after = anchor_of({ANCHOR: anchor})[0]
            through = min(through, batch.next_seq - 1)
            if through <= after:
                return None
            state = {str(k): codec.decode(v) for k, v in iter_scan(tx, "checkpoint")}
            before = dict(state)
            last: dict[str, Any] = {}
            for seq, blob in iter_scan(tx, "changelog", start=after + 1):
                if int(seq) > through:
                    break
                last = _decoded(self.path, blob, "change")
                replay(state, last)
                batch.pending["changelog"][seq] = None
            removed = int(last["seq"]) - after
            for path in before.keys() - state.keys():
                batch.pending["checkpoint"][path] = None
            for path, value in state.items():
                if before.get(path) != value:
                    batch.pending["checkpoint"][path] = codec.encode(value)
            new_anchor = {
                "seq": last["seq"],
                "hash": last.get("hash"),
                "ts": last["ts"],
                "removed": int(anchor.get("removed", 0)) + removed,
            }
            batch.pending["meta"][ANCHOR] = codec.encode({"value": new_anchor})
            change = batch._log(
                "prune", "", None, {}, None, f"prune: {removed} entries through seq {last['seq']}"
            )
            batch.flush()
            return change

    def set_meta(self, name: str, value: Any) -> None:
        """Record a JSON value in the meta table (and in self.meta)."""
        if self.readonly:
            raise StoreError(f"store is open read-only: {self.path}")
        with self.backend.writing() as tx:
            tx.put("meta", name, codec.encode({"value": value}))
        self.meta[name] = value

    def upsert(self, record: Mapping[str, Any], cause: str = "scan") -> Change | None:
        """Insert or replace a record; None when it equals the stored one."""
        return next(iter(self.apply([Upsert(record, cause)])), None)

    def delete(self, path: str, cause: str = "scan") -> Change | None:
        """Forget the record at path; None when there was none."""
        return next(iter(self.apply([Delete(path, cause)])), None)

    def move(self, old: str, new: str, cause: str = "scan") -> Change | None:
        """Move a record keeping its id; None when there is nothing at old."""
        return next(iter(self.apply([Move(old, new, cause)])), None)

    # --- reads --------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """One consistent read view: everything read through it is of the same commit."""
        with self.backend.reading() as tx:
            yield Snapshot(tx, self.path)

    def get(self, path: str) -> Record | None:
        """The record at path, or None."""
        with self.snapshot() as snap:
            return snap.get(path)

    def records(self) -> Iterator[Record]:
        """Every record in path order, from one snapshot."""
        with self.snapshot() as snap:
            yield from snap.records()

    def __iter__(self) -> Iterator[Record]:
        return self.records()

    def __len__(self) -> int:
        with self.snapshot() as snap:
            return snap.count()

    def head(self) -> int:
        """The last changelog sequence, 0 when the changelog is empty."""
        with self.snapshot() as snap:
            return snap.head()

    def changes_after(self, seq: int, limit: int | None = None) -> list[Change]:
        """Changelog entries with a sequence greater than seq, oldest first."""
        with self.snapshot() as snap:
            return snap.changes_after(seq, limit)

    def paths_with_blake3(self, blake3: str) -> list[str]:
        """Paths of the records whose content hashes to blake3."""
        with self.snapshot() as snap:
            return snap.paths_with_blake3(blake3)

    def salvage(self) -> tuple[list[Record], bool]:
        """What can still be read of a store that may be damaged: every record that
        decodes, in path order, and whether any could not be read (a value that does not
        decode is skipped; the scan ends at the first page the engine cannot read)."""
        records: list[Record] = []
        lost = False
        try:
            with self.backend.reading() as tx:
                for _, blob in iter_scan(tx, "records"):
                    try:
                        records.append(_decoded(self.path, blob, "record"))
                    except StoreCorruptError:
                        lost = True
        except StoreError:
            lost = True
        return records, lost

    def check_integrity(self) -> bool:
        """Verify the database file; True when intact."""
        return self.backend.check_integrity()

    def compact(self) -> bool:
        """Give the file's free pages back to the file system: a store just written by a
        rebuild is half free pages (its batches' commits copy pages on write;
        bench/store_size.py). True when anything moved."""
        if self.readonly:
            raise StoreError(f"store is open read-only: {self.path}")
        return self.backend.compact()

    def scrub(self) -> bool:
        """Leave no byte of an earlier version of any record in the store's files (I8: the
        old text of a note made private). Every record, changelog entry and meta value is
        kept. False when it could not finish now: call again soon."""
        if self.readonly:
            raise StoreError(f"store is open read-only: {self.path}")
        return self.backend.scrub()

    def close(self) -> None:
        """Release the database. Idempotent."""
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "writable"
        return f"<Store {self.backend.name} {self.path} ({mode})>"


def replay(state: dict[str, dict[str, Any]], entry: Mapping[str, Any]) -> None:
    """Apply one changelog entry to a map of path -> {"id", "blake3"}."""
    op, path = entry["op"], entry["path"]
    if op == "delete":
        state.pop(path, None)
    elif op in ("upsert", "move"):
        if op == "move" and entry.get("prev_path"):
            state.pop(entry["prev_path"], None)
        state[path] = {"id": entry["id"], "blake3": entry["blake3_after"]}


def _meta(tx: Reader, file: Path, name: str) -> Any:
    blob = tx.get("meta", name)
    return None if blob is None else _decoded(file, blob, "meta")["value"]


def _checked_change(file: Path, blob: bytes) -> dict[str, Any] | None:
    try:
        return _decoded(file, blob, "change")
    except StoreCorruptError:
        return None


def _head(tx: Reader) -> int:
    last = tx.scan("changelog", reverse=True, limit=1)
    return int(last[0][0]) if last else 0


def _last(tx: Reader, file: Path) -> tuple[int, str | None]:
    """(seq, hash) of the newest entry; (0, None) when there is none."""
    last = tx.scan("changelog", reverse=True, limit=1)
    if not last:
        return 0, None
    entry = _decoded(file, last[0][1], "change")
    return int(last[0][0]), entry.get("hash")


def _anchor_hash(tx: Reader, file: Path) -> str:
    """What the first entry of an empty changelog links to."""
    return anchor_of({ANCHOR: _meta(tx, file, ANCHOR)})[1]


class Snapshot:
    """Reads inside one read transaction of the store (see Store.snapshot())."""

    def __init__(self, tx: Reader, file: Path) -> None:
        self._tx = tx
        self._file = file

    def get(self, path: str) -> Record | None:
        """The record at path, or None."""
        blob = self._tx.get("records", vault_key(path))
        return None if blob is None else _decoded(self._file, blob, "record")

    def records(self, fields: tuple[str, ...] | None = None) -> Iterator[Record]:
        """Every record in path order; with fields, only those fields of each (and its
        path and id, always): the store parses the records and hands over only what is
        asked, so a scan for ids and digests does not read every note's body into
        Python (a 100,000-note store: 0.3 s instead of 1.2 s, bench/nodes_bench.py)."""
        if fields is not None:
            fields = tuple(dict.fromkeys(("path", "id", *fields)))
        for _, blob in iter_scan(self._tx, "records", fields=fields):
            yield _decoded(self._file, blob, "record")

    def count(self) -> int:
        """How many records there are."""
        return self._tx.count("records")

    def head(self) -> int:
        """The last changelog sequence, 0 when the changelog is empty."""
        return _head(self._tx)

    def meta_value(self, name: str) -> Any:
        """A meta value as of this snapshot, or None."""
        return _meta(self._tx, self._file, name)

    def checkpoint(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(path, {"id", "blake3"}) of the vault as the history stood at the pruning
        anchor; nothing when the history was never pruned."""
        for key, blob in iter_scan(self._tx, "checkpoint"):
            try:
                yield str(key), codec.decode(blob)
            except ValueError as e:
                raise StoreCorruptError(self._file, f"a checkpoint row cannot be read: {e}") from e

    def raw_changes(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """(seq, stored bytes) of the entries after seq, oldest first, undecoded."""
        return [(int(k), v) for k, v in self._tx.scan("changelog", start=seq + 1, limit=limit)]

    def chain_head(self) -> tuple[int, str | None]:
        """(seq, hash) of the newest changelog entry: what a backup's manifest records
        and `audit verify` checks against. With no entry, the pruning anchor, or (0,
        GENESIS); hash None for an entry of a schema-1 store, which has no chain."""
        seq, digest = _last(self._tx, self._file)
        if seq == 0:
            return 0, _anchor_hash(self._tx, self._file)
        return seq, digest

    def change(self, seq: int) -> Change | None:
        """The changelog entry seq, or None when there is none (pruned, or not yet)."""
        blob = self._tx.get("changelog", seq)
        return None if blob is None else Change(**_decoded(self._file, blob, "change"))

    def changes_after(self, seq: int, limit: int | None = None) -> list[Change]:
        """Changelog entries with a sequence greater than seq, oldest first."""
        rows = self._tx.scan("changelog", start=seq + 1, limit=limit)
        return [Change(**_decoded(self._file, blob, "change")) for _, blob in rows]

    def paths_with_blake3(self, blake3: str) -> list[str]:
        """Paths of the records whose content hashes to blake3."""
        prefix = f"{blake3}:"
        return [str(k)[len(prefix) :] for k, _ in self._tx.scan("by_blake3", prefix=prefix)]
