"""The key-value contract both store backends (redb, SQLite) implement.

The Store keeps all of its logic above this line, so the two backends hold the same
bytes under the same keys and one contract test suite covers both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

import orjson

from ccc_watch.errors import StoreError
from ccc_watch.store import codec

Key = str | int
KeyKind = Literal["str", "u64"]

# Every table the Store uses, with its key type.
TABLES: dict[str, KeyKind] = {
    "records": "str",  # vault-relative path -> record
    "changelog": "u64",  # sequence -> change entry
    "by_blake3": "str",  # "<blake3>:<path>" -> b""
    "meta": "str",  # name -> JSON value
    # path -> {"id", "blake3"}: the vault as the history stood at the pruning anchor, so
    # that what existed at a time after it can still be told once older entries are gone
    "checkpoint": "str",
}


class Reader(Protocol):
    """Reads inside one transaction (a consistent snapshot)."""

    def get(self, table: str, key: Key) -> bytes | None:
        """The value under key, or None."""

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
        """Pairs in key order from start (inclusive), or those whose key has prefix.
        With fields, a value that is a JSON object comes back as the JSON object of only
        those of its top-level members (see project()); any other value whole."""

    def count(self, table: str) -> int:
        """How many keys the table holds."""


class Writer(Reader, Protocol):
    """Reads and writes inside one write transaction."""

    def put(self, table: str, key: Key, value: bytes) -> None:
        """Store value under key."""

    def put_many(self, table: str, items: list[tuple[Key, bytes]]) -> None:
        """Store many pairs in one call."""

    def delete(self, table: str, key: Key) -> bool:
        """Remove key; True when it was there."""


class Backend(Protocol):
    """An open database file."""

    name: str
    path: Path
    readonly: bool

    def writing(self) -> AbstractContextManager[Writer]:
        """A write transaction: committed when the block ends, rolled back on an exception."""

    def reading(self) -> AbstractContextManager[Reader]:
        """A read transaction on one snapshot."""

    def check_integrity(self) -> bool:
        """Verify the file: True when intact, False when damage was found and repaired;
        StoreCorruptError when it is damaged beyond repair."""

    def compact(self) -> bool:
        """Give free pages back to the file system (writable, no transaction open)."""

    def scrub(self) -> bool:
        """Leave no byte of an overwritten or deleted value in the store's files (writable
        only). False when it could not finish now (a reader holds what it would remove)."""

    def close(self) -> None:
        """Release the file and its locks. Idempotent."""


def secure_file(path: Path) -> None:
    """Create path empty if missing, and make it private to this user: 0600."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def damage_note(path: Path) -> Path:
    """Where a writer that found the store file damaged beyond repair says so, for the
    readers: redb then leaves the file flagged as needing a repair, which is all a
    reader sees (and would report as a file not closed cleanly)."""
    return path.with_name(path.name + ".damage")


def project(value: bytes, fields: tuple[str, ...]) -> bytes:
    """The JSON object of value's members named in fields, or value whole when it is no
    JSON object: what the redb extension's range(fields=) does in Rust (project.rs),
    for a backend without it. A compressed value is projected from its content."""
    try:
        whole = orjson.loads(codec.plain(value))
    except ValueError:
        return value
    if not isinstance(whole, dict):
        return value
    return orjson.dumps({k: v for k, v in whole.items() if k in fields})


def iter_scan(
    reader: Reader,
    table: str,
    page: int = 1000,
    start: Key | None = None,
    fields: tuple[str, ...] | None = None,
) -> Iterator[tuple[Key, bytes]]:
    """Every pair of table in key order (from start on), fetched a page at a time; with
    fields, each value cut down to those members (Reader.scan)."""
    skip_first = False
    while True:
        rows = reader.scan(table, start=start, limit=page + skip_first, fields=fields)
        if skip_first:
            rows = rows[1:]
        yield from rows
        if len(rows) < page:
            return
        start, skip_first = rows[-1][0], True


class Translating:
    """A `with` block that turns the engine's exceptions into the project's StoreErrors.

    `translate` gets each exception leaving the block and returns the StoreError to raise
    in its place, or None to let it through (exceptions that are not the engine's, e.g.
    a KeyboardInterrupt, or an OSError of the caller's own code around a transaction,
    are never wrapped: only the backend's own calls run inside such a block).
    """

    __slots__ = ("translate",)

    def __init__(self, translate: Callable[[BaseException], StoreError | None]) -> None:
        self.translate = translate

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, StoreError):
            return
        err = self.translate(exc)
        if err is not None:
            raise err from exc
