"""Typed surface of the compiled `ccc_watch._redb` extension (rust/src/lib.rs).

Every database is opened in redb's SingleWriter mode: one process may hold it
writable while any number of processes open it read-only and follow its commits.
Every call releases the GIL while redb works. Waits that can last (begin_write behind
another write transaction of this process, a repair on a writable open, compact) run
Python's signal handlers every 50 ms, so an exception a handler raises (KeyboardInterrupt)
leaves the call.
"""

from collections.abc import Callable
from datetime import date
from os import PathLike
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

K = TypeVar("K", str, int)

# (title, links, tags, tasks, words, headings, blocks, fields): ccc_watch.index.body.Body
ScannedBody = tuple[
    str | None,
    list[dict[str, Any]],
    dict[str, int],
    list[dict[str, Any]],
    int,
    list[dict[str, Any]],
    list[dict[str, Any]],
    list[dict[str, Any]],
]

DEFAULT_CACHE_BYTES: int
REDB_VERSION: str

class RedbError(Exception):
    """Base class of every error raised by ccc_watch._redb."""

class DatabaseLockedError(RedbError):
    """The database is held by another process."""

class RepairNeededError(RedbError):
    """The database was not closed cleanly; a writable open repairs it."""

class CorruptionError(RedbError):
    """redb found the database file damaged."""

class InternalError(RedbError):
    """A panic inside ccc_watch._redb or redb: a bug. The message names the file and where
    the panic happened. redb also panics on some pages damaged outside it (a read-only open
    trusts the file); check_integrity() on a writable open tells which."""

class TableTypeError(RedbError):
    """A table was opened with another key or value type than it was created with."""

class TransactionClosedError(RedbError):
    """The transaction or database was already committed, aborted or closed."""

class Database:
    """A redb file. Writable (created if missing unless create=False) or read-only."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        readonly: bool = False,
        create: bool = True,
        cache_size: int = ...,
    ) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def begin_write(self) -> WriteTransaction:
        """Start a write transaction; waits while another one in this process is open
        (interruptible: a signal handler's exception leaves the wait)."""
    def begin_read(self) -> ReadTransaction:
        """Start a read transaction on one consistent snapshot of the last commit."""
    def check_integrity(self) -> bool:
        """Verify every page checksum; writable, no transaction open. True when intact."""
    def compact(self) -> bool:
        """Compact the file; writable, no transaction open. True when anything moved."""
    def close(self) -> None:
        """Close the file and release its locks. Idempotent."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

class WriteTransaction:
    """Commits on a clean exit from `with`, aborts when an exception leaves it."""

    @property
    def active(self) -> bool: ...
    def str_table(self, name: str) -> Table[str]: ...
    def u64_table(self, name: str) -> Table[int]: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

class ReadTransaction:
    """A snapshot: commits made after it began are not visible through it."""

    def str_table(self, name: str) -> Table[str]: ...
    def u64_table(self, name: str) -> Table[int]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

class Table(Generic[K]):
    """A table of bytes values inside one transaction. Missing tables read as empty."""

    @property
    def name(self) -> str: ...
    def get(self, key: K) -> bytes | None: ...
    def put(self, key: K, value: bytes) -> None: ...
    def put_many(self, items: object) -> int:
        """Store an iterable of (key, bytes) pairs; returns how many."""
    def delete(self, key: K) -> bool:
        """Remove key; True when it was present."""
    def range(
        self,
        start: K | None = None,
        end: K | None = None,
        *,
        prefix: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
        fields: list[str] | None = None,
    ) -> list[tuple[K, bytes]]:
        """Pairs from start (inclusive) to end (exclusive), or by str prefix. With
        fields, a value that is a JSON object comes back as the JSON object of only its
        top-level members named there; any other value whole."""
    def __len__(self) -> int: ...

ZSTD_MAGIC: bytes
ZSTD_DEFAULT_LEVEL: int

def compress(data: bytes, level: int = ...) -> bytes:
    """data as one zstd frame, with its content size and a checksum of it, made with the
    dictionary of record shapes built into the extension (rust/src/compress.rs), at level
    (default ZSTD_DEFAULT_LEVEL). Releases the GIL. ValueError for a level zstd lacks."""

# A column the compiled part built (rust/src/rows.rs): (kind, length, nulls, validity
# bits, offsets or None, data, item offsets or None).
Column = tuple[bytes, int, int, bytes, bytes | None, bytes, bytes | None]

def columns(items: list[Any], spec: list[tuple[str, str]]) -> list[Column | None]:
    """For each (field, kind) of spec, the column of that field over the dicts items as
    Arrow buffers (kinds: rust/src/rows.rs KINDS); None for a column with a value it
    does not take exactly as Python would (and for all, when an item is no dict)."""

def children(
    items: list[Any], key: str, field: str, spec: list[tuple[str, str]]
) -> list[Column | None]:
    """The rows of each item's list `field` (`item.get(field) or []`): the column of
    their item's `key`, their place in its list (int32), then spec's columns over them."""

def tag_rows(items: list[Any]) -> list[Column] | None:
    """The tags table (path, tag, explicit) of the dicts items as mirror/rows.py's
    _tag_rows makes it; None when a tag is not an ASCII str."""

def anchor_rows(items: list[Any]) -> list[Column] | None:
    """The headings table (path, kind, level, text, line, parents) of the dicts items as
    mirror/rows.py's _anchor_rows makes it; None when an anchor's level or line is not
    an int or None, or its text not a str."""

def property_values(
    values: list[Any],
    json: Callable[[Any], str],
    text: Callable[[Any], str | None],
    kind: Callable[[Any], str],
) -> list[Column]:
    """The properties' value (JSON), text and type columns of values: a str, None or a
    bool made here as mirror/rows.py makes them, any other value by the functions."""

def days(items: list[Any], day: Callable[[Any], date | None]) -> Column:
    """The notes' day column (date32) of the dicts items as mirror/rows.py's _day gives
    it: made by the extension over ASCII text, by day(item) for any other note."""

def decompress(data: bytes) -> bytes:
    """The content of one frame compress() made (or any plain zstd frame that declares
    its content size). Releases the GIL. ValueError, never a crash, when data is not one
    whole intact frame: damaged, cut short, followed by other bytes, or declaring more
    than 1 GiB."""

def frames_in(data: bytes) -> list[bytes]:
    """What every zstd frame found anywhere in data (a database file, a page) decodes to,
    as far as it decodes (a damaged or cut-short frame gives its whole blocks before the
    damage). Releases the GIL. For a search of a file for text, which compressed values
    would otherwise hide."""

def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with prefix (None when
    there is none): the exclusive end of a prefix scan, for every backend."""

def scan_body(body: str, first_line: int) -> ScannedBody:
    """What ccc_watch.index.body.scan_body_reference finds in a note's body (its first line
    is first_line of the file), as the fields of a Body, scanned without the GIL. Raises
    UnicodeEncodeError for a str with lone surrogates (it has no UTF-8 form)."""

UNICODE_VERSION: str
"""The Unicode version of the character classes scan_body reads text with (those of the
Python that generated rust/src/tables.rs)."""

# read_in's codes (not on Windows, where the module has no read_in).
READ_OK: int
READ_SYMLINK: int
READ_NOT_REGULAR: int
READ_FD_NOT_REGULAR: int
READ_CHANGED: int
READ_PYTHON: int

def read_in(
    folder: int, name: str, keep: int, flags: int
) -> tuple[int, int, int, int, int, bytes | None]:
    """The file `name` of the open folder read whole, as ccc_watch.vault.read's _read_in
    does, when it has at most `keep` bytes, opened with `flags`: (code, size, mtime_ns,
    ctime_ns, inode, data), the stat and data set with READ_OK only. READ_SYMLINK,
    READ_NOT_REGULAR (the name), READ_FD_NOT_REGULAR (the descriptor), READ_CHANGED
    (read it again), READ_PYTHON (larger than keep, or a name with no C form: read.py
    reads it). Any other failure is the OSError os.stat or os.open would raise."""
