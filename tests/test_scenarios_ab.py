"""SCENARIOS.md groups A (CRUD and editor save patterns) and B (renames and moves)
against a real `ccc-watch run` process (tests/daemon_harness.py).

Each scenario runs, where the three ways make sense, with the watcher live, with the
daemon stopped during the action (the start-up reconcile finds it) and with the daemon
SIGSTOPped during the action (the kernel queues the events, the observer reads them all
at once after SIGCONT). test_daemon.py already runs A1, A3, A6, B1, B3, B6 and B7 live:
here they run stopped and paused only. Every test ends with `verify` clean (`finish`)
and then checks the scenario's own end state on the store records and the mirror's
events.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import blake3
import pytest
from daemon_harness import MODES, Daemon, start_daemon, wait_until

from ccc_watch.mirror.mirror import Mirror

Files = dict[str, str]
Start = Callable[..., Daemon]  # start(files, *run_args)
# watchdog holds an unpaired IN_MOVED_FROM this long waiting for its IN_MOVED_TO.
MOVE_PAIRING_DELAY = 0.5


def digest(data: str | bytes) -> str:
    """blake3 of a text (UTF-8) or of bytes, as the indexer stores it."""
    return blake3.blake3(data.encode() if isinstance(data, str) else data).hexdigest()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """start(files): build tmp_path/vault (an `.obsidian/` folder and the files, by
    vault-relative path), start a daemon on it and wait until it is clean."""
    daemons: list[Daemon] = []

    def _start(files: Files, *run_args: str) -> Daemon:
        vault = tmp_path / "vault"
        (vault / ".obsidian").mkdir(parents=True)
        for rel, text in files.items():
            write(vault / rel, text)
        d = start_daemon(tmp_path, vault, *run_args)
        daemons.append(d)
        return d

    yield _start
    for d in daemons:
        if d.proc is not None:
            d.proc.send_signal(signal.SIGCONT)
            d.proc.kill()
            d.proc.wait()


def finish(d: Daemon, timeout: float = 15) -> dict[str, dict[str, Any]]:
    """Wait for verify clean; the daemon must still run and have logged no traceback.
    Returns the records."""
    d.settle(timeout)
    assert d.proc is not None and d.proc.poll() is None, "the daemon exited"
    log = d.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    return d.records()


def events(d: Daemon, path: str | None = None) -> list[dict[str, Any]]:
    """The mirror's events (every store change), oldest first; only those naming path
    (as path or prev_path) when given."""
    with Mirror(d.data).connect() as con:
        rows = con.execute(
            "SELECT op, path, prev_path, id, blake3_before, blake3_after, cause "
            "FROM events ORDER BY seq"
        ).fetchall()
    names = ("op", "path", "prev_path", "id", "blake3_before", "blake3_after", "cause")
    out = [dict(zip(names, row, strict=True)) for row in rows]
    return [e for e in out if path is None or path in (e["path"], e["prev_path"])]


def barrier(d: Daemon, name: str = "zz-barrier.md") -> None:
    """Write a note and wait until the daemon has stored it: every event queued before
    it has been taken by then. For actions whose end state equals their start state,
    where `verify` clean proves nothing."""
    text = f"barrier {time.monotonic_ns()}\n"
    write(d.vault / name, text)
    wait_until(lambda: d.records().get(name, {}).get("blake3") == digest(text), name)


def under(records: dict[str, Any], folder: str) -> dict[str, Any]:
    return {p: r for p, r in records.items() if p.startswith(folder + "/")}


# --- A. Basic CRUD and editor save patterns -----------------------------------------


@pytest.mark.parametrize("mode", ["stopped", "paused"])
def test_a1_rapid_saves(start: Start, mode: str) -> None:
    """A1 (stopped, paused; live is in test_daemon.py): 50 writes within a second give
    one row with the last content, indexed once."""
    d = start({"keep.md": "keep\n"})
    note = d.vault / "n.md"
    with d.during(mode):
        for i in range(50):
            note.write_text(f"version {i}\n")
    records = finish(d)
    assert set(records) == {"keep.md", "n.md"}
    assert records["n.md"]["body"] == "version 49\n"
    final = [e for e in events(d, "n.md") if e["blake3_after"] == digest("version 49\n")]
    assert len(final) == 1, final
    if mode == "stopped":  # the start-up reconcile read the file once
        assert len(events(d, "n.md")) == 1


def _state(pid: int) -> str:
    """A process's state letter from /proc (R running, S sleeping, T stopped, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@contextmanager
def sigstop_at_first_stat(d: Daemon, path: Path) -> Iterator[Callable[[], None]]:
    """Attach strace to the daemon so that its first stat of `path` (which it makes once
    it has decided to index the file, before reading it) delivers SIGSTOP to it. The body
    makes the daemon look at the file, then calls the yielded function: it returns once
    the daemon is stopped there, with strace detached (the daemon stays stopped until
    SIGCONT). Skips when strace is missing or may not attach."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    assert d.proc is not None
    pid = d.proc.pid
    tracer = subprocess.Popen(
        [strace, "-f", "-p", str(pid), "-P", str(path.resolve()), "-e", "trace=%%stat",
         "-e", "inject=%%stat:signal=SIGSTOP:when=1"],
        stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    attached, stopped = threading.Event(), threading.Event()

    def read() -> None:
        assert tracer.stderr is not None
        for line in tracer.stderr:
            lines.append(line)
            if " attached" in line:
                attached.set()
            if "stopped by SIGSTOP" in line:
                stopped.set()
        attached.set()  # strace is gone: it could not attach

    def wait_stopped() -> None:
        assert stopped.wait(10), "the daemon never looked at the file:\n" + "".join(lines)
        tracer.terminate()
        tracer.wait(10)
        # The stop is a group stop: every thread of the daemon must take it, and under
        # load the main thread may still be running for a moment after strace detached.
        deadline = time.monotonic() + 5
        while (state := _state(pid)) != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state == "T", f"daemon state {state} after strace detached"

    threading.Thread(target=read, daemon=True).start()
    try:
        attached.wait(10)
        if not any(" attached" in line for line in lines):
            pytest.skip("strace cannot attach to the daemon: " + "".join(lines))
        yield wait_stopped
    finally:
        if tracer.poll() is None:
            tracer.terminate()
            tracer.wait(10)


# Obsidian-style rewrites (open with O_TRUNC, write in two chunks), one per pause.
REWRITES = """
import json, pathlib, sys, time
note, texts, pauses = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), json.loads(sys.argv[3])
for i, pause in enumerate(pauses, start=1):
    text = (texts / str(i)).read_text()
    with open(note, "w") as f:
        f.write(text[: len(text) // 2])
        f.flush()
        f.write(text[len(text) // 2 :])
    time.sleep(pause)
"""
# Truncate, let the stopped daemon go on, write 80 ms later.
TRUNCATE_RESUME_WRITE = """
import os, pathlib, signal, sys, time
text = pathlib.Path(sys.argv[2]).read_text()
with open(sys.argv[1], "w") as f:
    os.kill(int(sys.argv[3]), signal.SIGCONT)
    time.sleep(0.08)
    f.write(text)
"""


def test_a2_in_place_rewrites_never_store_a_partial_body(start: Start) -> None:
    """A2 (live only: the race is between the writer and the daemon's own read; a stopped
    or paused daemon reads nothing while the file is being written). Obsidian rewrites a
    note in place: open with O_TRUNC, write, close. While a reader polls the store, no
    stored state (seen by the reader, or kept in the changelog) may be an empty or
    half-written body. First a dozen rewrites, each in two chunks, about one settle
    window apart, so that the daemon's read sometimes falls inside one; then one rewrite
    made to fall inside the daemon's read for certain: the daemon is stopped at its first
    stat of the note (it has decided to index it), the note is truncated, the daemon
    continued, and the text written 80 ms later: less than the settle window, so a
    daemon that lets a note settle after its last event never reads it in between."""
    rng = random.Random(2)
    contents = [f"# save {i}\n" + "lorem ipsum " * rng.randint(50, 4000) + "\n" for i in range(15)]
    good = {digest(c) for c in contents}
    # A settle window of 0.5 s: the 80 ms below must stay shorter than it even when a
    # loaded machine oversleeps.
    settle = 0.5
    d = start({"n.md": contents[0]}, "--settle", str(settle))
    note = d.vault / "n.md"
    bad: list[str] = []
    polls = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal polls
        while not done.is_set():
            try:
                rec = d.records().get("n.md")
            except Exception:  # the store between states: look again
                time.sleep(0.002)
                continue
            polls += 1
            if rec is None or rec["blake3"] not in good or rec["body"] not in contents:
                bad.append(repr(rec and (rec["size"], rec["body"][:40])))
            time.sleep(0.002)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        # The writer is its own process: this one's polling thread must not hold it up
        # between the truncation and the write (that would be an empty file for real).
        texts = d.vault.parent / "texts"
        texts.mkdir()
        for i, text in enumerate(contents):
            (texts / f"{i}").write_text(text)
        pauses = [rng.uniform(0.8, 1.6) * settle for _ in contents[1:-2]]
        subprocess.run(
            [sys.executable, "-c", REWRITES, str(note), str(texts), json.dumps(pauses)],
            check=True, timeout=60)  # fmt: skip
        with sigstop_at_first_stat(d, note) as wait_stopped:
            note.write_text(contents[-2])
            wait_stopped()
        assert d.proc is not None  # truncated while the daemon is about to read:
        subprocess.run(
            [sys.executable, "-c", TRUNCATE_RESUME_WRITE, str(note),
             str(texts / f"{len(contents) - 1}"), str(d.proc.pid)],
            check=True, timeout=60)  # fmt: skip
        records = finish(d)
    finally:
        done.set()
        reader.join()
    assert polls > 10
    assert records["n.md"]["body"] == contents[-1]
    stored = [e["blake3_after"] for e in events(d, "n.md")]
    assert set(stored) <= good, f"{len(set(stored) - good)} partial or empty bodies stored"
    assert not bad, bad[:5]


@pytest.mark.parametrize("mode", ["stopped", "paused"])
def test_a3_atomic_save_with_ignore_patterns(start: Start, mode: str) -> None:
    """A3 (stopped, paused): `.n.md.tmp` renamed over `n.md` updates the note and leaves
    no temp row, with `*.tmp` and `.*` in .cccignore."""
    d = start({"n.md": "# n\nold\n", ".cccignore": "*.tmp\n.*\n"})
    note_id = d.records()["n.md"]["id"]
    with d.during(mode):
        tmp = write(d.vault / ".n.md.tmp", "# n\nsaved atomically\n")
        os.replace(tmp, d.vault / "n.md")
    records = finish(d)
    assert set(records) == {"n.md"}
    assert records["n.md"]["body"] == "# n\nsaved atomically\n"
    assert records["n.md"]["id"] == note_id
    assert records["n.md"]["inode"] == os.stat(d.vault / "n.md").st_ino


@pytest.mark.parametrize("mode", MODES)
def test_a4_vim_save(start: Start, mode: str) -> None:
    """A4: vim probes with `4913`, renames `n.md` to `n.md~`, writes a new `n.md` and
    unlinks the backup: `n.md` has the new content and inode, no `~` or probe row."""
    d = start({"n.md": "old vim text\n", "other.md": "other\n"})
    old = d.records()["n.md"]
    with d.during(mode):
        probe = write(d.vault / "4913", "")
        probe.unlink()
        os.rename(d.vault / "n.md", d.vault / "n.md~")
        write(d.vault / "n.md", "new vim text, longer\n")
        (d.vault / "n.md~").unlink()
    records = finish(d)
    assert set(records) == {"n.md", "other.md"}
    new = records["n.md"]
    assert new["body"] == "new vim text, longer\n"
    assert new["inode"] == os.stat(d.vault / "n.md").st_ino != old["inode"]
    assert new["id"] == old["id"]
    assert [e["op"] for e in events(d, "n.md~")] == []


@pytest.mark.parametrize("mode", MODES)
def test_a5_jetbrains_save(start: Start, mode: str) -> None:
    """A5: write `n.md___jb_tmp___`, rename `n.md` to `n.md___jb_old___`, the temp to
    `n.md`, delete the old: as A4, and no row for either JetBrains name."""
    d = start({"n.md": "old jb text\n"})
    old = d.records()["n.md"]
    with d.during(mode):
        write(d.vault / "n.md___jb_tmp___", "new jb text, longer\n")
        os.rename(d.vault / "n.md", d.vault / "n.md___jb_old___")
        os.rename(d.vault / "n.md___jb_tmp___", d.vault / "n.md")
        (d.vault / "n.md___jb_old___").unlink()
    records = finish(d)
    assert set(records) == {"n.md"}
    assert records["n.md"]["body"] == "new jb text, longer\n"
    assert records["n.md"]["inode"] == os.stat(d.vault / "n.md").st_ino != old["inode"]
    assert records["n.md"]["id"] == old["id"]
    assert not [e for e in events(d) if "___jb_" in (e["path"] + str(e["prev_path"]))]


@pytest.mark.parametrize("mode", ["stopped", "paused"])
def test_a6_created_and_deleted_at_once(start: Start, mode: str) -> None:
    """A6 (stopped, paused): a file that lives 10 ms leaves no row, no event, no error."""
    d = start({"keep.md": "keep\n"})
    with d.during(mode):
        blip = write(d.vault / "blip.md", "here\n")
        time.sleep(0.01)
        blip.unlink()
    if mode == "paused":  # the end state is the start state: wait for the events
        barrier(d)
    records = finish(d)
    assert set(records) - {"zz-barrier.md"} == {"keep.md"}
    assert events(d, "blip.md") == []


def test_a7_file_deleted_while_being_hashed(start: Start) -> None:
    """A7 (live only: the race is with the daemon's read, which a stopped or paused
    daemon does not make). Large notes are written and deleted again about one settle
    window later, so that some vanish while the daemon reads, hashes or parses them:
    none is left in the store, the daemon keeps running without a traceback, and it
    still indexes what comes next."""
    rng = random.Random(7)
    d = start({"keep.md": "keep\n"})
    block = "a line with [[a link]] and #tag\n" * 40_000  # ~1.3 MB: parsing takes a while
    for i in range(10):
        victim = write(d.vault / f"big{i % 3}.md", f"# big {i}\n{block}")
        time.sleep(rng.uniform(0.08, 0.2))
        victim.unlink()
        time.sleep(rng.uniform(0.0, 0.05))
    write(d.vault / "after.md", "after\n")
    records = finish(d)
    assert set(records) == {"keep.md", "after.md"}
    # Whatever was stored for a victim was all of one of its versions, never a torn read.
    versions = {digest(f"# big {i}\n{block}") for i in range(10)}
    stored = {e["blake3_after"] for e in events(d) if e["path"].startswith("big")}
    assert stored - {None} <= versions


def test_a8_file_appended_while_being_hashed(start: Start) -> None:
    """A8 (live only, as A7): a large note is appended to about once per settle window,
    so that appends land while the daemon reads and hashes it: the final record is the
    final content, and every content stored on the way was one complete version."""
    rng = random.Random(8)
    text = "# log\n" + "an old line of the log with #tag\n" * 40_000
    d = start({"log.md": text})
    versions = {digest(text)}
    with open(d.vault / "log.md", "a") as f:
        for i in range(12):
            line = f"appended line {i}\n"
            f.write(line)
            f.flush()
            text += line
            versions.add(digest(text))
            time.sleep(rng.uniform(0.08, 0.16))
    records = finish(d)
    assert records["log.md"]["body"] == text
    assert records["log.md"]["size"] == len(text)
    stored = {e["blake3_after"] for e in events(d, "log.md")}
    assert digest(text) in stored
    assert stored - {None} <= versions, "a torn read was stored"


@pytest.mark.parametrize("mode", MODES)
def test_a9_touch_refreshes_stat_fields_only(start: Start, mode: str) -> None:
    """A9: `touch` (mtime only): same content, id and hash; mtime and ctime refreshed;
    no event records a content change."""
    d = start({"n.md": "# touched\nbody\n"})
    before = d.records()["n.md"]
    with d.during(mode):
        os.utime(d.vault / "n.md")
    st = os.stat(d.vault / "n.md")
    assert st.st_mtime_ns != before["mtime_ns"]
    wait_until(lambda: d.records()["n.md"]["mtime_ns"] == st.st_mtime_ns, "mtime refreshed")
    after = finish(d)["n.md"]
    assert after["ctime_ns"] == st.st_ctime_ns
    for field in ("id", "blake3", "body", "size", "inode"):
        assert after[field] == before[field], field
    assert all(e["blake3_before"] == e["blake3_after"] for e in events(d, "n.md")[1:])


@pytest.mark.parametrize("mode", MODES)
def test_a10_change_with_mtime_set_back(start: Start, mode: str) -> None:
    """A10: the content changes, the size stays and the mtime is set back to its old
    value (a sync tool's Chtimes): the change is found all the same."""
    d = start({"n.md": "content AAAA\n"})
    old = os.stat(d.vault / "n.md")
    assert d.records()["n.md"]["mtime_ns"] == old.st_mtime_ns
    with d.during(mode):
        (d.vault / "n.md").write_text("content BBBB\n")
        os.utime(d.vault / "n.md", ns=(old.st_atime_ns, old.st_mtime_ns))
    assert os.stat(d.vault / "n.md").st_mtime_ns == old.st_mtime_ns
    records = finish(d)
    assert records["n.md"]["body"] == "content BBBB\n"
    assert records["n.md"]["mtime_ns"] == old.st_mtime_ns
    assert records["n.md"]["size"] == old.st_size


@pytest.mark.parametrize("mode", MODES)
def test_a11_two_writes_in_one_mtime_tick(start: Start, mode: str) -> None:
    """A11: two same-size writes with the same mtime, as on a file system with one-second
    timestamps (both pinned to the current whole second): the daemon stores the first,
    and still finds the second."""
    d = start({"keep.md": "keep\n"})
    note = d.vault / "n.md"
    second = time.time_ns() // 10**9 * 10**9
    note.write_text("first  write\n")
    os.utime(note, ns=(second, second))
    wait_until(lambda: d.records().get("n.md", {}).get("body") == "first  write\n", "first")
    with d.during(mode):
        note.write_text("second write\n")
        os.utime(note, ns=(second, second))
    records = finish(d)
    assert records["n.md"]["body"] == "second write\n"
    assert records["n.md"]["mtime_ns"] == second


@pytest.mark.parametrize("mode", MODES)
def test_a12_empty_file_filled_later(start: Start, mode: str) -> None:
    """A12: a 0-byte note is indexed as such (live), then filled (in each mode): the
    final content is indexed under the same id."""
    d = start({"keep.md": "keep\n"})
    (d.vault / "n.md").touch()
    wait_until(lambda: "n.md" in d.records(), "empty note indexed")
    empty = d.records()["n.md"]
    assert (empty["size"], empty["blake3"], empty["body"]) == (0, digest(b""), "")
    with d.during(mode):
        (d.vault / "n.md").write_text("# filled\nnow with text\n")
    records = finish(d)
    assert records["n.md"]["body"] == "# filled\nnow with text\n"
    assert records["n.md"]["title"] == "filled"
    assert records["n.md"]["id"] == empty["id"]


# --- B. Renames and moves ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["stopped", "paused"])
def test_b1_rename(start: Start, mode: str) -> None:
    """B1 (stopped, paused): `a.md` -> `b.md` moves the record: same id, no duplicate;
    stopped, the start-up reconcile pairs the two by content."""
    d = start({"a.md": "# a\nunique a text\n", "keep.md": "keep\n"})
    before = d.records()["a.md"]["id"]
    with d.during(mode):
        os.rename(d.vault / "a.md", d.vault / "b.md")
    records = finish(d)
    assert set(records) == {"b.md", "keep.md"}
    assert records["b.md"]["id"] == before
    moves = [e for e in events(d, "b.md") if e["op"] == "move"]
    assert [(e["path"], e["prev_path"]) for e in moves] == [("b.md", "a.md")]
    if mode == "stopped":
        assert moves[0]["cause"] == "reconcile"


@pytest.mark.parametrize("mode", MODES)
def test_b2_case_only_rename(start: Start, mode: str) -> None:
    """B2: `note.md` -> `Note.md` on a case-sensitive file system: exactly one row,
    `Note.md`, keeping the id."""
    d = start({"note.md": "# note\ncase text\n"})
    before = d.records()["note.md"]["id"]
    with d.during(mode):
        os.rename(d.vault / "note.md", d.vault / "Note.md")
    records = finish(d)
    assert set(records) == {"Note.md"}
    assert records["Note.md"]["id"] == before


NESTED: Files = {
    "a/x.md": "# x\nx text\n",
    "a/sub/y.md": "# y\ny text\n",
    "a/sub/deeper/z.md": "# z\nz text\n",
    "a/pic.png": "not really a png",
    "top.md": "top\n",
}


@pytest.mark.parametrize("mode", ["stopped", "paused"])
def test_b3_folder_rename_with_nested_children(start: Start, mode: str) -> None:
    """B3 (stopped, paused): `a/` -> `c/` with children two levels down: every row under
    `c/` with its id, none under `a/`."""
    d = start(NESTED)
    ids = {p: r["id"] for p, r in under(d.records(), "a").items()}
    with d.during(mode):
        os.rename(d.vault / "a", d.vault / "c")
    records = finish(d)
    assert not under(records, "a")
    assert {p: r["id"] for p, r in under(records, "c").items()} == {
        "c" + p[1:]: note_id for p, note_id in ids.items()
    }


SWAP_OLD: Files = {"dir/a.md": "# a\nold a\n", "dir/b.md": "# b\nold b\n", "keep.md": "keep\n"}
SWAP_NEW: Files = {"a.md": "# a\nnew a from alt\n", "c.md": "# c\nnew c from alt\n"}


def swap(d: Daemon) -> None:
    """B4's swap, once `alt/` is built: `mv dir bye; mv alt dir`."""
    os.rename(d.vault / "dir", d.vault / "bye")
    os.rename(d.vault / "alt", d.vault / "dir")


@pytest.mark.parametrize("mode", MODES)
def test_b4_atomic_folder_swap(start: Start, mode: str) -> None:
    """B4: after `mv dir bye; mv alt dir`, `dir/*` holds alt's content (and alt's files
    only), `bye/*` the old content, and nothing is left under `alt/`."""
    d = start(SWAP_OLD)
    with d.during(mode):
        for name, text in SWAP_NEW.items():
            write(d.vault / "alt" / name, text)
        swap(d)
    records = finish(d)
    assert {p: r["body"] for p, r in records.items()} == {
        "dir/a.md": "# a\nnew a from alt\n",
        "dir/c.md": "# c\nnew c from alt\n",
        "bye/a.md": "# a\nold a\n",
        "bye/b.md": "# b\nold b\n",
        "keep.md": "keep\n",
    }


@pytest.mark.parametrize("mode", ["live", "paused"])
def test_b4_swaps_keep_identity(start: Start, mode: str) -> None:
    """B4, identity: a record keeps its id across the renames the agent sees (DESIGN.md,
    Records). Live and paused only: stopped, the daemon sees no rename, and a path that
    still exists keeps its record. The folder swap (`alt/` indexed first): the old notes
    keep their ids under `bye/`. The same swap with two notes (`mv a.md swap.md; mv b.md
    a.md; mv swap.md b.md`, one batch of moves): each note's id follows it."""
    d = start(
        {**SWAP_OLD, **{f"alt/{n}": t for n, t in SWAP_NEW.items()}, "a.md": "# a\nAAA\n",
         "b.md": "# b\nBBB\n"}
    )  # fmt: skip
    ids = {p: r["id"] for p, r in d.records().items()}
    with d.during(mode):
        swap(d)
        os.rename(d.vault / "a.md", d.vault / "swap.md")
        os.rename(d.vault / "b.md", d.vault / "a.md")
        os.rename(d.vault / "swap.md", d.vault / "b.md")
    records = finish(d)
    assert records["bye/a.md"]["id"] == ids["dir/a.md"]
    assert records["bye/b.md"]["id"] == ids["dir/b.md"]
    assert (records["a.md"]["body"], records["b.md"]["body"]) == ("# b\nBBB\n", "# a\nAAA\n")
    assert (records["a.md"]["id"], records["b.md"]["id"]) == (ids["b.md"], ids["a.md"])
    # The notes that arrived in dir/ are new to the daemon or carry alt/'s ids; never
    # an id another record holds (new ids derive from path and inode).
    assert len({r["id"] for r in records.values()}) == len(records)


@pytest.mark.parametrize("mode", MODES)
def test_b5_remove_folder_then_recreate(start: Start, mode: str) -> None:
    """B5: `rm -rf dir`, then `dir/a.md` again with new content (live: once the daemon
    has dropped the old rows): only the new `dir/a.md`."""
    d = start({"dir/a.md": "# a\nold\n", "dir/b.md": "# b\nold\n", "dir/s/c.md": "c\n"})
    with d.during(mode):
        shutil.rmtree(d.vault / "dir")
        if mode == "live":
            wait_until(lambda: not under(d.records(), "dir"), "old rows dropped")
        write(d.vault / "dir" / "a.md", "# a\nrecreated\n")
    records = finish(d)
    assert set(records) == {"dir/a.md"}
    assert records["dir/a.md"]["body"] == "# a\nrecreated\n"


@pytest.mark.parametrize("mode", ["stopped", "paused"])
def test_b6_folder_moved_out(start: Start, tmp_path: Path, mode: str) -> None:
    """B6 (stopped, paused): a folder moved out of the vault takes all its rows with it
    (live, watchdog reports only the folder)."""
    d = start(NESTED)
    with d.during(mode):
        shutil.move(str(d.vault / "a"), str(tmp_path / "outside"))
    records = finish(d)
    assert set(records) == {"top.md"}
    assert {e["path"] for e in events(d) if e["op"] == "delete"} == {
        p for p in NESTED if p.startswith("a/")
    }


@pytest.mark.parametrize("mode", ["stopped", "paused"])
def test_b7_folder_moved_in_then_edited(start: Start, tmp_path: Path, mode: str) -> None:
    """B7 (stopped, paused): a folder moved in from outside, then a file in it edited and
    another created (before its watch could exist, when paused): all indexed, edits too."""
    outside = tmp_path / "incoming"
    for i in range(3):
        write(outside / "sub" / f"i{i}.md", f"in {i}\n")
    d = start({"keep.md": "keep\n"})
    with d.during(mode):
        shutil.move(str(outside), str(d.vault / "Incoming"))
        (d.vault / "Incoming" / "sub" / "i0.md").write_text("edited after the move\n")
        write(d.vault / "Incoming" / "sub" / "new.md", "created after the move\n")
    records = finish(d)
    assert set(under(records, "Incoming")) == {
        "Incoming/sub/i0.md",
        "Incoming/sub/i1.md",
        "Incoming/sub/i2.md",
        "Incoming/sub/new.md",
    }
    assert records["Incoming/sub/i0.md"]["body"] == "edited after the move\n"
    assert records["Incoming/sub/new.md"]["body"] == "created after the move\n"


@pytest.mark.parametrize("mode", MODES)
def test_b8_moved_out_and_back_within_the_pairing_window(
    start: Start, tmp_path: Path, mode: str
) -> None:
    """B8: a note moved out of the vault and back 0.3 s later (watchdog waits 0.5 s to
    pair a move, so the MOVED_FROM and the MOVED_TO fall apart): present, same content,
    same id, no duplicate."""
    d = start({"n.md": "# n\nround trip\n", "keep.md": "keep\n"})
    before = d.records()["n.md"]
    with d.during(mode):
        os.rename(d.vault / "n.md", tmp_path / "n.md")
        time.sleep(0.3)
        os.rename(tmp_path / "n.md", d.vault / "n.md")
    if mode != "stopped":  # the end state is the start state: wait for the events
        time.sleep(MOVE_PAIRING_DELAY + 0.1)
        barrier(d)
    records = finish(d)
    assert set(records) - {"zz-barrier.md"} == {"n.md", "keep.md"}
    for field in ("id", "blake3", "body"):
        assert records["n.md"][field] == before[field], field


# Watchman tests/integration/test_fishy.py, `a` being a note here: (script, end state).
FISHY: dict[str, tuple[str, set[str]]] = {
    "more_moves": (
        "touch a.md && mkdir d1 d2 && mv d1 d2 && mv d2/d1 . && mv a.md d1",
        {"d1/a.md"},
    ),
    "even_more_moves": (
        "mkdir d1 d2 && touch d1/a.md && mkdir d3 && mv d1 d2 d3 && mv d3/* . && "
        "mv d1 d2 d3 && mv d3/* . && mv d1/a.md d2",
        {"d2/a.md"},
    ),
}


@pytest.mark.parametrize("mode", MODES)
def test_b9_watchman_fishy_shuffles(start: Start, mode: str) -> None:
    """B9: Watchman's "fishy" shuffles (test_more_moves, test_even_more_moves: a note
    created, folders moved into each other and back, the note moved between them), each
    run by the shell in its own folder as Watchman does: exactly the listed end states
    (`d1/a.md`, resp. `d2/a.md`) and nothing else."""
    d = start({"keep.md": "keep\n"})
    for case in FISHY:
        (d.vault / case).mkdir()
    with d.during(mode):
        for case, (script, _) in FISHY.items():
            subprocess.run(script, shell=True, cwd=d.vault / case, check=True)
    records = finish(d)
    expected = {f"{case}/{p}" for case, (_, end) in FISHY.items() for p in end}
    assert set(records) == {"keep.md", *expected}
    assert all(d.vault.joinpath(p).is_file() for p in expected)


@pytest.mark.parametrize("mode", MODES)
def test_b10_folder_renamed_and_replaced_by_a_symlink(start: Start, mode: str) -> None:
    """B10: `mv foo bar && ln -s bar foo` (Watchman test_fishy). Folder symlinks are
    never followed (ccc_watch.vault.walk): `bar/*` is indexed with the moved notes' ids, and
    there is no `foo` or `foo/*` row, nor a second copy of the notes. Live, the link is
    made once the daemon has applied the rename, so that its event is taken on its own
    (as it is whenever the two are more than one drain apart)."""
    d = start({"foo/a.md": "# a\nfishy a\n", "foo/b.md": "# b\nfishy b\n"})
    ids = {p: r["id"] for p, r in d.records().items()}
    with d.during(mode):
        os.rename(d.vault / "foo", d.vault / "bar")
        if mode == "live":
            wait_until(lambda: set(d.records()) == {"bar/a.md", "bar/b.md"}, "rename applied")
        os.symlink("bar", d.vault / "foo")
    records = finish(d)
    assert set(records) == {"bar/a.md", "bar/b.md"}
    assert records["bar/a.md"]["id"] == ids["foo/a.md"]
    assert records["bar/b.md"]["id"] == ids["foo/b.md"]
    assert "skip foo: folder symlink: not followed" in d.log.read_text()


@pytest.mark.parametrize("mode", MODES)
def test_b11_obsidian_and_system_trash(start: Start, tmp_path: Path, mode: str) -> None:
    """B11: one note deleted to Obsidian's trash (moved into `.trash/`), another to the
    system trash (moved out of the vault), with `.trash/` and `*.tmp` also in
    .cccignore: both rows removed, nothing from `.trash/` indexed."""
    d = start(
        {
            "t1.md": "# t1\n",
            "t2.md": "# t2\n",
            "keep.md": "keep\n",
            ".cccignore": ".trash/\n*.tmp\n",
        }
    )
    (d.vault / ".trash").mkdir()
    (tmp_path / "system-trash").mkdir()
    with d.during(mode):
        os.rename(d.vault / "t1.md", d.vault / ".trash" / "t1.md")
        os.rename(d.vault / "t2.md", tmp_path / "system-trash" / "t2.md")
    records = finish(d)
    assert set(records) == {"keep.md"}
    deletes = {e["path"] for e in events(d) if e["op"] == "delete"}
    assert deletes == {"t1.md", "t2.md"}


@pytest.mark.parametrize("mode", MODES)
def test_b12_rename_into_an_excluded_folder(start: Start, mode: str) -> None:
    """B12: a note renamed into `Archive/`, excluded by Obsidian's `userIgnoreFilters`:
    its row is removed, and nothing under `Archive/` is ever indexed."""
    d = start(
        {
            "n.md": "# n\nto be archived\n",
            "Archive/old.md": "old\n",
            "keep.md": "keep\n",
            ".obsidian/app.json": '{"userIgnoreFilters": ["Archive/"]}',
        }
    )
    assert set(d.records()) == {"n.md", "keep.md"}
    with d.during(mode):
        os.rename(d.vault / "n.md", d.vault / "Archive" / "n.md")
    records = finish(d)
    assert set(records) == {"keep.md"}
    assert not [e for e in events(d) if e["path"].startswith("Archive/")]
