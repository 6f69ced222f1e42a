"""The Store contract, run against both backends (redb and SQLite) on real files.

Multi-process cases use real subprocesses (tests/workers/store_worker.py).
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from records import fake_blake3, make_record

from ccc_watch.errors import InvalidPathError, StoreError, StoreMissingError
from ccc_watch.store import Delete, Move, Store, Upsert, codec, open_store

WORKER = Path(__file__).parent / "workers" / "store_worker.py"
BACKENDS = ["redb", "sqlite"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path, backend: str) -> Iterator[Store]:
    s = open_store(data_dir, backend=backend, vault_root=Path("/vault"))
    yield s
    s.close()


def worker(*args: str, stdin: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expect_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != expected:
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"worker said {line!r}, expected {expected!r}; stderr:\n{err}")


def hash_index_is_consistent(s: Store) -> None:
    """Every record is listed under its blake3, and nothing else is."""
    records = list(s.records())
    for rec in records:
        assert rec["path"] in s.paths_with_blake3(rec["blake3"])
    with s.backend.reading() as tx:
        indexed = sorted(str(k) for k, _ in tx.scan("by_blake3"))
    assert indexed == sorted(f"{r['blake3']}:{r['path']}" for r in records)


# --- single operations ---------------------------------------------------------


def test_upsert_then_get_returns_the_record(store: Store) -> None:
    """An upserted record reads back equal, under its canonical path."""
    rec = make_record(1)
    change = store.upsert(rec, cause="test")
    assert change is not None
    assert (change.seq, change.op, change.path, change.cause) == (1, "upsert", rec["path"], "test")
    assert (change.blake3_before, change.blake3_after) == (None, rec["blake3"])
    assert change.id == rec["id"]
    assert store.get(rec["path"]) == rec
    assert len(store) == 1
    assert store.head() == 1


def test_reupsert_of_an_equal_record_appends_nothing(store: Store) -> None:
    """I3: the same upsert twice (even with a new indexing time) changes nothing."""
    rec = make_record(1)
    store.upsert(rec)
    stored = store.get(rec["path"])
    assert store.upsert(rec) is None
    assert store.upsert(dict(rec, indexed_at=rec["indexed_at"] + 60)) is None
    assert store.apply([Upsert(rec), Upsert(rec)]) == []
    assert store.head() == 1
    assert store.get(rec["path"]) == stored


def test_changed_content_is_a_new_changelog_entry(store: Store) -> None:
    """A changed record replaces the old one and moves its hash-index entry."""
    old = make_record(1, "first")
    new = make_record(1, "second")
    store.upsert(old)
    change = store.upsert(new)
    assert change is not None
    assert (change.blake3_before, change.blake3_after) == (old["blake3"], new["blake3"])
    assert store.get(new["path"]) == new
    assert store.paths_with_blake3(old["blake3"]) == []
    assert store.paths_with_blake3(new["blake3"]) == [new["path"]]


def test_a_parsed_field_change_alone_is_an_upsert(store: Store) -> None:
    """Same blake3 but a different parsed field (e.g. a new mtime) still updates."""
    rec = make_record(1)
    store.upsert(rec)
    change = store.upsert(dict(rec, mtime_ns=rec["mtime_ns"] + 1))
    assert change is not None and change.blake3_before == change.blake3_after
    stored = store.get(rec["path"])
    assert stored is not None and stored["mtime_ns"] == rec["mtime_ns"] + 1


def test_delete_is_idempotent(store: Store) -> None:
    """Deleting a present path logs it; deleting an absent one appends nothing."""
    rec = make_record(1)
    store.upsert(rec)
    change = store.delete(rec["path"], cause="event")
    assert change is not None
    assert (change.op, change.blake3_before, change.blake3_after) == (
        "delete",
        rec["blake3"],
        None,
    )
    assert store.get(rec["path"]) is None
    assert store.delete(rec["path"]) is None
    assert store.delete("never/was.md") is None
    assert store.head() == 2
    assert store.paths_with_blake3(rec["blake3"]) == []


def test_move_keeps_the_id_and_is_idempotent(store: Store) -> None:
    """A move carries the record (id included) to the new path, once."""
    rec = make_record(1)
    store.upsert(rec)
    change = store.move(rec["path"], "Elsewhere/Renamed.md", cause="event")
    assert change is not None
    assert (change.op, change.path, change.prev_path, change.id) == (
        "move",
        "Elsewhere/Renamed.md",
        rec["path"],
        rec["id"],
    )
    assert store.get(rec["path"]) is None
    assert store.get("Elsewhere/Renamed.md") == dict(rec, path="Elsewhere/Renamed.md")
    assert store.move(rec["path"], "Elsewhere/Renamed.md") is None
    assert store.move("Elsewhere/Renamed.md", "Elsewhere/Renamed.md") is None
    assert store.move("absent.md", "x.md") is None
    assert store.head() == 2
    hash_index_is_consistent(store)


def test_a_deferred_hash_index_is_written_whole_and_in_order(store: Store) -> None:
    """A bulk load keeps the index by content hash back (defer_hash_index) and writes
    it once (index_hashes): until then the table is empty; after, it is exactly what
    the records say, through replaced content, moves, deletes and a batch rolled back."""
    store.defer_hash_index()
    store.apply([Upsert(make_record(i)) for i in range(40)])
    store.upsert(make_record(3, "changed content"))
    store.move(make_record(4)["path"], "Elsewhere/Moved.md")
    store.delete(make_record(5)["path"])
    with pytest.raises(StoreError):  # a batch that fails writes nothing, index included
        store.apply([Upsert(make_record(99)), Upsert({"path": "no id.md"})])
    with store.backend.reading() as tx:
        assert list(tx.scan("by_blake3")) == []
    assert store.get(make_record(99)["path"]) is None
    store.index_hashes()
    hash_index_is_consistent(store)
    store.upsert(make_record(100))  # written as it comes again
    assert store.paths_with_blake3(make_record(100)["blake3"]) == [make_record(100)["path"]]
    hash_index_is_consistent(store)


def test_move_onto_an_existing_record_replaces_it(store: Store) -> None:
    """An atomic save renames a temp file over a note: the target's record is replaced."""
    target = make_record(1, "old content", path="n.md")
    temp = make_record(2, "new content", path="n.md.tmp")
    store.apply([Upsert(target), Upsert(temp)])
    store.move("n.md.tmp", "n.md")
    assert len(store) == 1
    moved = store.get("n.md")
    assert moved is not None and moved["blake3"] == temp["blake3"] and moved["id"] == temp["id"]
    assert store.paths_with_blake3(target["blake3"]) == []
    hash_index_is_consistent(store)


def test_keys_are_nfc_and_posix(store: Store) -> None:
    """A path given in NFD or with backslashes lands on the one NFC/POSIX key."""
    nfd = unicodedata.normalize("NFD", "Café/Crème brûlée.md")
    store.upsert(make_record(1, path=nfd))
    nfc = unicodedata.normalize("NFC", nfd)
    stored = store.get(nfc)
    assert stored is not None and stored["path"] == nfc
    assert store.get(nfd) == stored
    assert store.upsert(make_record(1, path="Café\\Crème brûlée.md")) is None
    assert len(store) == 1


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.md", "a/../../b.md", "", "."])
def test_paths_outside_the_vault_are_refused(store: Store, bad: str) -> None:
    """A key that is absolute, empty or climbs out of the vault is an error naming it."""
    with pytest.raises(InvalidPathError):
        store.upsert(make_record(1, path=bad))
    assert store.head() == 0


def test_a_record_without_an_id_is_refused(store: Store) -> None:
    """The store will not invent identity: a record needs its id."""
    rec = make_record(1)
    del rec["id"]
    with pytest.raises(StoreError, match="'id'"):
        store.upsert(rec)


# --- batches -------------------------------------------------------------------


def test_apply_runs_a_batch_in_order_with_consecutive_sequences(store: Store) -> None:
    """apply() numbers its changes consecutively and returns only those that changed."""
    a, b = make_record(1), make_record(2)
    changes = store.apply(
        [
            Upsert(a),
            Upsert(b),
            Upsert(a),  # no-op
            Move(b["path"], "b2.md"),
            Delete(a["path"]),
            Delete(a["path"]),  # no-op
        ]
    )
    assert [(c.seq, c.op) for c in changes] == [
        (1, "upsert"),
        (2, "upsert"),
        (3, "move"),
        (4, "delete"),
    ]
    assert [r["path"] for r in store.records()] == ["b2.md"]
    assert store.changes_after(0) == changes


def test_a_failing_batch_leaves_nothing_behind(store: Store) -> None:
    """One write transaction per batch: an error mid-batch rolls back the earlier ops."""
    store.upsert(make_record(0))
    bad = make_record(2)
    del bad["id"]
    with pytest.raises(StoreError):
        store.apply([Upsert(make_record(1)), Delete(make_record(0)["path"]), Upsert(bad)])
    assert [r["path"] for r in store.records()] == [make_record(0)["path"]]
    assert store.head() == 1
    assert store.upsert(make_record(3)) is not None
    assert store.head() == 2  # no gap left by the failed batch


def test_changes_after_reads_the_changelog_from_a_sequence(store: Store) -> None:
    """changes_after(seq, limit) returns entries seq+1.. in order."""
    store.apply([Upsert(make_record(i)) for i in range(10)])
    assert [c.seq for c in store.changes_after(0)] == list(range(1, 11))
    assert [c.seq for c in store.changes_after(7)] == [8, 9, 10]
    assert [c.seq for c in store.changes_after(2, limit=3)] == [3, 4, 5]
    assert store.changes_after(10) == []


def test_records_iterates_everything_in_path_order(store: Store) -> None:
    """Iteration pages through the table: every record once, sorted by path."""
    recs = [make_record(i) for i in range(2500)]
    store.apply([Upsert(r) for r in recs])
    paths = [r["path"] for r in store.records()]
    assert paths == sorted(r["path"] for r in recs)
    assert len(store) == 2500


def test_records_with_fields_hold_only_those_fields(store: Store) -> None:
    """records(fields) pages through the same records, each cut down to the fields
    asked for and its path and id; a field a record lacks is absent, not None."""
    recs = [make_record(i) for i in range(1500)]
    del recs[7]["blake3"]
    store.apply([Upsert(r) for r in recs])
    with store.snapshot() as snap:
        full = {r["path"]: r for r in snap.records()}
        cut = list(snap.records(("blake3", "size", "no-such-field")))
    assert [r["path"] for r in cut] == sorted(full)
    for r in cut:
        whole = full[r["path"]]
        assert r == {k: whole[k] for k in ("path", "id", "blake3", "size") if k in whole}
    assert any("blake3" not in r for r in cut)


def test_a_damaged_record_is_reported_by_a_fields_scan_too(data_dir: Path, backend: str) -> None:
    """A stored record that is no JSON object is returned whole by the cut-down scan,
    so the same StoreCorruptError names it."""
    from ccc_watch.errors import StoreCorruptError

    with open_store(data_dir, backend=backend) as s:
        s.apply([Upsert(make_record(1))])
        with s.backend.writing() as tx:
            tx.put("records", "bad.md", b'["not", "an object"]')
    with (
        open_store(data_dir, backend=backend, readonly=True) as s,
        s.snapshot() as snap,
        pytest.raises(StoreCorruptError),
    ):
        list(snap.records(("blake3",)))


def test_duplicate_contents_are_found_by_blake3(store: Store) -> None:
    """The blake3 index lists every path with the same content."""
    store.apply(
        [
            Upsert(make_record(1, "same", path="a.md")),
            Upsert(make_record(2, "same", path="b/a.md")),
            Upsert(make_record(3, "other", path="c.md")),
        ]
    )
    assert store.paths_with_blake3(fake_blake3("same")) == ["a.md", "b/a.md"]
    assert store.paths_with_blake3(fake_blake3("missing")) == []
    hash_index_is_consistent(store)


# --- files, meta, read-only -----------------------------------------------------


def test_meta_survives_reopening(data_dir: Path, backend: str) -> None:
    """Schema version, vault id and root are written once and kept."""
    with open_store(data_dir, backend=backend, vault_root=Path("/vault")) as s:
        first = dict(s.meta)
        s.upsert(make_record(1))
    assert first["schema_version"] == 2 and first["vault_root"] == "/vault"
    with open_store(data_dir, backend=backend, vault_root=Path("/vault")) as s:
        assert s.meta.items() >= first.items()  # and the chain's tip, since the upsert
        assert len(s) == 1


def test_a_store_of_another_vault_is_refused(data_dir: Path, backend: str) -> None:
    """Pointing a vault at a data dir that indexes another vault is an error naming both."""
    open_store(data_dir, backend=backend, vault_root=Path("/vault/a")).close()
    with pytest.raises(StoreError, match=r"/vault/a.*/vault/b"):
        open_store(data_dir, backend=backend, vault_root=Path("/vault/b"))


def test_files_are_private(data_dir: Path, backend: str) -> None:
    """The data folder is 0700 and the database file 0600."""
    with open_store(data_dir, backend=backend) as s:
        s.upsert(make_record(1))
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600


def test_read_only_store_reads_and_refuses_writes(data_dir: Path, backend: str) -> None:
    """A read-only open sees the data and refuses to write, with a clear error."""
    with open_store(data_dir, backend=backend) as s:
        s.upsert(make_record(1))
    with open_store(data_dir, backend=backend, readonly=True) as ro:
        assert ro.get(make_record(1)["path"]) == make_record(1)
        with pytest.raises(StoreError, match="read-only"):
            ro.upsert(make_record(2))


def test_read_only_open_of_a_missing_store(tmp_path: Path, backend: str) -> None:
    """No store yet is StoreMissingError, and nothing is created."""
    with pytest.raises(StoreMissingError):
        open_store(tmp_path / "none", backend=backend, readonly=True)
    assert not (tmp_path / "none").exists()


def test_a_future_schema_is_refused(data_dir: Path, backend: str) -> None:
    """A store written by a newer schema is not misread."""
    with open_store(data_dir, backend=backend) as s, s.backend.writing() as tx:
        tx.put("meta", "schema_version", codec.encode({"value": 99}))
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(data_dir, backend=backend)


# --- processes -----------------------------------------------------------------


def test_a_second_writer_gets_a_clear_error(store: Store, data_dir: Path, backend: str) -> None:
    """While one process writes, another writable open fails naming the file."""
    proc = worker("open", str(data_dir), backend, stdin=subprocess.DEVNULL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert out.startswith("StoreLockedError: store is open for writing in another process")
    assert str(store.path) in out


def test_a_reader_process_sees_each_commit_of_a_writer_process(
    data_dir: Path, backend: str
) -> None:
    """One process writes; this one, opened read-only before, follows every commit."""
    open_store(data_dir, backend=backend).close()
    proc = worker("hold", str(data_dir), backend)
    try:
        expect_line(proc, "ready")
        with open_store(data_dir, backend=backend, readonly=True) as reader:
            assert reader.get("shared.md") is None
            for i in range(1, 21):
                assert proc.stdin is not None
                proc.stdin.write(f"upsert {i}\n")
                proc.stdin.flush()
                expect_line(proc, f"ok {i}")
                rec = reader.get("shared.md")
                assert rec is not None and rec["body"] == f"version {i}"
                assert reader.head() == i
                assert [c.seq for c in reader.changes_after(i - 1)] == [i]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_kill_9_mid_batch_leaves_all_or_nothing(tmp_path: Path, backend: str) -> None:
    """A batch is one transaction even when its process is SIGKILLed while writing it.

    Several runs kill the writer at random moments; every time, after the store is
    reopened, it holds the batch whole or not at all, with a matching changelog and
    hash index. At least one run must have been killed before the commit.
    """
    n = 20_000
    rng = random.Random(1234)
    outcomes = []
    for run in range(4):
        data_dir = tmp_path / f"run{run}"
        with open_store(data_dir, backend=backend) as s:
            s.upsert(make_record(999_999, path="before.md"))
        proc = worker("batch", str(data_dir), backend, str(n))
        expect_line(proc, "start")
        time.sleep(rng.uniform(0.02, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        if backend == "redb":
            with pytest.raises(StoreError, match="not closed cleanly"):
                open_store(data_dir, backend=backend, readonly=True)
        with open_store(data_dir, backend=backend) as s:  # a writable open repairs
            count, head = len(s), s.head()
            assert (count, head) in {(1, 1), (n + 1, n + 1)}, (count, head)
            assert [c.seq for c in s.changes_after(0)] == list(range(1, head + 1))
            assert s.get("before.md") is not None
            hash_index_is_consistent(s)
            assert s.check_integrity()
        outcomes.append("committed" if count > 1 else "rolled back")
        if "committed" in out:
            assert count > 1, "the worker reported a commit that was lost"
    assert "rolled back" in outcomes, outcomes
