"""The Store's default backend: a redb file through ccc_watch._redb."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ccc_watch import _redb
from ccc_watch.errors import StoreError, StoreLockedError, StoreMissingError
from ccc_watch.store.backend import TABLES, Key, secure_file


class _Tables:
    """Reader/Writer over one redb transaction; tables are opened once per transaction."""

    def __init__(self, txn: _redb.WriteTransaction | _redb.ReadTransaction) -> None:
        self._txn = txn
        self._open: dict[str, _redb.Table[Any]] = {}

    def _table(self, name: str) -> _redb.Table[Any]:
        table = self._open.get(name)
        if table is None:
            kind = TABLES[name]
            table = self._txn.str_table(name) if kind == "str" else self._txn.u64_table(name)
            self._open[name] = table
        return table

    def get(self, table: str, key: Key) -> bytes | None:
        return self._table(table).get(key)

    def scan(
        self,
        table: str,
        *,
        start: Key | None = None,
        prefix: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[Key, bytes]]:
        return self._table(table).range(start, None, prefix=prefix, limit=limit, reverse=reverse)

    def count(self, table: str) -> int:
        return len(self._table(table))

    def put(self, table: str, key: Key, value: bytes) -> None:
        self._table(table).put(key, value)

    def put_many(self, table: str, items: list[tuple[Key, bytes]]) -> None:
        self._table(table).put_many(items)

    def delete(self, table: str, key: Key) -> bool:
        return self._table(table).delete(key)


class RedbBackend:
    """A redb database file, opened writable (one process) or read-only (any number)."""

    name = "redb"

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        if not readonly:
            secure_file(path)
        try:
            self._db = _redb.Database(path, readonly=readonly)
        except _redb.DatabaseLockedError as e:
            raise StoreLockedError(path) from e
        except _redb.RepairNeededError as e:
            raise StoreError(
                f"store was not closed cleanly and is repaired the next time the daemon or a "
                f"writing command opens it: {path}"
            ) from e
        except FileNotFoundError as e:
            raise StoreMissingError(f"no store at {path}") from e
        except _redb.RedbError as e:
            raise StoreError(str(e)) from e

    @contextmanager
    def writing(self) -> Iterator[_Tables]:
        with self._db.begin_write() as txn:
            yield _Tables(txn)

    @contextmanager
    def reading(self) -> Iterator[_Tables]:
        with self._db.begin_read() as txn:
            yield _Tables(txn)

    def check_integrity(self) -> bool:
        return self._db.check_integrity()

    def compact(self) -> bool:
        """Give free pages back to the file system."""
        return self._db.compact()

    def close(self) -> None:
        self._db.close()
