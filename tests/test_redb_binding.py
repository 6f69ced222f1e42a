"""Tests of the `ccc_watch._redb` extension (PyO3 over redb 4.6.0), from Python, on real files.

Nothing is mocked: every test opens real redb files under pytest's ``tmp_path`` (or, for the
hypothesis model tests, a fresh ``tempfile`` directory per example). The multi-process tests
start real interpreters with ``sys.executable -c``, and every wait on them has a timeout.

Tests marked ``xfail(strict=True)`` document bugs found in the extension; the reason says what
is wrong. They turn into failures (XPASS strict) once the extension is fixed, so that the marker
gets removed.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccc_watch import _redb as redb

U64_MAX = 2**64 - 1

# Generous bounds for anything that waits on another thread or process.
CHILD_TIMEOUT = 60.0
LINE_TIMEOUT = 30.0

MODEL_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.redb"


@pytest.fixture
def db(db_path: Path) -> Iterator[redb.Database]:
    database = redb.Database(db_path)
    yield database
    database.close()


def child_env() -> dict[str, str]:
    """Environment for child interpreters: short Rust panic output, unbuffered stdout."""
    return {**os.environ, "RUST_BACKTRACE": "0", "PYTHONUNBUFFERED": "1"}


def run_child(
    code: str, *args: object, timeout: float = CHILD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter (argv[1:] = args) and wait for it, with a timeout."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        check=False,
    )


class Child:
    """A child interpreter driven line by line over stdin/stdout, with timeouts on every read."""

    def __init__(self, code: str, *args: object) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._pump = threading.Thread(target=self._read_stdout, daemon=True)
        self._pump.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def readline(self, timeout: float = LINE_TIMEOUT) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child printed nothing for {timeout} s") from None
        if line is None:
            rc = self.proc.wait(timeout=10)
            assert self.proc.stderr is not None
            raise AssertionError(f"child exited early, rc={rc}, stderr:\n{self.proc.stderr.read()}")
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=10)

    def finish(self) -> int:
        """Close stdin (the child's loop ends) and wait for a normal exit."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=CHILD_TIMEOUT)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self._pump.join(timeout=10)  # stdout hits EOF once the child is gone
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def str_rows(database: redb.Database, table: str = "t") -> list[tuple[str, bytes]]:
    with database.begin_read() as txn:
        return txn.str_table(table).range()


# --------------------------------------------------------------------------------------------
# module surface
# --------------------------------------------------------------------------------------------


def test_module_constants_and_exception_hierarchy() -> None:
    """The module exports its version, default cache size and a RedbError-rooted hierarchy."""
    assert redb.REDB_VERSION == "4.6.0"
    assert redb.DEFAULT_CACHE_BYTES == 64 * 1024 * 1024
    assert issubclass(redb.RedbError, Exception)
    for sub in (
        redb.DatabaseLockedError,
        redb.RepairNeededError,
        redb.CorruptionError,
        redb.InternalError,
        redb.TableTypeError,
        redb.TransactionClosedError,
    ):
        assert issubclass(sub, redb.RedbError)


def test_exceptions_are_picklable() -> None:
    """RedbError subclasses live in ccc_watch._redb and survive a pickle round trip."""
    assert redb.CorruptionError.__module__ == "ccc_watch._redb"
    err = pickle.loads(pickle.dumps(redb.CorruptionError("damaged")))
    assert type(err) is redb.CorruptionError
    assert err.args == ("damaged",)


# --------------------------------------------------------------------------------------------
# Database: open, close, properties
# --------------------------------------------------------------------------------------------


def test_create_open_close_and_properties(db_path: Path) -> None:
    """A writable open creates the file; path/readonly/closed reflect the handle; close is
    idempotent and the file then reopens (writable and read-only) with its data."""
    assert not db_path.exists()
    database = redb.Database(db_path)
    assert db_path.exists()
    assert database.path == str(db_path)
    assert database.readonly is False
    assert database.closed is False
    assert str(db_path) in repr(database)
    with database.begin_write() as txn:
        txn.str_table("t").put("k", b"v")
    database.close()
    assert database.closed is True
    database.close()  # idempotent
    assert database.closed is True

    again = redb.Database(str(db_path), create=False)
    assert again.readonly is False
    assert str_rows(again) == [("k", b"v")]
    again.close()

    ro = redb.Database(db_path, readonly=True)
    assert ro.readonly is True
    assert ro.closed is False
    assert str_rows(ro) == [("k", b"v")]
    ro.close()
    assert ro.closed is True


def test_path_accepts_str_and_pathlike(tmp_path: Path) -> None:
    """`path` is the str form of whatever str or PathLike the database was opened with."""
    a = redb.Database(str(tmp_path / "a.redb"))
    b = redb.Database(tmp_path / "b.redb", cache_size=1 << 20)
    try:
        assert a.path == str(tmp_path / "a.redb")
        assert b.path == str(tmp_path / "b.redb")
        assert isinstance(b.path, str)
    finally:
        a.close()
        b.close()


def test_database_context_manager_closes_and_propagates(db_path: Path) -> None:
    """`with Database(...) as db` yields the same object, closes it on exit, and never
    swallows an exception raised in the block."""
    with redb.Database(db_path) as database:
        assert isinstance(database, redb.Database)
        with database.begin_write() as txn:
            txn.u64_table("u").put(1, b"one")
    assert database.closed

    with pytest.raises(LookupError, match="inside"), redb.Database(db_path) as database2:
        raise LookupError("inside")
    assert database2.closed
    with redb.Database(db_path, readonly=True) as ro, ro.begin_read() as txn:
        assert txn.u64_table("u").get(1) == b"one"


def test_use_after_close_raises_transaction_closed(db: redb.Database) -> None:
    """After close(), starting transactions and maintenance calls raise TransactionClosedError."""
    db.close()
    with pytest.raises(redb.TransactionClosedError, match="closed"):
        db.begin_read()
    with pytest.raises(redb.TransactionClosedError):
        db.begin_write()
    with pytest.raises(redb.TransactionClosedError):
        db.check_integrity()
    with pytest.raises(redb.TransactionClosedError):
        db.compact()


def test_open_missing_file_read_only_raises_file_not_found(tmp_path: Path) -> None:
    """Opening a missing file read-only raises FileNotFoundError that names the path, and does
    not create the file."""
    missing = tmp_path / "missing.redb"
    with pytest.raises(FileNotFoundError) as info:
        redb.Database(missing, readonly=True)
    assert info.value.filename == str(missing)
    assert str(missing) in str(info.value)
    assert not missing.exists()


def test_open_missing_file_without_create_raises_file_not_found(tmp_path: Path) -> None:
    """create=False on a missing file raises FileNotFoundError naming the path, creating nothing."""
    missing = tmp_path / "missing.redb"
    with pytest.raises(FileNotFoundError) as info:
        redb.Database(missing, create=False)
    assert info.value.filename == str(missing)
    assert not missing.exists()


def test_second_writable_open_in_same_process_is_locked(db: redb.Database) -> None:
    """A second writable handle on a file is refused with DatabaseLockedError (file locks are
    per open file description), while a read-only handle beside the writer is allowed."""
    with pytest.raises(redb.DatabaseLockedError, match="database is open in another process"):
        redb.Database(db.path)
    with db.begin_write() as txn:
        txn.str_table("t").put("a", b"1")
    with redb.Database(db.path, readonly=True) as ro:
        assert str_rows(ro) == [("a", b"1")]


def test_read_only_database_refuses_writes(db_path: Path) -> None:
    """begin_write on a read-only database raises RedbError; reads still work."""
    redb.Database(db_path).close()
    with redb.Database(db_path, readonly=True) as ro:
        with pytest.raises(redb.RedbError, match="read-only"):
            ro.begin_write()
        assert str_rows(ro) == []


# --------------------------------------------------------------------------------------------
# tables: get / put / put_many / delete / len
# --------------------------------------------------------------------------------------------


def test_str_table_crud(db: redb.Database) -> None:
    """get/put/put_many/delete/len on a str table; values come back as bytes; delete reports
    whether the key was there; data persists across a commit."""
    with db.begin_write() as txn:
        t = txn.str_table("notes")
        assert t.name == "notes"
        assert "notes" in repr(t)
        assert len(t) == 0
        assert t.get("a") is None
        t.put("a", b"1")
        t.put("", b"")  # empty key and empty value are legal
        t.put("a\x00b", b"nul inside")
        assert t.put_many([("b", b"2"), ("c", b"3")]) == 2
        t.put("a", b"replaced")
        assert len(t) == 5
        assert t.get("a") == b"replaced"
        assert isinstance(t.get("a"), bytes)
        assert t.get("") == b""
        assert t.delete("c") is True
        assert t.delete("c") is False
        assert t.delete("never") is False
        assert len(t) == 4

    with db.begin_read() as txn:
        t = txn.str_table("notes")
        assert len(t) == 4
        assert t.range() == [("", b""), ("a", b"replaced"), ("a\x00b", b"nul inside"), ("b", b"2")]
        assert t.get("c") is None


def test_u64_table_crud_and_extremes(db: redb.Database) -> None:
    """u64 tables take ints 0..2**64-1 as keys, order them numerically, and round-trip them."""
    with db.begin_write() as txn:
        t = txn.u64_table("ids")
        t.put(U64_MAX, b"max")
        t.put(0, b"zero")
        t.put(10, b"ten")
        t.put(9, b"nine")
        assert len(t) == 4
        assert t.delete(10) is True
        assert t.delete(10) is False

    with db.begin_read() as txn:
        t = txn.u64_table("ids")
        assert t.range() == [(0, b"zero"), (9, b"nine"), (U64_MAX, b"max")]
        assert t.get(U64_MAX) == b"max"
        assert t.get(1) is None
        assert all(type(k) is int for k, _ in t.range())


@pytest.mark.parametrize("bad", ["not bytes", bytearray(b"xy"), memoryview(b"zz"), [1, 2, 3]])
def test_values_must_be_bytes(db: redb.Database, bad: object) -> None:
    """Values are bytes exactly, as the stub says: anything else is a TypeError and
    nothing is stored (a list of ints is not silently turned into bytes)."""
    with db.begin_write() as txn:
        t = txn.str_table("t")
        with pytest.raises(TypeError):
            t.put("k", bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            t.put_many([("k", bad)])
        assert t.get("k") is None


def test_values_round_trip_as_bytes(db: redb.Database) -> None:
    """Large and binary values come back byte-for-byte, always as bytes."""
    with db.begin_write() as txn:
        t = txn.str_table("t")
        t.put("big", b"\x00\xff" * 50_000)
        t.put("empty", b"")
    with db.begin_read() as txn:
        t = txn.str_table("t")
        assert t.get("big") == b"\x00\xff" * 50_000
        assert t.get("empty") == b""
        assert all(type(v) is bytes for _, v in t.range())


def test_put_many_accepts_a_generator(db: redb.Database) -> None:
    """put_many consumes any iterable, including a generator, and returns the number stored."""

    def pairs() -> Iterator[tuple[int, bytes]]:
        for i in range(1000):
            yield i, str(i).encode()

    with db.begin_write() as txn:
        assert txn.u64_table("u").put_many(pairs()) == 1000
        assert txn.u64_table("u").put_many(iter([])) == 0
    with db.begin_read() as txn:
        t = txn.u64_table("u")
        assert len(t) == 1000
        assert t.get(999) == b"999"


def test_put_many_is_all_or_nothing_on_bad_input(db: redb.Database) -> None:
    """If any item of put_many is malformed, or the iterable raises, nothing of that call is
    written and the error propagates (TypeError, or the iterable's own exception)."""

    def failing() -> Iterator[tuple[str, bytes]]:
        yield "g1", b"1"
        raise RuntimeError("generator failed")

    with db.begin_write() as txn:
        t = txn.str_table("t")
        with pytest.raises(TypeError, match="str table key must be str"):
            t.put_many([("ok", b"1"), (1, b"2")])
        with pytest.raises(TypeError, match="pairs"):
            t.put_many([("ok", b"1", b"extra")])
        with pytest.raises(TypeError):
            t.put_many(None)
        with pytest.raises(RuntimeError, match="generator failed"):
            t.put_many(failing())
        assert len(t) == 0
        assert t.get("ok") is None
        assert t.get("g1") is None


@pytest.mark.parametrize(
    ("bad_key", "fragment"),
    [
        ("7", "not str"),
        (-1, "not int"),
        (2**64, "not int"),
        (1.5, "not float"),
        (None, "not NoneType"),
        (b"7", "not bytes"),
    ],
)
def test_u64_table_rejects_bad_keys(db: redb.Database, bad_key: object, fragment: str) -> None:
    """u64 keys must be ints in 0..2**64-1: anything else (str, negative, too big, float,
    None, bytes) raises TypeError from get, put, delete, put_many and range bounds alike."""
    with db.begin_write() as txn:
        t = txn.u64_table("u")
        calls = [
            lambda: t.put(bad_key, b"v"),  # type: ignore[arg-type]
            lambda: t.get(bad_key),  # type: ignore[arg-type]
            lambda: t.delete(bad_key),  # type: ignore[arg-type]
            lambda: t.put_many([(bad_key, b"v")]),
        ]
        if bad_key is not None:  # None is a valid range bound: "unbounded"
            calls += [
                lambda: t.range(bad_key),  # type: ignore[arg-type]
                lambda: t.range(None, bad_key),  # type: ignore[arg-type]
            ]
        for call in calls:
            with pytest.raises(TypeError, match=fragment):
                call()
        assert len(t) == 0


@pytest.mark.parametrize("bad_key", [1, b"k", None, 1.0])
def test_str_table_rejects_non_str_keys(db: redb.Database, bad_key: object) -> None:
    """str tables refuse non-str keys with TypeError."""
    with db.begin_write() as txn:
        t = txn.str_table("t")
        with pytest.raises(TypeError, match="str table key must be str"):
            t.put(bad_key, b"v")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            t.get(bad_key)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            t.delete(bad_key)  # type: ignore[arg-type]


def test_str_key_with_lone_surrogate_is_type_error(db: redb.Database) -> None:
    """A str that is not valid Unicode scalar values (lone surrogate) cannot be a key: TypeError."""
    with db.begin_write() as txn, pytest.raises(TypeError):
        txn.str_table("t").put("\ud800", b"v")


def test_writes_in_read_transaction_raise_redb_error(db: redb.Database) -> None:
    """put, put_many and delete through a read transaction raise RedbError and change nothing."""
    with db.begin_write() as txn:
        txn.str_table("t").put("a", b"1")
    with db.begin_read() as txn:
        t = txn.str_table("t")
        with pytest.raises(redb.RedbError, match="read-only in a read transaction"):
            t.put("b", b"2")
        with pytest.raises(redb.RedbError):
            t.put_many([("b", b"2")])
        with pytest.raises(redb.RedbError):
            t.delete("a")
        with pytest.raises(redb.RedbError):
            txn.u64_table("u").put(1, b"x")
    assert str_rows(db) == [("a", b"1")]


def test_table_opened_with_other_key_kind_raises_table_type_error(db: redb.Database) -> None:
    """Opening an existing table with the other key kind raises TableTypeError naming the file,
    in write and read transactions, for reads and writes."""
    with db.begin_write() as txn:
        txn.str_table("s").put("a", b"1")
        txn.u64_table("n").put(1, b"1")
        with pytest.raises(redb.TableTypeError, match="s"):
            txn.u64_table("s").get(1)
        with pytest.raises(redb.TableTypeError):
            txn.str_table("n").put("x", b"1")
    with db.begin_read() as txn:
        with pytest.raises(redb.TableTypeError) as info:
            txn.u64_table("s").range()
        assert db.path in str(info.value)
        with pytest.raises(redb.TableTypeError):
            len(txn.str_table("n"))
        # the right kinds still work in the same transaction
        assert txn.str_table("s").get("a") == b"1"
        assert txn.u64_table("n").get(1) == b"1"


def test_missing_tables_read_as_empty(db_path: Path) -> None:
    """In a read transaction a table that was never created reads as empty (get None, len 0,
    range []), on a fresh database, on one with other tables, and read-only."""
    database = redb.Database(db_path)
    with database.begin_read() as txn:
        for t in (txn.str_table("nope"), txn.u64_table("nope")):
            assert len(t) == 0
            assert t.range() == []
        assert txn.str_table("nope").get("x") is None
        assert txn.u64_table("nope").get(0) is None
        assert txn.str_table("nope").range(prefix="x") == []
    with database.begin_write() as txn:
        txn.str_table("exists").put("k", b"v")
    database.close()
    with redb.Database(db_path, readonly=True) as ro, ro.begin_read() as txn:
        assert len(txn.str_table("still-missing")) == 0
        assert txn.u64_table("still-missing").get(5) is None
        assert len(txn.str_table("exists")) == 1


# --------------------------------------------------------------------------------------------
# range
# --------------------------------------------------------------------------------------------

PREFIX_KEYS = ["a", "a/b", "a/c", "ab", "b", "b/a", ""]


@pytest.fixture
def prefix_db(db: redb.Database) -> redb.Database:
    with db.begin_write() as txn:
        txn.str_table("t").put_many((k, k.encode()) for k in PREFIX_KEYS)
        txn.u64_table("u").put_many((i, str(i).encode()) for i in range(0, 100, 10))
    return db


def keys(rows: list[tuple[object, bytes]]) -> list[object]:
    return [k for k, _ in rows]


def test_range_start_inclusive_end_exclusive(prefix_db: redb.Database) -> None:
    """range(start, end) yields start <= key < end in key order, with either bound optional."""
    with prefix_db.begin_read() as txn:
        t = txn.str_table("t")
        assert keys(t.range()) == sorted(PREFIX_KEYS)
        assert keys(t.range("a", "b")) == ["a", "a/b", "a/c", "ab"]
        assert keys(t.range("a/b", "ab")) == ["a/b", "a/c"]
        assert keys(t.range("ab")) == ["ab", "b", "b/a"]
        assert keys(t.range(None, "a/b")) == ["", "a"]
        assert keys(t.range(end="a")) == [""]
        assert t.range("b", "b") == []
        assert t.range("c", "a") == []  # inverted bounds: empty, no error
        u = txn.u64_table("u")
        assert keys(u.range(20, 50)) == [20, 30, 40]
        assert keys(u.range(21, 50)) == [30, 40]
        assert keys(u.range(20, 51)) == [20, 30, 40, 50]
        assert keys(u.range(90)) == [90]
        assert keys(u.range(None, 10)) == [0]
        assert u.range(50, 20) == []
        assert keys(u.range(0, U64_MAX)) == list(range(0, 100, 10))


def test_range_prefix_does_not_leak_into_longer_keys(prefix_db: redb.Database) -> None:
    """prefix='a' matches 'a', 'a/b', 'a/c', 'ab' (all start with 'a'), prefix='a/' does not
    match 'a' or 'ab', and the values come back with their keys."""
    with prefix_db.begin_read() as txn:
        t = txn.str_table("t")
        assert t.range(prefix="a") == [(k, k.encode()) for k in ["a", "a/b", "a/c", "ab"]]
        assert keys(t.range(prefix="a/")) == ["a/b", "a/c"]
        assert keys(t.range(prefix="ab")) == ["ab"]
        assert keys(t.range(prefix="b")) == ["b", "b/a"]
        assert keys(t.range(prefix="a/b")) == ["a/b"]
        assert keys(t.range(prefix="a/bc")) == []
        assert keys(t.range(prefix="c")) == []
        assert keys(t.range(prefix="")) == sorted(PREFIX_KEYS)


def test_range_limit_and_reverse(prefix_db: redb.Database) -> None:
    """limit caps the result, reverse yields last key first, and they combine with prefix and
    with start/end (reverse+limit take the *last* matching keys)."""
    with prefix_db.begin_read() as txn:
        t = txn.str_table("t")
        assert keys(t.range(limit=2)) == ["", "a"]
        assert t.range(limit=0) == []
        assert keys(t.range(limit=100)) == sorted(PREFIX_KEYS)
        assert keys(t.range(reverse=True)) == sorted(PREFIX_KEYS, reverse=True)
        assert keys(t.range(prefix="a", reverse=True)) == ["ab", "a/c", "a/b", "a"]
        assert keys(t.range(prefix="a", reverse=True, limit=2)) == ["ab", "a/c"]
        assert keys(t.range(prefix="a", limit=2)) == ["a", "a/b"]
        assert keys(t.range("a", "b", reverse=True, limit=1)) == ["ab"]
        u = txn.u64_table("u")
        assert keys(u.range(10, 60, reverse=True, limit=3)) == [50, 40, 30]
        assert keys(u.range(limit=1, reverse=True)) == [90]
        with pytest.raises(OverflowError):
            t.range(limit=-1)


def test_range_prefix_argument_errors(prefix_db: redb.Database) -> None:
    """prefix on a u64 table is a TypeError; prefix together with start or end is a ValueError."""
    with prefix_db.begin_read() as txn:
        with pytest.raises(TypeError, match="prefix scans need a str table"):
            txn.u64_table("u").range(prefix="1")
        t = txn.str_table("t")
        with pytest.raises(ValueError, match="either prefix or start/end"):
            t.range("a", prefix="a")
        with pytest.raises(ValueError, match="either prefix or start/end"):
            t.range(None, "b", prefix="a")
        with pytest.raises(ValueError):
            t.range("a", "b", prefix="a")


def test_range_unicode_prefixes(db: redb.Database) -> None:
    """Prefix scans are correct for non-ASCII keys, including prefixes ending at the code points
    where computing the upper bound is tricky: U+D7FF (next scalar is U+E000, skipping the
    surrogates) and U+10FFFF (no successor: the bound carries into the previous character or
    becomes unbounded)."""
    ks = [
        "é",
        "éa",
        "ê",
        "日本",
        "日本語",
        "日付",
        "\ud7ff",
        "\ud7ffz",
        "\ue000",
        "a\U0010ffff",
        "a\U0010ffffz",
        "b",
        "\U0010ffff",
        "\U0010ffff\U0010ffff",
        "😀x",
        "😀",
        "😁",
    ]
    with db.begin_write() as txn:
        txn.str_table("t").put_many((k, k.encode()) for k in ks)
    with db.begin_read() as txn:
        t = txn.str_table("t")
        # Python's code-point order equals redb's UTF-8 byte order
        assert keys(t.range()) == sorted(ks)
        for prefix in ["é", "日本", "日", "\ud7ff", "a\U0010ffff", "a", "\U0010ffff", "😀", "😁"]:
            expected = [k for k in sorted(ks) if k.startswith(prefix)]
            assert keys(t.range(prefix=prefix)) == expected, prefix
            assert keys(t.range(prefix=prefix, reverse=True)) == expected[::-1], prefix


def test_range_fields_returns_only_the_named_members(db: redb.Database) -> None:
    """range(fields=...) cuts each JSON object down to the named top-level members, their
    values byte for byte (nested ones, escapes, non-ASCII); a name written with an
    escape still matches; a value that is no JSON object (an array, a string, bytes that
    are no JSON, trailing text) comes back whole, for the caller's decoding to report."""
    objects = {
        "a": b'{"body":"x [[y]] \\"q\\" \\u00e9","id":"1","n":[1,{"k":2.5e3}],"size":3}',
        "b": '{"id":"\u65e5","t\\u0069tle":"x","meta":{"id":"inner"}}'.encode(),
        "c": b'{"body":"only a body"}',
        "d": b'  {"id" : "spaced" ,\n "size" : -1 }  ',
    }
    whole = {"e": b"[1, 2]", "f": b'"text"', "g": b"\xff\xfe not json", "h": b'{"id":"1"} x'}
    with db.begin_write() as txn:
        txn.str_table("t").put_many([*objects.items(), *whole.items()])
    with db.begin_read() as txn:
        got = dict(txn.str_table("t").range(fields=["id", "size", "n", "title"]))
        assert dict(txn.str_table("t").range(fields=[])) == {
            **{k: b"{}" for k in objects},
            **whole,
        }
        assert dict(txn.str_table("t").range(prefix="a", fields=["id"])) == {"a": b'{"id":"1"}'}
    assert got["a"] == b'{"id":"1","n":[1,{"k":2.5e3}],"size":3}'
    assert json.loads(got["b"]) == {"id": "\u65e5", "title": "x"}
    assert got["c"] == b"{}"
    assert json.loads(got["d"]) == {"id": "spaced", "size": -1}
    assert {k: got[k] for k in whole} == whole


ALPHABET_JSON = 'ab"\\\x00\x1f\x7fé\u2028\ud7ff\ue000\U0010ffff😀'
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(alphabet=ALPHABET_JSON)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    obj=st.dictionaries(
        st.sampled_from(["id", "path", "body", "size", "é", 'a"b', ""]), json_value
    ),
    fields=st.lists(st.sampled_from(["id", "size", "é", 'a"b', "", "absent"]), max_size=4),
)
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_range_fields_matches_the_python_model(
    db: redb.Database, obj: dict[str, object], fields: list[str]
) -> None:
    """The compiled projection decodes to what the SQLite backend's Python one does."""
    from ccc_watch.store.backend import project

    blob = json.dumps(obj, ensure_ascii=False).encode()
    with db.begin_write() as txn:
        txn.str_table("t").put("k", blob)
    with db.begin_read() as txn:
        [(_, got)] = txn.str_table("t").range(fields=fields)
    assert json.loads(got) == json.loads(project(blob, tuple(fields)))
    assert json.loads(got) == {k: v for k, v in obj.items() if k in fields}


# Characters chosen to exercise UTF-8 length boundaries and prefix_end's special cases.
ALPHABET = "ab/\x00\x7f\x80é\u07ff\u0800\ud7ff\ue000\uffff\U00010000😀\U0010ffff"
small_text = st.text(alphabet=ALPHABET, max_size=4)


@given(prefix=small_text, key=small_text)
@settings(max_examples=300, deadline=None)
def test_prefix_end_bounds_exactly_the_keys_with_the_prefix(prefix: str, key: str) -> None:
    """prefix_end (the one definition both backends' prefix scans use): every key with
    the prefix sorts below it, and every key above the prefix without it sorts at or
    above it; None only when no string is greater (a prefix of U+10FFFF alone)."""
    end = redb.prefix_end(prefix)
    if end is None:
        assert set(prefix) <= {"\U0010ffff"}
        return
    assert prefix < end and not end.startswith(prefix)
    with_prefix = prefix + key
    assert with_prefix < end
    if key >= prefix and not key.startswith(prefix):
        assert key >= end


def str_model(
    keys_: list[str],
    *,
    start: str | None = None,
    end: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
    reverse: bool = False,
) -> list[str]:
    out = sorted(keys_)
    if prefix is not None:
        out = [k for k in out if k.startswith(prefix)]
    if start is not None:
        out = [k for k in out if k >= start]
    if end is not None:
        out = [k for k in out if k < end]
    if reverse:
        out.reverse()
    return out if limit is None else out[:limit]


@MODEL_SETTINGS
@given(
    ks=st.lists(small_text, unique=True, max_size=40),
    data=st.data(),
    limit=st.none() | st.integers(0, 12),
    reverse=st.booleans(),
)
def test_range_prefix_matches_python_model(
    ks: list[str], data: st.DataObject, limit: int | None, reverse: bool
) -> None:
    """For random key sets and prefixes (often a prefix of a stored key), range(prefix=...,
    limit, reverse) equals filtering a sorted Python list, both inside the write transaction and
    in a read transaction after commit."""
    if ks:
        from_key = st.sampled_from(ks).flatmap(
            lambda k: st.integers(0, len(k)).map(lambda n: k[:n])
        )
        prefix = data.draw(small_text | from_key, label="prefix")
    else:
        prefix = data.draw(small_text, label="prefix")
    expected = str_model(ks, prefix=prefix, limit=limit, reverse=reverse)
    with tempfile.TemporaryDirectory() as tmp, redb.Database(Path(tmp) / "m.redb") as database:
        with database.begin_write() as txn:
            t = txn.str_table("t")
            t.put_many((k, k.encode()) for k in ks)
            got = t.range(prefix=prefix, limit=limit, reverse=reverse)
            assert keys(got) == expected
        with database.begin_read() as txn:
            got = txn.str_table("t").range(prefix=prefix, limit=limit, reverse=reverse)
        assert got == [(k, k.encode()) for k in expected]


@MODEL_SETTINGS
@given(
    ks=st.lists(small_text, unique=True, max_size=40),
    start=st.none() | small_text,
    end=st.none() | small_text,
    limit=st.none() | st.integers(0, 12),
    reverse=st.booleans(),
)
def test_range_str_bounds_match_python_model(
    ks: list[str], start: str | None, end: str | None, limit: int | None, reverse: bool
) -> None:
    """For random str keys and bounds, range(start, end, limit, reverse) equals the model
    start <= k < end over a sorted list (inverted bounds give an empty list)."""
    expected = str_model(ks, start=start, end=end, limit=limit, reverse=reverse)
    with tempfile.TemporaryDirectory() as tmp, redb.Database(Path(tmp) / "m.redb") as database:
        with database.begin_write() as txn:
            txn.str_table("t").put_many((k, b"") for k in ks)
        with database.begin_read() as txn:
            assert keys(txn.str_table("t").range(start, end, limit=limit, reverse=reverse)) == (
                expected
            )


u64_keys = st.integers(0, U64_MAX) | st.sampled_from([0, 1, 2**32, 2**63, U64_MAX - 1, U64_MAX])


@MODEL_SETTINGS
@given(
    ks=st.sets(u64_keys, max_size=40),
    deletions=st.sets(u64_keys, max_size=10),
    start=st.none() | u64_keys,
    end=st.none() | u64_keys,
    limit=st.none() | st.integers(0, 12),
    reverse=st.booleans(),
)
def test_range_u64_matches_python_model(
    ks: set[int],
    deletions: set[int],
    start: int | None,
    end: int | None,
    limit: int | None,
    reverse: bool,
) -> None:
    """For random u64 key sets (with deletions, compared against a Python set: delete() returns
    membership), range(start, end, limit, reverse) equals the sorted model and len matches."""
    model = sorted(ks - deletions)
    expected = [k for k in model if (start is None or k >= start) and (end is None or k < end)]
    if reverse:
        expected.reverse()
    if limit is not None:
        expected = expected[:limit]
    with tempfile.TemporaryDirectory() as tmp, redb.Database(Path(tmp) / "m.redb") as database:
        with database.begin_write() as txn:
            t = txn.u64_table("u")
            assert t.put_many((k, k.to_bytes(8, "big")) for k in ks) == len(ks)
            for k in deletions:
                assert t.delete(k) is (k in ks)
        with database.begin_read() as txn:
            t = txn.u64_table("u")
            assert len(t) == len(model)
            got = t.range(start, end, limit=limit, reverse=reverse)
        assert got == [(k, k.to_bytes(8, "big")) for k in expected]


# --------------------------------------------------------------------------------------------
# write transactions
# --------------------------------------------------------------------------------------------


def test_write_transaction_commits_on_clean_exit(db: redb.Database) -> None:
    """Leaving `with begin_write()` normally commits: the data is visible to a new reader and
    after reopening, and the transaction is no longer active."""
    with db.begin_write() as txn:
        assert txn.active is True
        txn.str_table("t").put("k", b"v")
    assert txn.active is False
    assert str_rows(db) == [("k", b"v")]
    path = db.path
    db.close()
    with redb.Database(path, readonly=True) as ro:
        assert str_rows(ro) == [("k", b"v")]


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt])
def test_write_transaction_aborts_when_exception_leaves_block(
    db: redb.Database, exc_type: type[BaseException]
) -> None:
    """An exception (even a BaseException) leaving `with begin_write()` aborts the transaction,
    propagates unchanged, and persists nothing of that transaction."""
    with db.begin_write() as txn:
        txn.str_table("t").put("before", b"1")
    with pytest.raises(exc_type, match="boom"), db.begin_write() as txn:
        txn.str_table("t").put("during", b"2")
        txn.str_table("t").delete("before")
        raise exc_type("boom")
    assert txn.active is False
    assert str_rows(db) == [("before", b"1")]
    # the writer slot was released: a new write transaction starts at once
    with db.begin_write() as txn2:
        assert txn2.str_table("t").get("during") is None


def test_write_transaction_explicit_commit_then_use_raises(db: redb.Database) -> None:
    """After commit(), the transaction and tables taken from it raise TransactionClosedError on
    use and on a second commit; abort() after commit is a harmless no-op."""
    txn = db.begin_write()
    table = txn.str_table("t")
    table.put("a", b"1")
    txn.commit()
    assert txn.active is False
    with pytest.raises(redb.TransactionClosedError, match="write transaction is already closed"):
        table.put("b", b"2")
    with pytest.raises(redb.TransactionClosedError):
        table.get("a")
    with pytest.raises(redb.TransactionClosedError):
        txn.str_table("t").range()
    with pytest.raises(redb.TransactionClosedError):
        txn.commit()
    txn.abort()
    txn.abort()
    assert str_rows(db) == [("a", b"1")]


def test_write_transaction_abort_is_idempotent_and_discards(db: redb.Database) -> None:
    """abort() discards changes, can be repeated, and commit() afterwards raises
    TransactionClosedError."""
    txn = db.begin_write()
    txn.str_table("t").put("a", b"1")
    assert txn.active is True
    txn.abort()
    assert txn.active is False
    txn.abort()
    with pytest.raises(redb.TransactionClosedError):
        txn.commit()
    assert str_rows(db) == []


def test_commit_or_abort_inside_with_block(db: redb.Database) -> None:
    """An explicit commit() or abort() inside `with` is respected; the clean exit does not try
    to commit again."""
    with db.begin_write() as txn:
        txn.str_table("t").put("committed", b"1")
        txn.commit()
    with db.begin_write() as txn:
        txn.str_table("t").put("aborted", b"2")
        txn.abort()
    assert str_rows(db) == [("committed", b"1")]


def test_write_transaction_sees_own_writes_readers_do_not(db: redb.Database) -> None:
    """Uncommitted writes are visible inside their write transaction, not to a read transaction
    begun meanwhile."""
    with db.begin_write() as txn:
        txn.str_table("t").put("k", b"old")
    with db.begin_write() as txn:
        txn.str_table("t").put("k", b"new")
        assert txn.str_table("t").get("k") == b"new"
        with db.begin_read() as reader:
            assert reader.str_table("t").get("k") == b"old"
    assert str_rows(db) == [("k", b"new")]


# --------------------------------------------------------------------------------------------
# read transactions
# --------------------------------------------------------------------------------------------


def test_read_transaction_snapshot_isolation(db: redb.Database) -> None:
    """A read transaction begun before a commit keeps seeing the old state (values, deletions,
    new tables, len); one begun after sees the commit."""
    with db.begin_write() as txn:
        txn.str_table("t").put_many([("a", b"1"), ("b", b"2")])
    before = db.begin_read()
    with db.begin_write() as txn:
        t = txn.str_table("t")
        t.put("a", b"changed")
        t.delete("b")
        t.put("c", b"3")
        txn.u64_table("new").put(1, b"x")
    after = db.begin_read()
    try:
        assert before.str_table("t").range() == [("a", b"1"), ("b", b"2")]
        assert len(before.u64_table("new")) == 0
        assert after.str_table("t").range() == [("a", b"changed"), ("c", b"3")]
        assert after.u64_table("new").get(1) == b"x"
    finally:
        before.close()
        after.close()


def test_read_transaction_close_is_idempotent(db: redb.Database) -> None:
    """close() ends a read transaction (twice is fine); its tables then raise
    TransactionClosedError; the context manager closes too."""
    txn = db.begin_read()
    table = txn.str_table("t")
    assert table.range() == []
    txn.close()
    txn.close()
    with pytest.raises(redb.TransactionClosedError, match="read transaction is already closed"):
        table.get("a")
    with db.begin_read() as txn2:
        t2 = txn2.str_table("t")
    with pytest.raises(redb.TransactionClosedError):
        len(t2)


# --------------------------------------------------------------------------------------------
# GIL release
# --------------------------------------------------------------------------------------------


@pytest.mark.timeout(60, method="thread")
def test_begin_write_waits_without_holding_the_gil(db: redb.Database) -> None:
    """Thread B's begin_write blocks inside Rust while the main thread holds a write
    transaction; the main thread can still run Python and commit (it could not if B held the
    GIL while waiting), after which B proceeds and sees the commit."""
    holder = db.begin_write()
    holder.str_table("t").put("from-a", b"a")
    waiting = threading.Event()
    got_txn = threading.Event()
    errors: list[BaseException] = []
    seen: list[bytes | None] = []

    def thread_b() -> None:
        try:
            waiting.set()
            with db.begin_write() as txn:
                got_txn.set()
                seen.append(txn.str_table("t").get("from-a"))
                txn.str_table("t").put("from-b", b"b")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    b = threading.Thread(target=thread_b, daemon=True)
    b.start()
    assert waiting.wait(10)
    time.sleep(0.3)
    # B is parked in begin_write, and this thread is running Python: the GIL is free
    assert not got_txn.is_set()
    assert b.is_alive()
    holder.commit()
    b.join(timeout=20)
    assert not b.is_alive(), "thread B never got its write transaction"
    assert errors == []
    assert seen == [b"a"]
    assert str_rows(db) == [("from-a", b"a"), ("from-b", b"b")]


@pytest.mark.timeout(120, method="thread")
def test_python_thread_runs_during_large_put_many(db: redb.Database) -> None:
    """While a 200k-item put_many runs in Rust, a pure-Python ticker thread keeps running: it
    records timestamps in the middle half of the call, which it could not do if the GIL were
    held for the whole call."""
    items = [(f"key{i:07d}", b"v" * 100) for i in range(200_000)]
    stamps: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            stamps.append(time.monotonic())
            time.sleep(0.0005)

    tick = threading.Thread(target=ticker, daemon=True)
    tick.start()
    try:
        time.sleep(0.05)
        with db.begin_write() as txn:
            t0 = time.monotonic()
            assert txn.str_table("big").put_many(items) == len(items)
            t1 = time.monotonic()
    finally:
        stop.set()
        tick.join(timeout=10)
    duration = t1 - t0
    middle = [s for s in stamps if t0 + duration / 4 < s < t1 - duration / 4]
    assert len(middle) >= 5, (duration, len(middle), len(stamps))
    with db.begin_read() as txn:
        assert len(txn.str_table("big")) == len(items)


# --------------------------------------------------------------------------------------------
# maintenance: check_integrity, compact
# --------------------------------------------------------------------------------------------


def test_check_integrity_true_on_good_database(db: redb.Database) -> None:
    """check_integrity returns True on an intact database, empty or not."""
    assert db.check_integrity() is True
    with db.begin_write() as txn:
        txn.u64_table("u").put_many((i, b"x" * 100) for i in range(5000))
    assert db.check_integrity() is True
    with db.begin_read() as txn:
        assert len(txn.u64_table("u")) == 5000


def test_compact_returns_bool_and_data_survives(db: redb.Database, db_path: Path) -> None:
    """compact returns a bool (True after mass deletion, False once nothing is left to move),
    shrinks the file, and keeps every remaining row intact."""
    assert isinstance(db.compact(), bool)
    with db.begin_write() as txn:
        txn.u64_table("u").put_many((i, b"x" * 500) for i in range(20_000))
    with db.begin_write() as txn:
        t = txn.u64_table("u")
        for i in range(20_000):
            if i % 100:
                t.delete(i)
    size_before = db_path.stat().st_size
    assert db.compact() is True
    assert db.compact() is False
    assert db_path.stat().st_size < size_before
    assert db.check_integrity() is True
    with db.begin_read() as txn:
        rows = txn.u64_table("u").range()
    assert rows == [(i, b"x" * 500) for i in range(0, 20_000, 100)]


def test_maintenance_refused_while_transaction_open(db: redb.Database) -> None:
    """check_integrity and compact need no transaction open: with a read or write transaction
    alive they raise RedbError instead of blocking."""
    reader = db.begin_read()
    with pytest.raises(redb.RedbError, match="transaction is still in progress"):
        db.check_integrity()
    with pytest.raises(redb.RedbError):
        db.compact()
    reader.close()
    writer = db.begin_write()
    with pytest.raises(redb.RedbError):
        db.check_integrity()
    writer.abort()
    assert db.check_integrity() is True


def test_maintenance_on_read_only_database_raises(db_path: Path) -> None:
    """check_integrity and compact on a read-only database raise RedbError."""
    redb.Database(db_path).close()
    with redb.Database(db_path, readonly=True) as ro:
        with pytest.raises(redb.RedbError, match="read-only"):
            ro.check_integrity()
        with pytest.raises(redb.RedbError, match="read-only"):
            ro.compact()


DEADLOCK_CHILD = """
import os, sys, threading, time
from ccc_watch import _redb as r

db = r.Database(sys.argv[1])
mode = sys.argv[2]
held = db.begin_write()           # this thread holds the write transaction
waiting = threading.Event()

def other():
    waiting.set()
    with db.begin_write() as t:   # parks in Rust until `held` ends
        t.str_table("t").put("b", b"")

threading.Thread(target=other, daemon=True).start()
waiting.wait(10)
time.sleep(0.3)

def watchdog():
    time.sleep(3)
    print("HUNG", flush=True)
    os._exit(3)

threading.Thread(target=watchdog, daemon=True).start()
try:
    getattr(db, mode)()
except r.RedbError as e:
    print("raised", type(e).__name__, flush=True)
else:
    print("returned", flush=True)
held.abort()
"""


@pytest.mark.parametrize("mode", ["close", "check_integrity", "compact"])
def test_maintenance_by_writer_with_waiting_thread_does_not_hang(db_path: Path, mode: str) -> None:
    """With thread B parked in begin_write, the thread holding the write transaction calling
    close/check_integrity/compact must return or raise promptly, not hang forever."""
    result = run_child(DEADLOCK_CHILD, db_path, mode, timeout=30)
    assert "HUNG" not in result.stdout, f"{mode}() hung; stderr={result.stderr[-500:]}"
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# signals: a wait in Rust lets Ctrl-C and SIGTERM through
# --------------------------------------------------------------------------------------------

INTERRUPTED_WAIT_CHILD = """
import signal, sys, threading, time
from ccc_watch import _redb as r

db = r.Database(sys.argv[1])
if sys.argv[2] == "SIGTERM":
    def stop(signum, frame):
        raise SystemExit("stopped by SIGTERM")
    signal.signal(signal.SIGTERM, stop)
held, release = threading.Event(), threading.Event()

def holder():                     # another thread of this process holds the write slot
    with db.begin_write() as w:
        w.str_table("t").put("held", b"1")
        held.set()
        release.wait(60)

threading.Thread(target=holder, daemon=True).start()
held.wait(10)
print("waiting", flush=True)
t0 = time.monotonic()
try:
    db.begin_write()              # parks in Rust until the holder commits, or a signal
    print("got the write slot", flush=True)
except (KeyboardInterrupt, SystemExit) as e:
    print(f"interrupted {type(e).__name__} {time.monotonic() - t0:.3f}", flush=True)
release.set()                     # the holder commits; the abandoned wait gives the slot back
deadline = time.monotonic() + 10
while True:
    try:
        with db.begin_write() as w:
            w.str_table("t").put("after", b"2")
        break
    except r.RedbError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
with db.begin_read() as t:
    print("rows", sorted(k for k, _ in t.str_table("t").range()), flush=True)
"""


@pytest.mark.parametrize(
    ("sig", "raised"),
    [(signal.SIGINT, "KeyboardInterrupt"), (signal.SIGTERM, "SystemExit")],
)
def test_signal_interrupts_begin_write_waiting_for_another_thread(
    db_path: Path, sig: signal.Signals, raised: str
) -> None:
    """A thread of the process holds the write transaction; the main thread waits in
    begin_write(). A real SIGINT (or SIGTERM with a handler that raises) sent by this process
    reaches the Python handler within a bounded time, and its exception leaves begin_write();
    once the holder commits, the next begin_write() works (the abandoned wait released the
    slot) and both commits are there."""
    with Child(INTERRUPTED_WAIT_CHILD, db_path, sig.name) as child:
        assert child.readline() == "waiting"
        time.sleep(0.5)  # the child is parked in begin_write by now
        sent = time.monotonic()
        child.proc.send_signal(sig)
        line = child.readline(timeout=10)
        latency = time.monotonic() - sent
        assert line.startswith(f"interrupted {raised} "), line
        assert latency < 2.0, latency
        assert child.readline() == "rows ['after', 'held']"
        assert child.finish() == 0


# --------------------------------------------------------------------------------------------
# multiple processes
# --------------------------------------------------------------------------------------------

LOCKED_CHILD = """
import sys
from ccc_watch import _redb as r
try:
    r.Database(sys.argv[1])
except r.DatabaseLockedError as e:
    print("LOCKED", e)
else:
    print("OPENED")
with r.Database(sys.argv[1], readonly=True) as ro, ro.begin_read() as t:
    print("READ", t.str_table("t").get("k"))
"""


def test_second_process_cannot_open_writable(db: redb.Database) -> None:
    """While this process holds the database writable, another process's writable open raises
    DatabaseLockedError naming the path (its read-only open works and sees our commit); once we
    close, the other process can open it writable."""
    with db.begin_write() as txn:
        txn.str_table("t").put("k", b"v")
    result = run_child(LOCKED_CHILD, db.path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("LOCKED "), result.stdout
    assert "database is open in another process" in lines[0]
    assert db.path in lines[0]
    assert lines[1] == "READ b'v'"

    db.close()
    result = run_child(LOCKED_CHILD, db.path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "OPENED"


FOLLOWER_CHILD = """
import json, sys
from ccc_watch import _redb as r

db = r.Database(sys.argv[1], readonly=True)
old = db.begin_read()             # snapshot taken before any of the parent's steps
print("ready", flush=True)
for line in sys.stdin:
    with db.begin_read() as t:
        new_k = t.str_table("t").get("k")
        new_bulk = t.u64_table("bulk").range()
    old_bulk = old.u64_table("bulk").range()
    print(json.dumps({
        "new": new_k.decode(),
        "new_bulk": sorted({v.decode() for _, v in new_bulk}),
        "new_bulk_len": len(new_bulk),
        "old": old.str_table("t").get("k").decode(),
        "old_bulk": sorted({v.decode() for _, v in old_bulk}),
        "old_bulk_len": len(old_bulk),
    }), flush=True)
"""


def bulk_value(i: int) -> bytes:
    return str(i).encode() * (1000 // len(str(i)))


def test_read_only_process_follows_each_commit(db: redb.Database) -> None:
    """A process that opened the database read-only before our commits sees each new commit
    from a new read transaction (lockstep, 20 commits, each rewriting ~200 KB so that pages get
    freed and reused), while the read transaction it began before all of them keeps seeing the
    original state, untouched by page reuse."""

    def commit(i: int) -> None:
        with db.begin_write() as txn:
            txn.str_table("t").put("k", str(i).encode())
            txn.u64_table("bulk").put_many((j, bulk_value(i)) for j in range(200))

    commit(0)
    with Child(FOLLOWER_CHILD, db.path) as child:
        assert child.readline() == "ready"
        for i in range(1, 21):
            commit(i)
            child.send("next")
            seen = json.loads(child.readline())
            assert seen["new"] == str(i)
            assert seen["new_bulk"] == [bulk_value(i).decode()]
            assert seen["new_bulk_len"] == 200
            assert seen["old"] == "0"
            assert seen["old_bulk"] == [bulk_value(0).decode()]
            assert seen["old_bulk_len"] == 200
        assert child.finish() == 0


KILLED_WRITER_CHILD = """
import sys
from ccc_watch import _redb as r

db = r.Database(sys.argv[1])
with db.begin_write() as w:
    w.str_table("t").put_many((f"c{i:05d}", b"committed") for i in range(1000))
w = db.begin_write()
t = w.str_table("t")
t.put_many((f"u{i:06d}", b"u" * 100) for i in range(100_000))
t.delete("c00000")
w.u64_table("uncommitted").put(1, b"x")
print("ready", flush=True)
sys.stdin.readline()              # parent SIGKILLs us here, mid-transaction
print("not killed", flush=True)
"""


def test_sigkilled_writer_needs_repair_and_loses_only_uncommitted(tmp_path: Path) -> None:
    """A writer process SIGKILLed with a big write transaction open leaves a file that a
    read-only open refuses with a clear RepairNeededError; a writable open repairs it, the
    committed rows are all there, and none of the uncommitted changes are. Before the kill, a
    read-only open beside the live writer sees just the committed data."""
    path = tmp_path / "killed.redb"
    with Child(KILLED_WRITER_CHILD, path) as child:
        assert child.readline(timeout=CHILD_TIMEOUT) == "ready"
        with redb.Database(path, readonly=True) as ro, ro.begin_read() as txn:
            t = txn.str_table("t")
            assert len(t) == 1000
            assert t.range(prefix="u", limit=1) == []
            assert len(txn.u64_table("uncommitted")) == 0
        assert child.kill() == -signal.SIGKILL

    with pytest.raises(redb.RepairNeededError) as info:
        redb.Database(path, readonly=True)
    message = str(info.value)
    assert "not closed cleanly" in message
    assert "writable open" in message
    assert str(path) in message

    with redb.Database(path) as repaired:
        with repaired.begin_read() as txn:
            t = txn.str_table("t")
            assert len(t) == 1000
            assert t.get("c00000") == b"committed"
            assert t.range() == [(f"c{i:05d}", b"committed") for i in range(1000)]
            assert t.range(prefix="u") == []
            assert len(txn.u64_table("uncommitted")) == 0
        assert repaired.check_integrity() is True
    with redb.Database(path, readonly=True) as ro:
        assert len(str_rows(ro)) == 1000


# --------------------------------------------------------------------------------------------
# corruption
# --------------------------------------------------------------------------------------------

PAGE = 4096
CORRUPTION_ROWS = 5000


def marker(i: int) -> bytes:
    return f"<<value-{i:05d}>>".encode().ljust(200, b".")


def make_corruptible_db(path: Path) -> None:
    with redb.Database(path) as database, database.begin_write() as txn:
        txn.str_table("t").put_many((f"k{i:05d}", marker(i)) for i in range(CORRUPTION_ROWS))


def smash_page_holding(path: Path, i: int) -> list[int]:
    """Overwrite with 0xA5 every page holding row i's value (a live b-tree leaf, not free
    space); return the page offsets smashed."""
    data = path.read_bytes()
    needle = f"<<value-{i:05d}>>".encode()
    pages = []
    at = data.find(needle)
    while at != -1:
        pages.append(at // PAGE * PAGE)
        at = data.find(needle, at + 1)
    assert pages, "value not found in the file"
    with path.open("r+b") as f:
        for page in pages:
            f.seek(page)
            f.write(b"\xa5" * PAGE)
    return pages


def smash(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


CORRUPTION_PROBE = """
import sys
from ccc_watch import _redb as r

path = sys.argv[1]

def attempt(label, fn):
    try:
        fn()
    except r.RedbError as e:      # anything else (PanicException!) escapes: rc != 0
        print(label, type(e).__name__, str(e).replace("\\n", " "), flush=True)
    else:
        print(label, "no-error", flush=True)

def read_everything():
    db = r.Database(path, readonly=True)
    txn = db.begin_read()
    t = txn.str_table("t")
    t.get("k02500")
    len(t)
    t.range()
    t.range(reverse=True)

def check():
    db = r.Database(path)
    if db.check_integrity() is not True:
        raise SystemExit("check_integrity returned without raising")

attempt("read", read_everything)
attempt("check", check)
"""


def probe(path: Path) -> dict[str, str]:
    result = run_child(CORRUPTION_PROBE, path)
    assert result.returncode == 0, (
        f"probe died (rc={result.returncode}): stdout={result.stdout!r} "
        f"stderr={result.stderr[-2000:]!r}"
    )
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(out) == {"read", "check"}, result.stdout
    return out


def test_corrupted_data_page_raises_redb_error_not_crash(tmp_path: Path) -> None:
    """Garbage over a b-tree leaf in the middle of a closed file, in a subprocess that exits
    normally (no segfault, abort or escaping PanicException): a read-only open trusts the file,
    and redb panics reading the page, which is an InternalError naming the file and where redb
    panicked; check_integrity verifies the checksums and raises CorruptionError."""
    path = tmp_path / "corrupt.redb"
    make_corruptible_db(path)
    size = path.stat().st_size
    pages = smash_page_holding(path, CORRUPTION_ROWS // 2)
    assert all(PAGE <= p < size for p in pages)
    out = probe(path)
    assert out["read"].startswith("InternalError"), out
    assert "a bug in ccc_watch._redb" in out["read"]
    assert "panicked at redb-4.6.0/src/" in out["read"]
    assert str(path) in out["read"]
    assert out["check"].startswith("CorruptionError"), out
    assert str(path) in out["check"]


def test_corrupted_header_slots_raise_corruption_error(tmp_path: Path) -> None:
    """Garbage over the header's commit slots (bytes 64..576; the magic number intact) is
    caught at open time: both read-only and writable opens raise CorruptionError."""
    path = tmp_path / "corrupt-header.redb"
    make_corruptible_db(path)
    smash(path, 64, b"\xa5" * 512)
    out = probe(path)
    assert out["read"].startswith("CorruptionError"), out
    assert out["check"].startswith("CorruptionError"), out


def test_damaged_magic_number_raises_redb_error(tmp_path: Path) -> None:
    """Overwriting the first bytes of the file (the magic number) must raise a RedbError
    subclass, like every other kind of damage."""
    path = tmp_path / "bad-magic.redb"
    make_corruptible_db(path)
    smash(path, 0, b"NOT-REDB!")
    out = probe(path)
    assert out["read"].startswith("CorruptionError"), out
    assert out["check"].startswith("CorruptionError"), out


READ_AFTER_PANIC_CHILD = """
import sys
from ccc_watch import _redb as r

db = r.Database(sys.argv[1], readonly=True)
try:
    with db.begin_read() as txn:
        txn.str_table("t").range()
except r.RedbError as e:
    print(type(e).__name__, flush=True)
else:
    print("no-error", flush=True)
"""


def test_redb_error_escapes_read_transaction_with_block(tmp_path: Path) -> None:
    """The error from reading a damaged page (an InternalError: redb panics) propagates out of
    `with begin_read()` (closing the transaction must not replace it with another error)."""
    path = tmp_path / "corrupt.redb"
    make_corruptible_db(path)
    smash_page_holding(path, CORRUPTION_ROWS // 2)
    result = run_child(READ_AFTER_PANIC_CHILD, path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "InternalError"


WRITE_AFTER_PANIC_CHILD = """
import os, sys, threading, time
from ccc_watch import _redb as r

def watchdog():
    time.sleep(3)
    print("HUNG", flush=True)
    os._exit(3)

db = r.Database(sys.argv[1])
w = db.begin_write()
try:
    w.str_table("t").range()
except r.InternalError:           # redb panics on the damaged page
    print("panicked", flush=True)
try:
    w.abort()                      # must release the writer slot
    print("aborted", flush=True)
except r.RedbError as e:
    print("abort raised", type(e).__name__, flush=True)
threading.Thread(target=watchdog, daemon=True).start()
db.begin_write().abort()
print("next writer ok", flush=True)
"""


def test_write_transaction_released_after_a_panic(tmp_path: Path) -> None:
    """After an InternalError (redb panicked on a damaged page) inside a write transaction,
    abort() succeeds and releases the writer slot, so the next begin_write() does not hang."""
    path = tmp_path / "corrupt.redb"
    make_corruptible_db(path)
    smash_page_holding(path, CORRUPTION_ROWS // 2)
    result = run_child(WRITE_AFTER_PANIC_CHILD, path, timeout=30)
    assert result.returncode == 0, (result.stdout, result.stderr[-2000:])
    assert result.stdout.splitlines() == ["panicked", "aborted", "next writer ok"]
