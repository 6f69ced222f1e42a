"""I8 against a real `ccc-watch run`: a note made private (any way its level can be
written, and when the daemon is stopped meanwhile) has its old text in no file under
the data dir, free pages, WALs and temp files included, within the documented bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_harness import Daemon, wait_until
from test_privacy import CHANNELS, leaks_in, markers, note_text

# README "Privacy": the scrub begins SCRUB_DELAY (2 s) after the change is stored and
# lasts as long as a copy of the store and a rebuild of the mirror (a small vault here).
BOUND = 15.0


def _unclosed(m: dict[str, str]) -> str:
    """A block opened and never closed: all of it is body, with a classification line."""
    return note_text(m, "classification: SECRET\n").replace("\n---\n# ", "\n# ", 1)


# How a note is made private: its new text from its markers.
WAYS: dict[str, Callable[[dict[str, str]], str]] = {
    "secret": lambda m: note_text(m, "classification: SECRET\n"),
    "confidential": lambda m: note_text(m, "classification: CONFIDENTIAL\n"),
    "broken": lambda m: note_text(m, "tags: [a\nclassification: SECRET\n"),
    "listed": lambda m: note_text(m, "Classification: [secret]\n"),
    "unclosed": _unclosed,
}
UNSURE = {"broken", "listed", "unclosed"}  # each gets a classification-unsure line


@pytest.mark.parametrize(
    ("backend", "mode"), [("redb", "live"), ("redb", "stopped"), ("sqlite", "live")]
)
def test_old_text_of_notes_made_private_leaves_every_file_within_the_bound(
    tmp_path: Path, backend: str, mode: str
) -> None:
    vault, data = tmp_path / "vault", tmp_path / "data"
    vault.mkdir()
    notes = {way: markers(way) for way in WAYS}
    public = markers("public")
    (vault / "public.md").write_text(note_text(public, "classification: PUBLIC\n"))
    for i in range(200):  # records around the notes', so their pages are not the last
        (vault / f"filler {i:03d}.md").write_text(f"# filler {i}\n" + "words " * 200)
    for way, m in notes.items():
        (vault / f"{way}.md").write_text(note_text(m))  # INTERNAL, by default
    d = Daemon(vault, data, tmp_path / "daemon.log")
    d.env["CCC_WATCH_BACKEND"] = backend
    d.run_args = ["--log-file", str(tmp_path / "file.log")]
    d.start()
    try:
        # The text is in the store's and the mirror's files: the grep can see it there.
        def indexed() -> bool:
            found = [leaks_in(data, m) or {} for m in notes.values()]
            return all(
                any(name.startswith("index.") for name in f) and "mirror.duckdb" in f for f in found
            )

        wait_until(indexed, "every note's text in the store and the mirror")
        if mode == "stopped":
            assert d.stop() == 0
        for way, m in notes.items():
            (vault / f"{way}.md").write_text(WAYS[way](m))
        if mode == "stopped":
            d.start()
        started = time.monotonic()
        wait_until(lambda: all(leaks_in(data, m) is None for m in notes.values()),
                   f"no private text under the data dir within {BOUND} s", BOUND)  # fmt: skip
        took = time.monotonic() - started
        found = {way: leaks_in(data, m) for way, m in notes.items()}
        assert found == dict.fromkeys(notes), found
        # The PUBLIC note keeps its text, in both databases.
        kept = leaks_in(data, public) or {}
        assert set(CHANNELS) <= {c for cs in kept.values() for c in cs}, kept
        assert "mirror.duckdb" in kept
        # Every unsure note was reported, and no log line carries a note's text.
        log = (tmp_path / "file.log").read_text() + (tmp_path / "daemon.log").read_text()
        reported = {line.split("path=")[1].split()[0] for line in log.splitlines()
                    if "DRIFT kind=classification-unsure" in line}  # fmt: skip
        assert reported == {f"{way}.md" for way in UNSURE}, reported
        assert not any(word in log for m in notes.values() for word in m.values())
        assert took < BOUND
        assert d.stop() == 0
    finally:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()


def _level(d: Daemon) -> str | None:
    """note.md's stored level, or None while the store cannot be read (being written)."""
    try:
        return str(d.records()["note.md"]["classification"])
    except Exception:
        return None


def test_a_scrub_cut_short_by_kill_9_runs_at_the_next_start(tmp_path: Path) -> None:
    """The store marks a scrub as due before the change that makes a note private is
    applied: a daemon killed before its scrub (2 s later) scrubs at its next start,
    though the start-up scan then finds nothing that changed."""
    vault, data = tmp_path / "vault", tmp_path / "data"
    vault.mkdir()
    m = markers("k")
    for i in range(200):
        (vault / f"filler {i:03d}.md").write_text(f"# filler {i}\n" + "words " * 200)
    (vault / "note.md").write_text(note_text(m))
    d = Daemon(vault, data, tmp_path / "daemon.log")
    d.start()
    try:
        wait_until(lambda: "mirror.duckdb" in (leaks_in(data, m) or {}), "the note mirrored")
        (vault / "note.md").write_text(note_text(m, "classification: SECRET\n"))
        deadline = time.monotonic() + 10
        while _level(d) != "SECRET":  # polled closely: the scrub follows within 2 s
            assert time.monotonic() < deadline, "the change was never stored"
            time.sleep(0.02)
        d.kill9()
        assert leaks_in(data, m), "killed before its scrub, the old text is still there"
        d.start()
        wait_until(lambda: leaks_in(data, m) is None, "the scrub at the next start", BOUND)
        assert d.stop() == 0
    finally:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()
