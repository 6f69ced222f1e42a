"""The Store's fallback backend: the standard library's sqlite3 in WAL mode.

The same tables as redb, one SQLite table each with a key and a value column, so
the Store above behaves identically on both. SQLite lets several connections write
in turn; the Store wants exactly one writing process, so a writer also holds an
exclusive lock on '<file>.lock' for as long as it is open.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from loguru import logger

from ccc_watch._redb import prefix_end
from ccc_watch.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreInternalError,
    StoreIOError,
    StoreLockedError,
    StoreMissingError,
    StorePermissionError,
    store_os_error,
)
from ccc_watch.procs import try_lock
from ccc_watch.store.backend import TABLES, Key, Translating, project, secure_file

# SQLite's primary result codes (the low byte of an extended code), by what they mean here.
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL = {13}  # SQLITE_FULL (the VFS reports ENOSPC so)
_DENIED = {3, 8, 23}  # SQLITE_PERM, SQLITE_READONLY, SQLITE_AUTH
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_IOERR, _CANTOPEN, _MISUSE = 10, 14, 21


class _Tables:
    """Reader/Writer over one SQLite transaction."""

    def __init__(self, conn: sqlite3.Connection, faults: Translating) -> None:
        self._conn = conn
        self._faults = faults

    def get(self, table: str, key: Key) -> bytes | None:
        with self._faults:
            row = self._conn.execute(f"SELECT value FROM {table} WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

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
        where: list[str] = []
        args: list[Any] = []
        if prefix is not None:
            where.append("key >= ?")
            args.append(prefix)
            end = prefix_end(prefix)
            if end is not None:
                where.append("key < ?")
                args.append(end)
        if start is not None:
            where.append("key >= ?")
            args.append(start)
        sql = f"SELECT key, value FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY key" + (" DESC" if reverse else "")
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._faults:
            rows = [(k, bytes(v)) for k, v in self._conn.execute(sql, args)]
        if fields is not None:
            rows = [(k, project(v, fields)) for k, v in rows]
        return rows

    def count(self, table: str) -> int:
        with self._faults:
            return int(self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def put(self, table: str, key: Key, value: bytes) -> None:
        self.put_many(table, [(key, value)])

    def put_many(self, table: str, items: list[tuple[Key, bytes]]) -> None:
        with self._faults:
            self._conn.executemany(
                f"INSERT INTO {table}(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                items,
            )

    def delete(self, table: str, key: Key) -> bool:
        with self._faults:
            cur = self._conn.execute(f"DELETE FROM {table} WHERE key = ?", (key,))
        return cur.rowcount > 0


class SqliteBackend:
    """An SQLite database file in WAL mode, writable (one process) or read-only.

    Every sqlite3.Error and OSError raised by a call of this class becomes one of the
    project's StoreErrors naming the file and what to do (see `_translate`).
    """

    name = "sqlite"

    def __init__(
        self, path: Path, *, readonly: bool = False, cache_bytes: int | None = None
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        # One connection, shared by the daemon's threads one transaction at a time.
        self._mutex = threading.RLock()
        self._faults = Translating(self._translate)
        try:
            with self._faults:
                self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        path = self.path
        if self.readonly:
            if not path.exists():
                raise StoreMissingError(f"no store at {path}")
            uri = f"{path.resolve().as_uri()}?mode=ro"
            conn = self._conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            self._lock_fd = self._take_writer_lock(path)
            secure_file(path)
            conn = self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss, as a redb commit does.
            conn.execute("PRAGMA synchronous=FULL")
            # Freed pages and the unused part of pages are zeroed, so an overwritten value
            # leaves no bytes behind once the WAL is checkpointed (see scrub()).
            conn.execute("PRAGMA secure_delete=ON")
            for table, kind in TABLES.items():
                key_type = "TEXT" if kind == "str" else "INTEGER"
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} "
                    f"(key {key_type} PRIMARY KEY, value BLOB NOT NULL)"
                )
        conn.execute("PRAGMA busy_timeout=5000")

    def _translate(self, err: BaseException) -> StoreError | None:
        """The StoreError for an exception of sqlite3 or of the file system."""
        path = self.path
        if isinstance(err, OSError):
            return store_os_error(path, err)
        if not isinstance(err, sqlite3.Error):
            return None
        code = getattr(err, "sqlite_errorcode", None)
        primary = None if code is None else code & 0xFF
        detail = str(err) or type(err).__name__
        if primary in _CORRUPT:
            return StoreCorruptError(path, detail)
        if primary in _FULL:
            return StoreFullError(path, detail)
        if primary in _DENIED:
            return StorePermissionError(path, detail)
        if primary in _BUSY:
            return StoreLockedError(path)
        if primary == _CANTOPEN:
            folder = path.parent
            if not os.access(folder, os.W_OK | os.X_OK) or (
                path.exists() and not os.access(path, os.R_OK)
            ):
                return StorePermissionError(path, detail)
            return StoreIOError(path, detail)
        if primary == _IOERR:
            # SQLite hides the errno: a disk with no block left is the likely cause.
            with contextlib.suppress(OSError):
                if os.statvfs(path.parent).f_bavail == 0:
                    return StoreFullError(path, f"{detail} (the disk is full)")
            return StoreIOError(path, detail)
        if primary == _MISUSE or isinstance(err, sqlite3.ProgrammingError | sqlite3.InterfaceError):
            return StoreInternalError(path, detail)
        return StoreError(f"store error: {path}: {detail}")

    @staticmethod
    def _take_writer_lock(path: Path) -> int:
        fd, _ = try_lock(path.with_name(path.name + ".lock"))
        if fd < 0:
            raise StoreLockedError(path)
        return fd

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreInternalError(self.path, "the connection is closed")
        return self._conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[_Tables]:
        with self._mutex:
            conn = self._db
            with self._faults:
                conn.execute(begin)
            try:
                yield _Tables(conn, self._faults)
                with self._faults:
                    conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (a full disk does): the
                # exception that got here is the one to see.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def writing(self) -> AbstractContextManager[_Tables]:
        return self._transaction("BEGIN IMMEDIATE")

    def reading(self) -> AbstractContextManager[_Tables]:
        return self._transaction("BEGIN")

    def check_integrity(self) -> bool:
        """True when intact. SQLite repairs nothing, so damage is a StoreCorruptError."""
        with self._mutex, self._faults:
            rows = self._db.execute("PRAGMA integrity_check").fetchall()
        if rows != [("ok",)]:
            more = f" (and {len(rows) - 1} more problems)" if len(rows) > 1 else ""
            raise StoreCorruptError(self.path, f"integrity_check: {rows[0][0]}{more}")
        return True

    def compact(self) -> bool:
        """Give free pages back to the file system."""
        with self._mutex, self._faults:
            self._db.execute("VACUUM")
        return True

    def scrub(self) -> bool:
        """Leave no byte of an overwritten or deleted value in the files: secure_delete
        zeroed them in the pages, and the WAL (which still holds older page images) is
        checkpointed and truncated to nothing. False when a reader's snapshot still needs
        the WAL: try again once it has let go."""
        with self._mutex, self._faults:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def close(self) -> None:
        """Close the connection and release the writer lock. Idempotent. A failure to
        close loses no commit: it is logged (trace level), not raised over the error that the
        caller may be handling."""
        with self._mutex:
            try:
                if self._conn is not None:
                    with self._faults:
                        self._conn.close()
            except StoreError as e:
                logger.trace("could not close the store cleanly: {}", e)
            finally:
                self._conn = None
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None
