"""The Coalescer hands a move over together with the paths it touches, and a move
chain split across its batches keeps every note's id."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ccc_watch.changes import events as events_module
from ccc_watch.changes.events import EventTranslator
from ccc_watch.changes.reconcile import reconcile
from ccc_watch.daemon import coalescer as coalescer_module
from ccc_watch.daemon.coalescer import Coalescer
from ccc_watch.index.indexer import Indexer
from ccc_watch.store import Store, open_store
from ccc_watch.vault.ignore import IgnoreRules


def test_a_moved_note_is_not_read_before_its_move_is_handed_over() -> None:
    """While another path is still unsettled, neither the move nor its destination is
    released; once everything settled, both come in one batch (C8: the destination read
    alone was stored as a new note, then the late move put the old record over it)."""
    c = Coalescer(0.05)
    c.move("a.md", "b.md", "/v/b.md")
    time.sleep(0.08)
    c.mark("busy.md", "/v/busy.md")  # unsettled: holds the moves back
    first = c.take()
    assert first.moves == [] and first.ready == []
    time.sleep(0.08)
    second = c.take()
    assert second.moves == [("a.md", "b.md")]
    assert sorted(k for k, _ in second.ready) == ["b.md", "busy.md"]


def test_untouched_settled_paths_do_not_wait_for_moves() -> None:
    c = Coalescer(0.05)
    c.mark("calm.md", "/v/calm.md")
    c.move("a.md", "b.md", "/v/b.md")
    time.sleep(0.08)
    c.mark("busy.md", "/v/busy.md")
    batch = c.take()
    assert batch.moves == [] and batch.ready == [("calm.md", "/v/calm.md")]


def test_a_rescan_waits_for_the_events_to_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder move asks for a reconcile; renames that follow it within the settle
    window go with the same batch, ahead of the scan (seen in CI: a scan released at
    once ran between a swap's first move and the rest). Under endless events the rescan
    still comes, RESCAN_WAIT after it was asked for."""
    c = Coalescer(0.1)
    c.rescan("folder moved: dir", expected=True)
    c.move("a.md", "swap.md", "/v/swap.md")
    assert c.take().rescan is None  # too soon
    time.sleep(0.06)
    c.move("b.md", "a.md", "/v/a.md")  # the watcher's late events
    c.move("swap.md", "b.md", "/v/b.md")
    time.sleep(0.06)
    assert c.take().rescan is None  # the last event came 60 ms ago
    time.sleep(0.06)
    batch = c.take()
    assert batch.rescan == "folder moved: dir" and batch.expected
    assert batch.moves == [("a.md", "swap.md"), ("b.md", "a.md"), ("swap.md", "b.md")]
    assert sorted(k for k, _ in batch.ready) == ["a.md", "b.md"]
    assert c.take().rescan is None  # taken once

    monkeypatch.setattr(coalescer_module, "RESCAN_WAIT", 0.3)
    c.rescan("periodic reconcile")
    started = time.monotonic()
    while (batch := c.take()).rescan is None:
        assert time.monotonic() - started < 5
        c.mark("busy.md", "/v/busy.md")  # an event every 20 ms
        time.sleep(0.02)
    assert time.monotonic() - started >= 0.3
    assert batch.rescan == "periodic reconcile" and not batch.expected


def _daemon_round(c: Coalescer, events: EventTranslator, store: Store) -> None:
    """What the daemon does with one batch: its operations applied, the paths to read
    again given back to the coalescer."""
    batch = c.take(force=True)
    found = events.operations(store, batch.moves, batch.ready, c.is_dirty)
    store.apply(found.ops)
    for key, path in found.deferred:
        c.mark(key, path)


@pytest.mark.parametrize("split", [[3], [1, 2], [2, 1], [1, 1, 1]], ids=str)
def test_a_swap_split_across_batches_keeps_each_id(tmp_path: Path, split: list[int]) -> None:
    """B4's swap of two notes (mv a.md swap.md; mv b.md a.md; mv swap.md b.md) with its
    moves handed over in one batch or several, as when the watcher's thread falls
    behind the settle window (seen in CI): swap.md, gone when its first batch reads it,
    is not deleted then but read again, and the later move takes its record on. Each
    note keeps its id, and nothing is left at swap.md."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("# a\nAAA\n", encoding="utf-8")
    (vault / "b.md").write_text("# b\nBBB\n", encoding="utf-8")
    with open_store(tmp_path / "data", vault_root=vault) as store:
        indexer = Indexer(vault, str(store.meta["vault_id"]))
        reconcile(vault, store, indexer, IgnoreRules.load(vault), offline=True)
        ids = {r["path"]: r["id"] for r in store.records()}
        moves = [("a.md", "swap.md"), ("b.md", "a.md"), ("swap.md", "b.md")]
        for old, new in moves:  # the files are all in place before any event is read
            os.rename(vault / old, vault / new)
        events = EventTranslator(vault, indexer, IgnoreRules.load(vault), settle=0)
        c = Coalescer(0)
        done = 0
        for n in split:
            for old, new in moves[done : done + n]:
                c.move(old, new, str(vault / new))
            done += n
            _daemon_round(c, events, store)
        _daemon_round(c, events, store)  # what was given back, read again
        _daemon_round(c, events, store)
        records = {r["path"]: r for r in store.records()}
    assert sorted(records) == ["a.md", "b.md"]
    assert (records["a.md"]["body"], records["b.md"]["body"]) == ("# b\nBBB\n", "# a\nAAA\n")
    assert (records["a.md"]["id"], records["b.md"]["id"]) == (ids["b.md"], ids["a.md"])


def test_a_note_moved_and_then_gone_is_deleted_once_its_hold_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move whose destination is gone when read (moved on out of the vault, or
    deleted) holds the record at its new path, read again meanwhile; once the hold
    ends with no move come for it, the record is deleted. A plain delete is not held."""
    monkeypatch.setattr(events_module, "MOVED_HOLD", 0.3)
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("# a\n", encoding="utf-8")
    with open_store(tmp_path / "data", vault_root=vault) as store:
        indexer = Indexer(vault, str(store.meta["vault_id"]))
        reconcile(vault, store, indexer, IgnoreRules.load(vault), offline=True)
        os.rename(vault / "a.md", vault / "tmp.md")
        (vault / "tmp.md").unlink()
        events = EventTranslator(vault, indexer, IgnoreRules.load(vault), settle=0)
        c = Coalescer(0)
        c.move("a.md", "tmp.md", str(vault / "tmp.md"))
        for _ in range(3):  # held, and read again
            _daemon_round(c, events, store)
            assert [r["path"] for r in store.records()] == ["tmp.md"]
            assert c.is_dirty("tmp.md")
        time.sleep(0.35)
        _daemon_round(c, events, store)
        assert list(store.records()) == [] and not c.is_dirty("tmp.md")
        assert events.arrivals == {}
        assert [(c.op, c.path) for c in store.changes_after(0)][-2:] == [
            ("move", "tmp.md"),
            ("delete", "tmp.md"),
        ]
        (vault / "b.md").write_text("# b\n", encoding="utf-8")  # a note that never moved
        reconcile(vault, store, indexer, IgnoreRules.load(vault), offline=True)
        (vault / "b.md").unlink()
        c.mark("b.md", str(vault / "b.md"))
        _daemon_round(c, events, store)
        assert list(store.records()) == [] and not c.is_dirty("b.md")
