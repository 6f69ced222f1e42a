"""The Store's fallback backend: the standard library's sqlite3 in WAL mode.

The same tables as redb, one SQLite table each with a key and a value column, so
the Store above behaves identically on both. SQLite lets several connections write
in turn; the Store wants exactly one writing process, so a writer also holds an
exclusive lock on '<file>.lock' for as long as it is open.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from ccc_watch.errors import StoreError, StoreLockedError, StoreMissingError
from ccc_watch.procs import try_lock
from ccc_watch.store.backend import TABLES, Key, prefix_end, secure_file


class _Tables:
    """Reader/Writer over one SQLite transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, table: str, key: Key) -> bytes | None:
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
        return [(k, bytes(v)) for k, v in self._conn.execute(sql, args)]

    def count(self, table: str) -> int:
        return int(self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def put(self, table: str, key: Key, value: bytes) -> None:
        self.put_many(table, [(key, value)])

    def put_many(self, table: str, items: list[tuple[Key, bytes]]) -> None:
        self._conn.executemany(
            f"INSERT INTO {table}(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            items,
        )

    def delete(self, table: str, key: Key) -> bool:
        return self._conn.execute(f"DELETE FROM {table} WHERE key = ?", (key,)).rowcount > 0


class SqliteBackend:
    """An SQLite database file in WAL mode, writable (one process) or read-only."""

    name = "sqlite"

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock_fd: int | None = None
        # One connection, shared by the daemon's threads one transaction at a time.
        self._mutex = threading.RLock()
        if readonly:
            if not path.exists():
                raise StoreMissingError(f"no store at {path}")
            uri = f"{path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            self._lock_fd = self._take_writer_lock(path)
            secure_file(path)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss, as a redb commit does.
            self._conn.execute("PRAGMA synchronous=FULL")
            for table, kind in TABLES.items():
                key_type = "TEXT" if kind == "str" else "INTEGER"
                self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} "
                    f"(key {key_type} PRIMARY KEY, value BLOB NOT NULL)"
                )
        self._conn.execute("PRAGMA busy_timeout=5000")

    @staticmethod
    def _take_writer_lock(path: Path) -> int:
        fd, _ = try_lock(path.with_name(path.name + ".lock"))
        if fd < 0:
            raise StoreLockedError(path)
        return fd

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[_Tables]:
        with self._mutex:
            try:
                self._conn.execute(begin)
            except sqlite3.Error as e:
                raise StoreError(f"{e}: {self.path}") from e
            try:
                yield _Tables(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def writing(self) -> AbstractContextManager[_Tables]:
        return self._transaction("BEGIN IMMEDIATE")

    def reading(self) -> AbstractContextManager[_Tables]:
        return self._transaction("BEGIN")

    def check_integrity(self) -> bool:
        with self._mutex:
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return rows == [("ok",)]

    def compact(self) -> bool:
        """Give free pages back to the file system."""
        with self._mutex:
            self._conn.execute("VACUUM")
        return True

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
