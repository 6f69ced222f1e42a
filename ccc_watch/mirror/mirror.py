"""The Mirror: the store's records as DuckDB tables, for SQL analytics.

The store's changelog is applied exactly once: the rows of every path a batch of
changes touched are replaced by the store's current records, the changes are added to
`events`, and the watermark moves, all in ONE DuckDB transaction. A crash anywhere
leaves the old or the new state; re-applying is harmless because rows are replaced by
path, and the watermark check keeps `events` free of duplicates.

DuckDB lets one process write a file or many read it, never both. So the published
file, `mirror.duckdb`, is never opened for writing: a flush applies the changes to a
private working file (`mirror.duckdb.work`, the previous published generation),
checkpoints and fsyncs it, and renames it over `mirror.duckdb`; the file it replaces
becomes the next working file. A reader's open connection keeps the inode it opened (a
consistent, older view); a new connection opens the newest complete file; no reader
ever waits or sees half a file. When a reader still holds the working file (it opened
it while it was published), that file is let go (the reader keeps it) and a new one is
copied from the published file, at most every few seconds (see COPY_SPACING).
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from loguru import logger

from ccc_watch import procs
from ccc_watch.errors import CccWatchError
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.mirror.rows import Rows, events_rows
from ccc_watch.mirror.schema import (
    EVENTS,
    MIRROR_SCHEMA_VERSION,
    PER_NOTE,
    TABLES,
    VIEWS,
)
from ccc_watch.procs import private_umask, remove_stale
from ccc_watch.store import MIRROR_FILE, Change, Record, Store
from ccc_watch.store.chain import ANCHOR, anchor_of
from ccc_watch.store.store import Snapshot

# DuckDB 2.0 writes a format 1.4 cannot read unless told otherwise; 1.4 is the LTS
# many notebooks and DBeaver still run.
STORAGE_VERSION = "v1.4.0"
ALIAS = "mirror"
# The mirror needs no extension beyond those built in (json, parquet): a query must not
# make DuckDB download or load one.
_NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
# The private working file, written by flushes and renamed over MIRROR_FILE to publish
# it, and the lock file that lets one writer at a time do so.
WORK_FILE = f"{MIRROR_FILE}.work"
LOCK_FILE = "mirror.lock"
# While readers keep opening the published file and holding it until it is the working
# file again, each flush would copy the whole file (~120 MB at 100,000 notes): a copy
# made for that reason is followed by none for COPY_SPACING seconds, or COPY_FACTOR
# times as long as it took, whichever is longer. Publishing waits meanwhile.
COPY_SPACING = 2.0
COPY_FACTOR = 10.0


class MirrorError(CccWatchError):
    """The mirror cannot be read or written."""


class MirrorBusyError(MirrorError):
    """Another process holds a DuckDB file of the mirror read-write, or the writer lock."""


# How DuckDB (2.0) words a mirror file that is damaged: a bad header, a short file, a
# block whose checksum does not match. Such a mirror is rebuilt from the store, not
# retried: the next flush would meet the same bytes.
_DAMAGE = ("not a valid DuckDB database", "Could not read enough bytes", "Corrupt database file")


def _damaged(err: BaseException) -> bool:
    """Whether a DuckDB error (or a MirrorError made of one) says the file is damaged."""
    text = str(err) + str(err.__cause__ or "")
    return any(phrase in text for phrase in _DAMAGE)


@dataclass
class FlushResult:
    """What one flush did."""

    applied: int  # changelog entries newly published
    watermark: int  # the published watermark
    rebuilt: bool
    # How long the working file was held read-write. Readers of mirror.duckdb are never
    # locked out: they read the published file, which nobody writes.
    held_seconds: float
    copied: bool = False  # the working file was made anew, by copying the published one
    # Seconds until this flush can publish: a reader holds the working file and the last
    # copy was too recent to make another (nothing was applied; flush again then).
    deferred: float = 0.0


class Mirror:
    """The DuckDB mirror of one store: `<data_dir>/mirror.duckdb`, published by rename
    from the private working file `<data_dir>/mirror.duckdb.work`."""

    def __init__(
        self, data_dir: Path, policy: IndexPolicy | None = None, batch_changes: int = 50_000
    ) -> None:
        self.path = data_dir / MIRROR_FILE
        self.work = data_dir / WORK_FILE
        self.policy = policy or IndexPolicy()
        self.batch_changes = batch_changes
        self.writer_wait = 10.0  # seconds to wait for another writer of the mirror
        self.copy_due = 0.0  # time.monotonic() before which no reader-forced copy is made

    # --- writing ------------------------------------------------------------

    @contextmanager
    def _attached(self, path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory connection with `path` attached read-write as the default.

        The file, its WAL and any spill files are created private (DuckDB takes no
        file mode), and DuckDB spills into the data dir, never into `./.tmp` of
        whatever folder the process runs in (the vault, say).
        """
        spill = path.with_name(f".{MIRROR_FILE}.{os.getpid()}.tmp.spill")
        with private_umask():
            con = duckdb.connect(config={**_NO_EXTENSIONS, "temp_directory": str(spill)})
            try:
                version = f"STORAGE_VERSION '{STORAGE_VERSION}'"
                try:
                    con.execute(f"ATTACH '{sql_str(path)}' AS {ALIAS} ({version})")
                except duckdb.IOException as e:
                    if "lock" in str(e).lower():
                        raise MirrorBusyError(
                            f"the mirror is open in another process; retry when it lets go: {path}"
                        ) from e
                    raise MirrorError(f"cannot open the mirror {path}: {e}") from e
                con.execute(f"USE {ALIAS}")
                yield con
                con.execute("USE memory")
                con.execute(f"DETACH {ALIAS}")
            finally:
                con.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The mirror's writer lock (`mirror.lock` in the data dir): one process at a
        time renames files in and out of the published name. Waits up to writer_wait
        seconds for another writer (`ccc-watch mirror` beside the daemon, say)."""
        if os.name == "nt":  # pragma: no cover - no POSIX locks, and no daemon to race
            yield
            return
        lock = self.path.with_name(LOCK_FILE)
        deadline = time.monotonic() + self.writer_wait
        while True:
            try:
                fd, _ = procs.try_lock(lock)
            except OSError as e:
                raise MirrorError(f"cannot lock the mirror {lock}: {e}") from e
            if fd >= 0:
                break
            if time.monotonic() >= deadline:
                raise MirrorBusyError(
                    f"another process is writing the mirror; retry when it is done: {self.path}"
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            os.close(fd)

    def state(self, con: duckdb.DuckDBPyConnection) -> tuple[int, str | None] | None:
        """(watermark, store id) of an attached mirror, or None when it has no state or
        another schema (an older version's mirror: rebuilt, never patched)."""
        try:
            # fetchall: DuckDB 2 refuses new statements while a result is unfinished.
            rows = con.execute(
                "SELECT watermark, store_id, schema_version FROM mirror_state"
            ).fetchall()
        except duckdb.CatalogException:
            return None
        if not rows or rows[0][2] != MIRROR_SCHEMA_VERSION:
            return None
        return int(rows[0][0]), rows[0][1]

    def _follows(self, con: duckdb.DuckDBPyConnection, store: Store) -> int | None:
        """The watermark of an attached mirror when it is a past state of this store:
        same store id and schema, not ahead, and its last event the store's entry of
        that sequence, hash and all (a store restored from a backup and changed since
        has other entries after the same sequence numbers). Otherwise None."""
        state = self.state(con)
        if state is None or state[1] != store.meta.get("store_id"):
            return None
        watermark = state[0]
        with store.snapshot() as snap:
            if snap.head() < watermark:
                return None
            if watermark == 0:
                return 0
            entry = snap.changes_after(watermark - 1, 1)
        rows = con.execute(f"SELECT hash FROM {EVENTS.name} WHERE seq = ?", [watermark]).fetchall()
        if not entry or entry[0].seq != watermark or not rows or rows[0][0] != entry[0].hash:
            return None
        return watermark

    def flush(self, store: Store) -> FlushResult:
        """Publish the store's changes after the published watermark; rebuild when the
        mirror is missing, damaged, of another store, or ahead of the store."""
        with self._writing():
            remove_stale(self.path.parent, f".{MIRROR_FILE}.*.tmp*")  # .wal and .spill too
            if not self.path.exists():
                return self._rebuild(store)
            try:
                return self._update(store)
            except MirrorBusyError:
                raise
            except (MirrorError, duckdb.Error) as e:
                if not _damaged(e):
                    if isinstance(e, MirrorError):
                        raise
                    raise MirrorError(f"cannot update the mirror {self.path}: {e}") from e
                logger.warning("the mirror file is damaged ({}): rebuilding it from the store", e)
            return self._rebuild(store)

    def published(self, store: Store) -> int | None:
        """The published file's watermark when it is a past state of this store, else
        None (read-only: the file is never written in place)."""
        con = duckdb.connect(config={**_NO_EXTENSIONS, "temp_directory": ""})
        try:
            try:
                con.execute(f"ATTACH '{sql_str(self.path)}' AS {ALIAS} (READ_ONLY)")
            except duckdb.IOException as e:
                if "lock" in str(e).lower():  # another program holds it read-write
                    raise MirrorBusyError(
                        f"the mirror is open read-write in another process; open it "
                        f"read-only: {self.path}"
                    ) from e
                raise MirrorError(f"cannot open the mirror {self.path}: {e}") from e
            con.execute(f"USE {ALIAS}")
            return self._follows(con, store)
        finally:
            con.close()

    def _update(self, store: Store) -> FlushResult:
        """Bring the working file up to the store, then publish it; rebuild when the
        published file is not a past state of this store."""
        published = self.published(store)
        if published is None:
            return self._rebuild(store)
        if published == store.head():
            return FlushResult(0, published, False, 0.0)
        copied = self._ready_work(store)
        if isinstance(copied, float):
            return FlushResult(0, published, False, 0.0, deferred=copied)
        started = time.perf_counter()
        with self._attached(self.work) as con:
            watermark = self._follows(con, store)
            if watermark is None:  # the store moved under us in a way the check refuses
                raise MirrorError(f"the working file {self.work} no longer follows the store")
            while True:
                with store.snapshot() as snap:
                    changes = snap.changes_after(watermark, self.batch_changes)
                    if not changes:
                        break
                    touched = {c.path for c in changes if c.op != "prune"} | {
                        c.prev_path for c in changes if c.prev_path
                    }
                    records = [r for r in map(snap.get, sorted(touched)) if r is not None]
                    pruned = anchor_of({ANCHOR: snap.meta_value(ANCHOR)})[0]
                self._apply(con, watermark, changes, touched, records, pruned)
                watermark = changes[-1].seq
            con.execute(f"CHECKPOINT {ALIAS}")
        held = time.perf_counter() - started
        self._publish()
        return FlushResult(watermark - published, watermark, False, held, copied)

    def _ready_work(self, store: Store) -> bool | float:
        """Make sure the working file exists, no reader holds it and it is a past state
        of this store; otherwise let it go and copy the published file in its place.
        True when it was copied, False when it was ready, or the seconds to wait
        before a copy is allowed (a reader holds it and the last copy was recent)."""
        why = "missing"
        if self.work.exists():
            try:
                with self._attached(self.work) as con:
                    if self._follows(con, store) is not None:
                        return False
                why = "behind another history"
            except MirrorBusyError:
                # A reader opened it while it was the published file, and holds it.
                wait = self.copy_due - time.monotonic()
                if wait > 0:
                    return wait
                why = "held by a reader"
            except (MirrorError, duckdb.Error) as e:
                if not _damaged(e):
                    raise
                why = "damaged"
        started = time.monotonic()
        self._copy_published()
        took = time.monotonic() - started
        if why == "held by a reader":
            self.copy_due = time.monotonic() + max(COPY_SPACING, COPY_FACTOR * took)
        logger.debug("mirror working file {}: copied the published one in {:.3f} s", why, took)
        return True

    def _copy_published(self) -> None:
        """Replace the working file with a copy of the published one. The old working
        file is unlinked, not written: a reader that holds it keeps its pages."""
        tmp = self.path.with_name(f".{MIRROR_FILE}.{os.getpid()}.tmp.copy")
        try:
            with private_umask():
                shutil.copyfile(self.path, tmp)
            _fsync(tmp)
            _remove_db(self.work)  # its WAL must not be replayed onto the copy
            os.replace(tmp, self.work)
        except OSError as e:
            _remove_file(tmp)
            raise MirrorError(f"cannot copy the mirror to {self.work}: {e}") from e

    def _publish(self) -> None:
        """Rename the working file (checkpointed: no WAL) over the published one, whose
        inode becomes the next working file. Readers of the old file keep it; a crash
        between the steps leaves a complete published file (and at worst no working
        file: the next flush copies one)."""
        if self.work.with_name(self.work.name + ".wal").exists():
            raise MirrorError(f"the working file {self.work} kept a WAL: not publishing it")
        old = self.path.with_name(f".{MIRROR_FILE}.{os.getpid()}.tmp.old")
        try:
            _fsync(self.work)
            _remove_file(old)
            try:
                os.link(self.path, old)
                kept = True
            except OSError:  # no hard links here: the next flush copies a working file
                kept = False
            try:
                _remove_file(self.path.with_name(self.path.name + ".wal"))  # an older design's
                procs.replace_durably(self.work, self.path)
            except BaseException:
                _remove_file(old)
                raise
            if kept:
                os.replace(old, self.work)
        except OSError as e:
            raise MirrorError(f"cannot publish the mirror {self.path}: {e}") from e

    def _apply(
        self,
        con: duckdb.DuckDBPyConnection,
        expected: int,
        changes: list[Change],
        touched: set[str],
        records: list[Record],
        pruned: int = 0,
    ) -> None:
        rows = Rows.of(records, self.policy)
        con.execute("BEGIN")
        try:
            state = self.state(con)
            if state is None or state[0] != expected:
                raise MirrorError(f"mirror watermark moved underneath this flush: {self.path}")
            con.register("touched", pa.table({"path": sorted(touched)}))
            for table in PER_NOTE:
                con.execute(
                    f"DELETE FROM {table.name} WHERE {table.key} IN (SELECT path FROM touched)"
                )
            for name, arrow in rows.tables():
                _insert(con, name, arrow)
            _insert(con, EVENTS.name, events_rows(changes))
            if any(c.op == "prune" for c in changes):  # the store let these go
                con.execute(f"DELETE FROM {EVENTS.name} WHERE seq <= ?", [pruned])
            con.execute(
                "UPDATE mirror_state SET watermark = ?, updated_at = now()",
                [changes[-1].seq],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("touched")

    def rebuild(self, store: Store) -> FlushResult:
        """Write a complete new mirror from one store snapshot, then swap it in; the
        working file goes too, so no page of the old mirror is kept (I8)."""
        with self._writing():
            return self._rebuild(store)

    def _rebuild(self, store: Store) -> FlushResult:
        started = time.perf_counter()
        tmp = self._fresh()
        with store.snapshot() as snap, _discarded_on_failure(tmp), self._attached(tmp) as con:
            _create_tables(con)
            batch: list[Record] = []
            for rec in snap.records():
                batch.append(rec)
                if len(batch) >= 5000:
                    _insert_rows(con, Rows.of(batch, self.policy))
                    batch = []
            _insert_rows(con, Rows.of(batch, self.policy))
            head = _complete(con, snap, store)
        self._install(tmp)
        return FlushResult(head, head, True, time.perf_counter() - started)

    def _fresh(self) -> Path:
        """The name of a new mirror file, cleared (with what interrupted writers left)."""
        remove_stale(self.path.parent, f".{MIRROR_FILE}.*.tmp*")  # .wal and .spill too
        tmp = self.path.with_name(f".{MIRROR_FILE}.{os.getpid()}.tmp")
        _remove_db(tmp)
        return tmp

    def _install(self, tmp: Path) -> None:
        """Rename a complete new mirror file over the published one; the working file
        goes too, so no page of the old mirror is kept (I8)."""
        try:
            _fsync(tmp)
            # A WAL left by a killed writer of the old file must not be replayed onto
            # the new one.
            _remove_file(self.path.with_name(self.path.name + ".wal"))
            procs.replace_durably(tmp, self.path)
        except OSError as e:
            _remove_db(tmp)
            raise MirrorError(f"cannot write the mirror {self.path}: {e}") from e
        _remove_db(self.work)  # the next flush copies the new file

    @contextmanager
    def loading(self) -> Iterator[MirrorLoad]:
        """A new mirror filled from rows as they are made (a rebuild's workers make
        them), not from a second pass over the store: see MirrorLoad. Left without
        finish() (an error, an interrupt), nothing of it remains."""
        load = MirrorLoad(self)
        try:
            yield load
        finally:
            load.close()

    # --- reading ------------------------------------------------------------

    def connect(
        self, retry_seconds: float = 5.0, allow_files: Sequence[Path] = ()
    ) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the mirror that reaches nothing else, retrying
        while another process holds the file read-write (ccc-watch never does: it
        publishes by rename; an older version or another tool might).

        A fresh in-memory database attaches the mirror READ_ONLY; then DuckDB's own
        settings close everything else: no file access (COPY, read_text, glob, ATTACH,
        EXPORT) except, for reading and writing, inside the folders of allow_files; no
        extension installed or loaded; no spilling to disk; and the configuration
        locked, so no statement can SET any of it back. Each call gets its own DuckDB
        instance, so one caller's folders never reach another's connection.
        """
        if not self.path.exists():
            raise MirrorError(f"no mirror yet at {self.path}; run `ccc-watch mirror`")
        con = duckdb.connect(config={**_NO_EXTENSIONS, "temp_directory": ""})
        try:
            self._attach_read_only(con, retry_seconds)
            con.execute(f"USE {ALIAS}")
            if allow_files:
                folders = ", ".join(f"'{sql_str(Path(f))}/'" for f in allow_files)
                con.execute(f"SET allowed_directories = [{folders}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con

    def _attach_read_only(self, con: duckdb.DuckDBPyConnection, retry_seconds: float) -> None:
        deadline = time.monotonic() + retry_seconds
        while True:
            try:
                con.execute(f"ATTACH '{sql_str(self.path)}' AS {ALIAS} (READ_ONLY)")
                return
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise MirrorError(f"cannot open the mirror {self.path}: {e}") from e
                if time.monotonic() >= deadline:
                    raise MirrorBusyError(
                        f"the mirror stayed locked for {retry_seconds:.0f} s: {self.path}"
                    ) from e
                time.sleep(0.05)

    def watermark(self) -> int | None:
        """The published watermark (the last changelog sequence a new connection sees),
        or None when there is no mirror."""
        if not self.path.exists():
            return None
        with self.connect() as con:
            rows = con.execute("SELECT watermark FROM mirror_state").fetchall()
        return int(rows[0][0]) if rows else None


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    if not rows.num_rows:
        return
    con.register("incoming", rows)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
    finally:
        con.unregister("incoming")


def _insert_rows(con: duckdb.DuckDBPyConnection, rows: Rows) -> None:
    for name, arrow in rows.tables():
        _insert(con, name, arrow)


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES:
        con.execute(table.ddl())


def _complete(
    con: duckdb.DuckDBPyConnection,
    snap: Snapshot,
    store: Store,
    streamed: tuple[int, int] | None = None,
) -> int:
    """Finish a new mirror whose per-note rows are in: the snapshot's changelog as
    `events`, the state (watermark: the snapshot's head), the views; checkpointed, so
    the file holds it all. Returns the watermark. streamed: (first seq, count) of the
    entries already in `events`, which must then be the snapshot's last ones (else
    they are replaced by the snapshot's)."""
    head = snap.head()
    until = head + 1
    if streamed is not None:
        if _streamed_to(streamed, head):
            until = streamed[0]
        else:
            con.execute(f"DELETE FROM {EVENTS.name}")
    after = 0
    while after < until - 1 and (events := snap.changes_after(after, 50_000)):
        _insert(con, EVENTS.name, events_rows([e for e in events if e.seq < until]))
        after = events[-1].seq
    _finish_file(con, head, store.meta.get("store_id"), store.meta.get("vault_id"))
    return head


def _streamed_to(streamed: tuple[int, int] | None, head: int) -> bool:
    """Whether the entries streamed into `events`, (first seq, count), end at head."""
    return streamed is not None and streamed[1] > 0 and sum(streamed) - 1 == head


def _finish_file(
    con: duckdb.DuckDBPyConnection, head: int, store_id: object, vault_id: object
) -> None:
    """The state row (watermark head) and the views of a new mirror whose rows are all
    in; checkpointed, so the file holds it all."""
    con.execute(
        "INSERT INTO mirror_state (watermark, store_id, vault_id, schema_version,"
        " updated_at) VALUES (?, ?, ?, ?, now())",
        [head, store_id, vault_id, MIRROR_SCHEMA_VERSION],
    )
    for name, sql in VIEWS.items():
        con.execute(f"CREATE VIEW {name} AS {sql}")
    con.execute("RESET threads")  # the checkpoint compresses the row groups in parallel
    con.execute(f"CHECKPOINT {ALIAS}")


@dataclass(frozen=True)
class _Ending:
    """The new store once its last changelog entry is in (MirrorLoad.ending())."""

    first: int
    head: int
    store_id: object
    vault_id: object


class MirrorLoad:
    """A new mirror file, filled from rows as they come by a thread of its own (DuckDB
    works without the GIL, so its inserts overlap the store's writes), then finished
    from the new store and published: Mirror.loading().

    Nothing starts before the first rows: a rebuild forks its workers first, and a
    process with a second thread would have to spawn them. The queue is bounded, so
    memory is too. When the thread fails, rows are dropped and finish() raises
    MirrorError: the caller builds the mirror from the store instead.
    """

    QUEUE = 8  # parts in flight (each the rows of at most a few hundred files)
    INSERT_NOTES = 5000  # rows of this many notes are inserted together
    INSERT_BYTES = 32 << 20  # or of notes this large (long notes)
    # What is inserted goes to the WAL, and to the file at a checkpoint, which DuckDB
    # makes when the WAL grows past this. Each checkpoint rewrites the part-filled row
    # groups of every table, and the blocks they leave free stay in the file: with a
    # checkpoint every 25,000 notes (and DuckDB's default of 16MB) the mirror of
    # 100,000 notes was 55 MB, with 15 free blocks and part-filled others; with none
    # before the last, 47.7 MB. This bound keeps the WAL, and so the disk the load
    # needs, finite on any vault (it peaked at ~250 MB at 100,000 notes); DuckDB's
    # memory stays under MEMORY_LIMIT either way (un-checkpointed rows can be evicted).
    CHECKPOINT_THRESHOLD = "256MB"
    MEMORY_LIMIT = "32MB"

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.queue: queue.Queue[Rows | list[Change] | _Ending | Store | None] = queue.Queue(
            self.QUEUE
        )
        self.thread: threading.Thread | None = None
        # Rows come from the rebuild's main thread and changelog entries from the thread
        # that carries the old history: the first _put of either starts the one thread.
        self._starting = threading.Lock()
        self.error: BaseException | None = None
        self.tmp: Path | None = None
        self.done = False

    def add(self, rows: Rows) -> None:
        """Queue rows for the new mirror (blocks while the queue is full)."""
        self._put(rows)

    def add_changes(self, changes: list[Change]) -> None:
        """Queue changelog entries the new store just appended, in order (the rest of
        its changelog is read from it when it is finished)."""
        if changes:
            self._put(changes)

    def ending(self, first: int, head: int, meta: Mapping[str, Any]) -> None:
        """Say that the new store's changelog is complete: entries first to head (its
        meta beside). When every one of them was streamed (add_changes), the new mirror
        is finished now, while the store writes its last pages, and finish() only
        checks and publishes."""
        self._put(_Ending(first, head, meta.get("store_id"), meta.get("vault_id")))

    def finish(self, store: Store) -> FlushResult:
        """Complete the new mirror from store (the new store, every row of which was
        added) and publish it. MirrorError when it could not be built."""
        started = time.perf_counter()
        self._put(store)
        assert self.thread is not None
        self.thread.join()
        if self.error is not None or self.tmp is None or not self.done:
            raise MirrorError(f"cannot build the mirror {self.mirror.path}: {self.error}")
        with self.mirror._writing():
            self.mirror._install(self.tmp)
        head = store.head()
        return FlushResult(head, head, True, time.perf_counter() - started)

    def close(self) -> None:
        """Stop the thread (dropping what it has not written) and remove what it wrote
        unless it was published."""
        if self.thread is not None and self.thread.is_alive():
            self._put(None)
            self.thread.join()
        if self.tmp is not None and not self.done:
            _remove_db(self.tmp)

    def _put(self, item: Rows | list[Change] | _Ending | Store | None) -> None:
        """Queue item for the thread, started by the first one; dropped once the thread
        has stopped (it failed: finish() says so)."""
        with self._starting:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="mirror-load", daemon=True)
                self.thread.start()
        while self.thread.is_alive():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            with self.mirror._writing():
                self.tmp = self.mirror._fresh()
            with _discarded_on_failure(self.tmp), self.mirror._attached(self.tmp) as con:
                # DuckDB keeps written blocks cached up to most of the machine's memory:
                # a rebuild's load needs none of them again.
                con.execute(f"SET memory_limit = '{self.MEMORY_LIMIT}'")
                con.execute(f"SET checkpoint_threshold = '{self.CHECKPOINT_THRESHOLD}'")
                # One thread for the inserts: others only spin on batches this small
                # (bench/rebuild_bench.py: ~6% less CPU for the whole command).
                con.execute("SET threads = 1")
                _create_tables(con)
                self.done = self._load(con)
        except BaseException as e:
            self.error = e

    def _load(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Insert what the queue brings until the new store comes (the mirror is then
        completed from it: True) or None (abandoned: False)."""
        pending: list[Rows] = []
        notes = size = 0  # of the notes in pending, counted as they come (nbytes is not cached)
        streamed: tuple[int, int] | None = None  # (first seq, count) in events
        ended: _Ending | None = None  # what the file was finished at, by ending()
        while (item := self.queue.get()) is not None:
            if isinstance(item, list):
                _insert(con, EVENTS.name, events_rows(item))
                if streamed is None:
                    streamed = (item[0].seq, len(item))
                elif item[0].seq == sum(streamed):
                    streamed = (streamed[0], streamed[1] + len(item))
                else:  # not one run: _complete reads them all from the store
                    streamed = (streamed[0], -1)
            elif isinstance(item, Rows):
                pending.append(item)
                notes += item.notes.num_rows
                size += item.notes.nbytes
                if notes >= self.INSERT_NOTES or size >= self.INSERT_BYTES:
                    _insert_pending(con, pending)
                    notes = size = 0
            elif isinstance(item, _Ending):
                # Only when every entry of the new changelog came (carried ones too,
                # from the first after a pruning anchor); else the store gives them
                # after the swap (_complete).
                if (
                    streamed is not None
                    and streamed[0] == item.first
                    and _streamed_to(streamed, item.head)
                ):
                    _insert_pending(con, pending)
                    _finish_file(con, item.head, item.store_id, item.vault_id)
                    ended = item
            elif ended is not None:  # the store, finished: it must be what ending() said
                meta = item.meta
                found = _Ending(
                    ended.first, item.head(), meta.get("store_id"), meta.get("vault_id")
                )
                if found != ended:
                    raise MirrorError(f"the new store is not what it said it was: {found}")
                return True
            else:
                _insert_pending(con, pending)
                with item.snapshot() as snap:
                    _complete(con, snap, item, streamed)
                return True
        return False


def _insert_pending(con: duckdb.DuckDBPyConnection, pending: list[Rows]) -> None:
    """Insert the rows waiting as one batch and clear the list."""
    if pending:
        rows = Rows.concat(pending)
        pending.clear()
        _insert_rows(con, rows)


def sql_str(path: Path) -> str:
    """path as the inside of a single-quoted SQL string."""
    return str(path).replace("'", "''")


def _remove_file(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_db(path: Path) -> None:
    _remove_file(path)
    _remove_file(path.with_name(path.name + ".wal"))


@contextmanager
def _discarded_on_failure(tmp: Path) -> Iterator[None]:
    """A new mirror file that could not be finished (a full disk, a damaged store, an
    interrupt) is removed, WAL and all; DuckDB's own errors become a MirrorError."""
    try:
        yield
    except BaseException as e:
        _remove_db(tmp)
        if isinstance(e, duckdb.Error):
            raise MirrorError(f"cannot write the mirror {tmp}: {e}") from e
        raise


def mirror_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[Mapping[str, Any]]:
    """Every row of a mirror table as a dict (for tests and tools)."""
    cur = con.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
