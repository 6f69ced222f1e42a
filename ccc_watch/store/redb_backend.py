"""The Store's default backend: a redb file through ccc_watch._redb.

Every exception of the binding, and every OSError on the file, raised by a call of
this module becomes one of the project's StoreErrors naming the file and what to do
(see `_translate`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger

from ccc_watch import _redb
from ccc_watch.errors import (
    StoreCorruptError,
    StoreError,
    StoreInternalError,
    StoreLockedError,
    StoreMissingError,
    StoreNeedsRepairError,
    store_os_error,
)
from ccc_watch.procs import remove_stale, replace_durably
from ccc_watch.store.backend import TABLES, Key, Translating, damage_note, iter_scan, secure_file

_COPY_BATCH = 5000  # rows per write transaction of a scrub's copy


class _Tables:
    """Reader/Writer over one redb transaction; tables are opened once per transaction."""

    def __init__(
        self, txn: _redb.WriteTransaction | _redb.ReadTransaction, faults: Translating
    ) -> None:
        self._txn = txn
        self._faults = faults
        self._open: dict[str, _redb.Table[Any]] = {}

    def _table(self, name: str) -> _redb.Table[Any]:
        table = self._open.get(name)
        if table is None:
            kind = TABLES[name]
            table = self._txn.str_table(name) if kind == "str" else self._txn.u64_table(name)
            self._open[name] = table
        return table

    def get(self, table: str, key: Key) -> bytes | None:
        with self._faults:
            return self._table(table).get(key)

    def scan(
        self,
        table: str,
        *,
        start: Key | None = None,
        prefix: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
        fields: tuple[str, ...] | None = None,
    ) -> list[tuple[Key, bytes]]:
        with self._faults:
            return self._table(table).range(
                start,
                None,
                prefix=prefix,
                limit=limit,
                reverse=reverse,
                fields=None if fields is None else list(fields),
            )

    def count(self, table: str) -> int:
        with self._faults:
            return len(self._table(table))

    def put(self, table: str, key: Key, value: bytes) -> None:
        with self._faults:
            self._table(table).put(key, value)

    def put_many(self, table: str, items: list[tuple[Key, bytes]]) -> None:
        with self._faults:
            self._table(table).put_many(items)

    def delete(self, table: str, key: Key) -> bool:
        with self._faults:
            return self._table(table).delete(key)


def _detail(err: BaseException, path: Path) -> str:
    """What went wrong, without the file name (the StoreError puts it first)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err)
    if isinstance(err, _redb.InternalError):
        # "internal error, a bug in ccc_watch._redb: panicked at F:L: M: PATH (advice)":
        # keep where and why it panicked; StoreInternalError says the rest.
        text = text.split(" (redb also panics", 1)[0]
        text = text.split("a bug in ccc_watch._redb: ", 1)[-1]
    text = text.replace(f": {path}", "").replace(str(path), "the file").strip()
    return text or type(err).__name__


class RedbBackend:
    """A redb database file, opened writable (one process) or read-only (any number)."""

    name = "redb"

    def __init__(
        self, path: Path, *, readonly: bool = False, cache_bytes: int | None = None
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._faults = Translating(self._translate)
        with self._faults:
            if not readonly:
                secure_file(path)
            try:
                cache = _redb.DEFAULT_CACHE_BYTES if cache_bytes is None else cache_bytes
                self._db = _redb.Database(path, readonly=readonly, cache_size=cache)
            except FileNotFoundError as e:
                raise StoreMissingError(f"no store at {path}") from e
        if not readonly:  # opened (and repaired if need be): whatever a note said is past
            with contextlib.suppress(FileNotFoundError):
                os.unlink(damage_note(path))

    def _translate(self, err: BaseException) -> StoreError | None:
        """The StoreError for an exception of the binding or of the file system."""
        path = self.path
        if isinstance(err, _redb.DatabaseLockedError):
            return StoreLockedError(path)
        if isinstance(err, _redb.RepairNeededError):
            return self._noted_damage() or StoreNeedsRepairError(path)
        if isinstance(err, _redb.CorruptionError):
            return self._damaged(_detail(err, path))
        if isinstance(err, _redb.InternalError):
            # A reader trusts the file, so a page damaged outside redb can make it panic.
            return StoreInternalError(path, _detail(err, path), maybe_damaged=self.readonly)
        if isinstance(err, _redb.TransactionClosedError):
            return StoreInternalError(path, _detail(err, path))
        if isinstance(err, _redb.RedbError):
            return StoreError(f"store error: {path}: {_detail(err, path)}")
        if isinstance(err, OSError):
            return store_os_error(path, err)
        return None

    def _damaged(self, detail: str) -> StoreCorruptError:
        """StoreCorruptError; a writer also leaves the detail in the damage note, since
        redb leaves the file flagged as needing a repair that readers cannot tell from
        a writer that was killed."""
        if not self.readonly:
            # The first finding is the cause; closing the file then fails with another.
            # A full disk (or a note there already): readers say less, no more.
            with contextlib.suppress(OSError):
                fd = os.open(damage_note(self.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(detail + "\n")
        return StoreCorruptError(self.path, detail)

    def _noted_damage(self) -> StoreCorruptError | None:
        """What a writer noted about the file's damage, if it did."""
        try:
            with damage_note(self.path).open(encoding="utf-8", errors="replace") as f:
                detail = f.read(500).strip()
        except OSError:
            return None
        return StoreCorruptError(self.path, f"found by an earlier check or writer: {detail}")

    def _diagnosed(self, err: StoreInternalError) -> StoreError:
        """After a panic in a writer: check the file, and call it damaged when it is."""
        if self.readonly:
            return err
        try:
            intact = self._db.check_integrity()
        except _redb.CorruptionError as e:
            return self._damaged(_detail(e, self.path))
        except (_redb.RedbError, OSError):
            return err  # e.g. another thread's transaction is open: cannot tell
        if not intact:
            return StoreCorruptError(
                self.path, f"{err.args[0]} (redb then found damage and repaired what it could)"
            )
        return err

    @contextmanager
    def _checked(self) -> Iterator[None]:
        try:
            yield
        except StoreInternalError as e:
            diagnosed = self._diagnosed(e)
            if diagnosed is e:
                raise
            raise diagnosed from e

    @contextmanager
    def writing(self) -> Iterator[_Tables]:
        with self._checked():
            with self._faults:
                txn = self._db.begin_write()
            try:
                yield _Tables(txn, self._faults)
            except BaseException:
                # The exception that left the block is the one to see.
                with contextlib.suppress(_redb.RedbError, OSError):
                    txn.abort()
                raise
            with self._faults:
                txn.commit()

    @contextmanager
    def reading(self) -> Iterator[_Tables]:
        with self._checked():
            with self._faults:
                txn = self._db.begin_read()
            try:
                yield _Tables(txn, self._faults)
            finally:
                txn.close()

    def check_integrity(self) -> bool:
        """Verify every page checksum; True when intact, False when redb repaired damage.
        StoreCorruptError when the file is damaged beyond repair."""
        with self._faults:
            return self._db.check_integrity()

    def compact(self) -> bool:
        """Give free pages back to the file system."""
        with self._faults:
            return self._db.compact()

    def scrub(self) -> bool:
        """Leave no byte of an overwritten or deleted value in the file. redb neither
        zeroes freed pages nor always gives them back (compact() keeps those it cannot
        move past), so every table is copied into a new file beside this one, which is
        renamed over it. Readers that have the old file open read it until they close
        it; the file system then frees its blocks. True: done."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.scrub")
        remove_stale(self.path.parent, f".{self.path.name}.*.scrub")
        try:
            with self._faults:
                secure_file(tmp)
                copy = _redb.Database(tmp)
                try:
                    self._copy_into(copy)
                finally:
                    copy.close()
                self._db.close()
                try:
                    replace_durably(tmp, self.path)
                finally:
                    self._db = _redb.Database(self.path)  # the new file, or the old one
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return True

    def _copy_into(self, copy: _redb.Database) -> None:
        with self.reading() as source:
            for table in TABLES:
                rows = iter_scan(source, table)
                while batch := list(itertools.islice(rows, _COPY_BATCH)):
                    txn = copy.begin_write()
                    try:
                        _Tables(txn, self._faults).put_many(table, batch)
                    except BaseException:
                        txn.abort()
                        raise
                    txn.commit()

    def close(self) -> None:
        """Close the file. A failure here loses no commit (the next writer repairs the
        file), so it is logged (trace level) rather than raised over the error that the caller
        may be handling (after a failed commit, closing fails too)."""
        try:
            with self._faults:
                self._db.close()
        except StoreError as e:
            logger.trace("could not close the store cleanly: {}", e)
