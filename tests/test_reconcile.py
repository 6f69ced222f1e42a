"""Reconcile (`ccc-watch scan`), drift lines and `ccc-watch verify`, on real files with
the real store and mirror: SCENARIOS.md D1 (changes while stopped), A9-A11 (stat
tricks), B1/B3 (renames, folder moves while stopped), F2/F3 (conflict copies)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import own_vault, tree_digest

from ccc_watch.changes.rebuild import rebuild
from ccc_watch.changes.reconcile import ReconcileResult, reconcile
from ccc_watch.changes.verify import verify
from ccc_watch.index.indexer import Indexer
from ccc_watch.log.drift import Drift, conflict_original
from ccc_watch.mirror.mirror import Mirror
from ccc_watch.store import Store, open_store
from ccc_watch.vault.ignore import IgnoreRules


def scan(vault: Path, data: Path) -> ReconcileResult:
    with open_store(data, vault_root=vault.resolve()) as store:
        indexer = Indexer(vault.resolve(), str(store.meta["vault_id"]))
        result = reconcile(
            vault.resolve(),
            store,
            indexer,
            IgnoreRules.load(vault),
            offline=True,
            previous_scan_ns=store.meta.get("last_scan_started_ns"),
        )
        Mirror(data).flush(store)
    return result


def clean(vault: Path, data: Path) -> None:
    """`verify --deep` finds nothing."""
    rules, mirror = IgnoreRules.load(vault), Mirror(data)
    diffs = verify(vault.resolve(), data, rules, mirror=mirror, deep=True)
    assert diffs == [], "\n".join(d.line() for d in diffs)


def ids(data: Path) -> dict[str, str]:
    with open_store(data, readonly=True) as store:
        return {r["path"]: r["id"] for r in store.records()}


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, Path]:
    vault = tmp_path / "vault"
    own_vault(vault, notes=150, seed=21, bad=False)
    data = tmp_path / "data"
    rebuild(vault, data)
    with open_store(data, readonly=True) as store:
        Mirror(data).rebuild(store)
    clean(vault, data)
    return vault, data


def test_changes_made_while_stopped_are_applied_and_reported(indexed: tuple[Path, Path]) -> None:
    """D1: create, modify, delete and rename while no daemon runs; one scan fixes all,
    each finding is a DRIFT line, the rename keeps the note's id, verify is clean."""
    vault, data = indexed
    before = ids(data)
    (vault / "Projects" / "fresh.md").write_text("# fresh\n")
    note = sorted((vault / "Research").glob("*.md"))[0]
    note.write_text(note.read_text() + "\nedited\n")
    gone = sorted((vault / "Projects").glob("Note*.md"))[0]
    gone.unlink()
    moved_from = sorted((vault / "Research").glob("*.md"))[1]
    moved_to = vault / "Projects" / "renamed.md"
    moved_from.rename(moved_to)

    result = scan(vault, data)
    kinds = {(d.kind, d.path) for d in result.drift}
    rel = lambda p: p.relative_to(vault).as_posix()  # noqa: E731
    assert ("created-offline", "Projects/fresh.md") in kinds
    assert ("modified-offline", rel(note)) in kinds
    assert ("deleted-offline", rel(gone)) in kinds
    assert ("created-offline", "Projects/renamed.md") in kinds
    assert ("deleted-offline", rel(moved_from)) not in kinds  # a move, not a delete
    assert ids(data)["Projects/renamed.md"] == before[rel(moved_from)]
    clean(vault, data)
    assert scan(vault, data).drift == []  # nothing left to find


def test_a_folder_moved_while_stopped_keeps_every_id(indexed: tuple[Path, Path]) -> None:
    """B3 offline: a renamed folder is a set of moves, matched by content."""
    vault, data = indexed
    before = ids(data)
    (vault / "Research").rename(vault / "Studies")
    scan(vault, data)
    after = ids(data)
    for path, note_id in before.items():
        if path.startswith("Research/"):
            assert after["Studies/" + path.removeprefix("Research/")] == note_id
    clean(vault, data)


def test_mtime_set_back_is_still_seen(indexed: tuple[Path, Path]) -> None:
    """A10: same size, content changed, mtime restored: ctime/inode give it away."""
    vault, data = indexed
    note = sorted((vault / "Projects").glob("*.md"))[0]
    st = note.stat()
    text = note.read_text()
    note.write_text(text.replace("a", "b", 1) if "a" in text else "x" + text[1:])
    os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert note.stat().st_size == st.st_size and note.stat().st_mtime_ns == st.st_mtime_ns
    result = scan(vault, data)
    assert [d.kind for d in result.drift] == ["modified-offline"]
    clean(vault, data)


def test_touch_only_refreshes_stat_fields(indexed: tuple[Path, Path]) -> None:
    """A9: a new mtime with the same bytes is no content drift; the record follows."""
    vault, data = indexed
    note = sorted((vault / "Projects").glob("*.md"))[0]
    os.utime(note, ns=(note.stat().st_atime_ns, note.stat().st_mtime_ns + 5_000_000_000))
    result = scan(vault, data)
    assert result.drift == [] and result.changes == 1
    with open_store(data, readonly=True) as store:
        rec = store.get(note.relative_to(vault).as_posix())
    assert rec is not None and rec["mtime_ns"] == note.stat().st_mtime_ns


def test_racy_writes_are_rehashed(tmp_path: Path) -> None:
    """A11: a file whose mtime is not older than the last scan's start is read again
    even when its stat looks unchanged."""
    vault = tmp_path / "v"
    vault.mkdir()
    (vault / "n.md").write_text("one\n")
    data = tmp_path / "d"
    scan(vault, data)
    with open_store(data) as store:  # pretend the last scan started after the write
        store.set_meta("last_scan_started_ns", (vault / "n.md").stat().st_mtime_ns)
    assert scan(vault, data).hashed == 1
    assert scan(vault, data).hashed == 0  # the new scan started after the write


def test_conflict_copies_are_indexed_and_flagged(tmp_path: Path) -> None:
    """F2/F3: Syncthing, Obsidian Sync and Dropbox conflict copies are records, and a
    sync-conflict drift line names the note each shadows."""
    vault = tmp_path / "v"
    vault.mkdir()
    (vault / "n.md").write_text("n\n")
    data = tmp_path / "d"
    scan(vault, data)
    copies = {
        "n.sync-conflict-20260413-091523-K3X2R2T.md": "n.md",
        "n (Conflicted copy MyMac 202411281430).md": "n.md",
        "n (Jane's conflicted copy 2024-01-15).md": "n.md",
    }
    for name in copies:
        (vault / name).write_text(f"{name}\n")
    result = scan(vault, data)
    flagged = {d.path: d.detail for d in result.drift if d.kind == "sync-conflict"}
    assert flagged == {name: "conflict copy of n.md" for name in copies}
    assert set(ids(data)) == {"n.md", *copies}


@pytest.mark.parametrize(
    ("name", "original"),
    [
        ("a/n.sync-conflict-20260413-091523-K3X2R2T.md", "a/n.md"),
        ("n (Conflicted copy MyMac 202411281430).md", "n.md"),
        ("n (Jane's conflicted copy 2024-01-15).md", "n.md"),
        ("n.md", None),
        ("n 2.md", None),  # iCloud's pattern is only a guess: not flagged
    ],
)
def test_conflict_names(name: str, original: str | None) -> None:
    """The three documented conflict-copy shapes map back to their note."""
    assert conflict_original(name) == original


def test_drift_lines_have_a_stable_shape() -> None:
    """kind=, path= and detail= in this order; values with spaces are JSON strings."""
    assert Drift("deleted-offline", "a.md", "gone").line() == (
        "DRIFT kind=deleted-offline path=a.md detail=gone"
    )
    assert Drift("created-offline", "My Note.md", "new file").line() == (
        'DRIFT kind=created-offline path="My Note.md" detail="new file"'
    )
    assert Drift("missed-event", 'a"b=c.md').line() == (
        'DRIFT kind=missed-event path="a\\"b=c.md" detail=""'
    )


def test_newly_ignored_records_are_orphans(indexed: tuple[Path, Path]) -> None:
    """F6: adding a folder to userIgnoreFilters removes its records as orphan-record."""
    vault, data = indexed
    (vault / ".obsidian" / "app.json").write_text(
        '{"userIgnoreFilters": ["Archive/Excluded/", "Projects/"]}'
    )
    result = scan(vault, data)
    assert result.drift and {d.kind for d in result.drift} == {"orphan-record"}
    assert not [p for p in ids(data) if p.startswith("Projects/")]
    clean(vault, data)


def test_verify_reports_every_kind_of_difference(indexed: tuple[Path, Path]) -> None:
    """Files vs store (missing, orphan, checksum) and store vs mirror (lag, rows)."""
    vault, data = indexed
    note = sorted((vault / "Projects").glob("*.md"))[0]
    note.write_text("changed\n")
    (vault / "extra.md").write_text("x\n")
    shutil.rmtree(vault / "Data")
    kinds = {
        (d.where, d.kind) for d in verify(vault, data, IgnoreRules.load(vault), mirror=Mirror(data))
    }
    assert {
        ("store", "checksum-mismatch"),
        ("store", "missing-record"),
        ("store", "orphan-record"),
    } <= kinds
    with open_store(data, vault_root=vault.resolve()) as store:
        indexer = Indexer(vault.resolve(), str(store.meta["vault_id"]))
        reconcile(vault.resolve(), store, indexer, IgnoreRules.load(vault), offline=True)
    lagging = verify(vault, data, IgnoreRules.load(vault), mirror=Mirror(data))
    assert {d.kind for d in lagging} >= {"mirror-lag"}
    assert {d.where for d in lagging} == {"mirror"}
    with open_store(data, readonly=True) as store:
        Mirror(data).flush(store)
    clean(vault, data)


def test_scan_and_verify_never_touch_the_vault(indexed: tuple[Path, Path]) -> None:
    """I5 for the new commands."""
    vault, data = indexed
    before = tree_digest(vault)
    scan(vault, data)
    verify(vault, data, IgnoreRules.load(vault), mirror=Mirror(data))
    assert tree_digest(vault) == before


def test_store_type_is_reused(indexed: tuple[Path, Path]) -> None:
    """A scan on an unchanged vault writes nothing: no changelog entry, no drift."""
    vault, data = indexed
    with open_store(data, readonly=True) as store:
        head = Store.head(store)
    result = scan(vault, data)
    assert result.drift == [] and result.changes == 0
    with open_store(data, readonly=True) as store:
        assert store.head() == head


def test_a_note_renamed_within_the_settle_window_keeps_its_id(
    indexed: tuple[Path, Path],
) -> None:
    """A rename sets the file's ctime, so a reconcile in the daemon (which leaves files
    changed within its settle window to the events) defers the new name. It used to
    delete the old record all the same, and the event then made a new note with a new
    id: a note moved into a folder just made (whose creation asks for a reconcile)
    lost its id about one time in two. The record moves now, by inode, size and mtime."""
    vault, data = indexed
    before = ids(data)
    note = sorted((vault / "Research").glob("*.md"))[0]
    old_key = note.relative_to(vault).as_posix()
    (vault / "Fresh folder").mkdir()
    note.rename(vault / "Fresh folder" / "moved.md")
    with open_store(data, vault_root=vault.resolve()) as store:
        result = reconcile(
            vault.resolve(),
            store,
            Indexer(vault.resolve(), str(store.meta["vault_id"])),
            IgnoreRules.load(vault),
            offline=False,
            expected=True,
            settle_ns=60 * 10**9,  # everything just renamed is "in mid-write"
        )
    assert [k for k, _ in result.deferred] == ["Fresh folder/moved.md"]
    after = ids(data)
    assert old_key not in after
    assert after["Fresh folder/moved.md"] == before[old_key]


def _reconcile_deferring_everything(vault: Path, store: Store) -> ReconcileResult:
    """The daemon's reconcile, with every file just renamed still in its settle window."""
    return reconcile(
        vault,
        store,
        Indexer(vault, str(store.meta["vault_id"])),
        IgnoreRules.load(vault),
        offline=False,
        expected=True,
        settle_ns=60 * 10**9,
    )


def test_a_reconcile_amid_a_swap_leaves_the_renames_to_their_events(tmp_path: Path) -> None:
    """A folder move asks for a reconcile; seen in CI, it ran while the events of a swap
    (mv a.md swap.md; mv b.md a.md; mv swap.md b.md) were still coming: the first move
    had put a's record at swap.md, and the reconcile found a's inode at b.md and moved
    it there, over b's record, whose id was then lost. Now a record is not moved onto a
    deferred file whose own record's file was renamed too: both are left to the events,
    which, applied after, give each note its id. A rename over a note whose file is
    gone (mv a.md b.md, b's file replaced) still moves a's record there."""
    from ccc_watch.changes.events import EventTranslator
    from ccc_watch.daemon.coalescer import Coalescer
    from ccc_watch.store import Move

    vault = tmp_path / "vault"
    vault.mkdir()
    for name, text in {"a.md": "# a\nAAA\n", "b.md": "# b\nBBB\n", "c.md": "# c\n"}.items():
        (vault / name).write_text(text, encoding="utf-8")
    with open_store(tmp_path / "data", vault_root=vault) as store:
        indexer = Indexer(vault, str(store.meta["vault_id"]))
        reconcile(vault, store, indexer, IgnoreRules.load(vault), offline=True)
        ids = {r["path"]: r["id"] for r in store.records()}
        os.rename(vault / "a.md", vault / "swap.md")
        os.rename(vault / "b.md", vault / "a.md")
        os.rename(vault / "swap.md", vault / "b.md")
        store.apply([Move("a.md", "swap.md", cause="event")])  # the first event, applied
        result = _reconcile_deferring_everything(vault, store)
        assert sorted(k for k, _ in result.deferred) == ["a.md", "b.md"]
        assert {r["path"]: r["id"] for r in store.records()} == {
            "swap.md": ids["a.md"], "b.md": ids["b.md"], "c.md": ids["c.md"]
        }  # fmt: skip
        events = EventTranslator(vault, indexer, IgnoreRules.load(vault), settle=0)
        coalescer = Coalescer(0)
        coalescer.move("b.md", "a.md", str(vault / "a.md"))  # the late events
        coalescer.move("swap.md", "b.md", str(vault / "b.md"))
        batch = coalescer.take(force=True)
        store.apply(events.operations(store, batch.moves, batch.ready, lambda _: False).ops)
        assert {r["path"]: r["id"] for r in store.records()} == {
            "a.md": ids["b.md"], "b.md": ids["a.md"], "c.md": ids["c.md"]
        }  # fmt: skip

        os.replace(vault / "a.md", vault / "c.md")  # over c.md, whose file is gone
        result = _reconcile_deferring_everything(vault, store)
        assert [k for k, _ in result.deferred] == ["c.md"]
        assert {r["path"]: r["id"] for r in store.records()} == {
            "b.md": ids["a.md"], "c.md": ids["b.md"]
        }  # fmt: skip
