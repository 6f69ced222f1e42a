"""The Coalescer hands a move over together with the paths it touches."""

from __future__ import annotations

import time

from ccc_watch.daemon.coalescer import Coalescer


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
