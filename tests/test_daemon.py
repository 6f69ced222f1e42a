"""`ccc-watch run` as a real process with a real watchdog observer on real temp folders.

Each scenario (names from SCENARIOS.md) ends with `verify` clean: files, store and
mirror agree, checked by hashing every file independently of the daemon.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Daemon, start_daemon, wait_until


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / ".obsidian").mkdir()
    (vault / "Welcome.md").write_text("# Welcome\n[[Other]] #start\n")
    (vault / "Other.md").write_text("# Other\n")
    (vault / "Folder").mkdir()
    for i in range(5):
        (vault / "Folder" / f"n{i}.md").write_text(f"note {i} #f\n")
    d = start_daemon(tmp_path, vault)
    yield d
    if d.proc is not None:
        d.proc.kill()
        d.proc.wait()


def test_lifecycle_one_daemon_status_and_clean_stop(daemon: Daemon) -> None:
    """A second daemon on the vault exits at once naming the pid; SIGTERM exits 0 within
    10 s; status follows."""
    status = daemon.status()
    assert status["running"] and status["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    second = daemon.cli("run")
    assert second.returncode == 1
    assert f"already running for this vault (pid {daemon.proc.pid})" in second.stderr  # type: ignore[union-attr]
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 10
    assert daemon.status()["running"] is False
    assert daemon.cli("status").returncode == 2


def test_a1_rapid_saves_give_one_final_record(daemon: Daemon) -> None:
    """A1: 50 writes within a second: one row with the last content."""
    note = daemon.vault / "rapid.md"
    for i in range(50):
        note.write_text(f"version {i}\n")
    daemon.settle()
    assert daemon.records()["rapid.md"]["body"] == "version 49\n"
    upserts = [e for e in daemon.events() if e[1] == "rapid.md"]
    assert 1 <= len(upserts) <= 3, upserts  # coalesced, not one per write


def test_a3_atomic_save_through_a_hidden_temp_file(daemon: Daemon) -> None:
    """A3: write `.n.md.tmp` and rename it over the note: the note updates, no temp row."""
    tmp = daemon.vault / ".Other.md.tmp"
    tmp.write_text("# Other, saved atomically\n")
    os.replace(tmp, daemon.vault / "Other.md")
    daemon.settle()
    records = daemon.records()
    assert records["Other.md"]["body"] == "# Other, saved atomically\n"
    assert not [p for p in records if "tmp" in p]


def test_a6_created_and_deleted_at_once_leaves_nothing(daemon: Daemon) -> None:
    """A6: a file that lives 10 ms leaves no row and no error."""
    blip = daemon.vault / "blip.md"
    blip.write_text("here\n")
    time.sleep(0.01)
    blip.unlink()
    (daemon.vault / "marker.md").write_text("m\n")
    daemon.settle()
    assert "blip.md" not in daemon.records()


def test_b1_rename_keeps_the_id(daemon: Daemon) -> None:
    """B1: a rename moves the record (same id), no duplicate."""
    before = daemon.records()["Other.md"]["id"]
    (daemon.vault / "Other.md").rename(daemon.vault / "Renamed.md")
    daemon.settle()
    records = daemon.records()
    assert "Other.md" not in records and records["Renamed.md"]["id"] == before
    assert ("move", "Renamed.md", "Other.md", "event") in daemon.events()


def test_b3_and_b6_folder_renamed_then_moved_out(daemon: Daemon, tmp_path: Path) -> None:
    """B3: a folder rename moves every record under it; B6: moving it out of the vault
    deletes them all (watchdog reports only the folder)."""
    ids = {p: r["id"] for p, r in daemon.records().items() if p.startswith("Folder/")}
    (daemon.vault / "Folder").rename(daemon.vault / "Moved")
    daemon.settle()
    after = daemon.records()
    assert not [p for p in after if p.startswith("Folder/")]
    for path, note_id in ids.items():
        assert after["Moved/" + path.removeprefix("Folder/")]["id"] == note_id
    shutil.move(str(daemon.vault / "Moved"), str(tmp_path / "outside"))
    daemon.settle()
    assert not [p for p in daemon.records() if p.startswith("Moved/")]


def test_b7_folder_moved_in_then_edited(daemon: Daemon, tmp_path: Path) -> None:
    """B7: a folder moved in from outside is indexed, and so are edits made inside it."""
    outside = tmp_path / "incoming"
    outside.mkdir()
    for i in range(3):
        (outside / f"i{i}.md").write_text(f"in {i}\n")
    shutil.move(str(outside), str(daemon.vault / "Incoming"))
    daemon.settle()
    (daemon.vault / "Incoming" / "i0.md").write_text("edited after the move\n")
    (daemon.vault / "Incoming" / "new.md").write_text("created after the move\n")
    daemon.settle()
    records = daemon.records()
    assert records["Incoming/i0.md"]["body"] == "edited after the move\n"
    assert "Incoming/new.md" in records


def test_d1_changes_while_stopped_are_found_at_start(daemon: Daemon) -> None:
    """D1: stop; create, modify, delete, rename; start: reconciled, drift logged."""
    assert daemon.stop() == 0
    (daemon.vault / "offline.md").write_text("written while stopped\n")
    (daemon.vault / "Welcome.md").write_text("# Welcome, edited offline\n")
    (daemon.vault / "Folder" / "n0.md").unlink()
    (daemon.vault / "Folder" / "n1.md").rename(daemon.vault / "n1-renamed.md")
    daemon.start()
    daemon.settle()
    log = daemon.log.read_text()
    assert "DRIFT kind=created-offline path=offline.md" in log
    assert "DRIFT kind=modified-offline path=Welcome.md" in log
    assert "DRIFT kind=deleted-offline path=Folder/n0.md" in log


def test_vault_deleted_while_running_exits_nonzero(daemon: Daemon) -> None:
    """D4: the vault folder disappears: the daemon says so and exits 2, no crash loop."""
    shutil.rmtree(daemon.vault)
    assert daemon.proc is not None
    assert daemon.proc.wait(timeout=10) == 2
    daemon.proc = None
    assert "deleted or replaced" in daemon.log.read_text()


def test_ignored_litter_is_never_indexed(daemon: Daemon) -> None:
    """F5/F8: .obsidian churn and editor litter cause no records."""
    for i in range(20):
        (daemon.vault / ".obsidian" / "workspace.json").write_text(f'{{"i": {i}}}')
    for name in (".DS_Store", "Thumbs.db", "x.md.swp", "4913", "~$x.md", "n.md~"):
        (daemon.vault / name).write_text("litter")
    (daemon.vault / "real.md").write_text("real\n")
    daemon.settle()
    assert set(daemon.records()) == {"Welcome.md", "Other.md", "real.md",
                                     *(f"Folder/n{i}.md" for i in range(5))}  # fmt: skip


def test_rebuild_while_running_is_done_by_the_daemon(daemon: Daemon) -> None:
    """`ccc-watch rebuild` with a daemon running asks the daemon, which swaps its own
    store (worker processes and all) while events keep queueing: files written during
    the rebuild are all indexed, ids survive, the mirror follows the new store."""
    bulk = daemon.vault / "Bulk"
    bulk.mkdir()
    for i in range(800):  # enough for the worker pool
        (bulk / f"b{i:03d}.md").write_text(f"bulk {i} [[Welcome]]\n")
    daemon.settle()
    ids = {p: r["id"] for p, r in daemon.records().items()}
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import pathlib, sys, time\n"
         "v = pathlib.Path(sys.argv[1])\n"
         "for i in range(60):\n"
         "    (v / f'during{i}.md').write_text(f'written during the rebuild {i}\\n')\n"
         "    time.sleep(0.02)\n",
         str(daemon.vault)])  # fmt: skip
    done = daemon.cli("rebuild")
    writer.wait(timeout=30)
    assert done.returncode == 0, done.stderr
    assert f"asking the running daemon (pid {daemon.proc.pid})" in done.stderr  # type: ignore[union-attr]
    assert "indexed 8" in done.stdout  # 800 bulk notes and the rest
    assert daemon.proc is not None and daemon.proc.poll() is None
    daemon.settle()
    records = daemon.records()
    assert all(f"during{i}.md" in records for i in range(60))
    assert all(records[p]["id"] == note_id for p, note_id in ids.items())
    assert "rebuilding the store on request" in daemon.log.read_text()
    assert daemon.cli("rebuild", "--dry-run").returncode == 0
    (daemon.vault / "after.md").write_text("still watched\n")
    daemon.settle()
    assert "after.md" in daemon.records()


@pytest.mark.parametrize("seed", [1, 2])
def test_churn_against_a_running_daemon(daemon: Daemon, seed: int) -> None:
    """2,000 random creates, edits, appends, in-place and atomic saves (hidden and
    visible temp names, vim's backup dance), touches, deletes, renames (case-only too),
    moves, nested creates and folder moves (tests/vaultgen.py churn, in its own process)
    while the daemon runs: verify ends clean."""
    from conftest import VAULTGEN

    subprocess.run(
        [
            sys.executable,
            str(VAULTGEN),
            "churn",
            str(daemon.vault),
            "--ops",
            "2000",
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    daemon.settle(timeout=60)


def test_c2_paused_daemon_and_an_overflowing_burst(daemon: Daemon) -> None:
    """C2: SIGSTOP the daemon, create more files than the inotify queue holds
    (max_queued_events), SIGCONT: the overflow is noticed, a full reconcile runs, and
    every file is indexed."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    count = limit // 2 + 500  # each new file queues at least CREATE, MODIFY, CLOSE_WRITE
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        burst = daemon.vault / "Folder"  # already watched: every file sends events
        for i in range(count):
            (burst / f"b{i:05d}.md").write_text(f"burst {i}\n")
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    daemon.settle(timeout=120)
    assert sum(p.startswith("Folder/b") for p in daemon.records()) == count
    assert "inotify queue overflowed" in daemon.log.read_text()


def test_reading_the_vault_queues_no_events(daemon: Daemon) -> None:
    """Reads are not changes: with the daemon paused, open and read one note more
    times than the inotify queue holds. Subscribed to opens and read-only closes (as
    watchdog is by default), the queue overflowed and asked for a full reconcile, and
    the daemon's own reads in that reconcile could overflow it again, without end. A
    file created afterwards is indexed by its own event, and nothing overflowed."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    note = next(p for p in (daemon.vault / "Folder").iterdir() if p.suffix == ".md")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        for _ in range(limit + 500):
            with note.open("rb") as f:
                f.read()
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    (daemon.vault / "Folder" / "after the reads.md").write_text("written after\n")
    wait_until(lambda: "Folder/after the reads.md" in daemon.records(), "new note indexed")
    assert "overflow" not in daemon.log.read_text()


# Runs the real CLI with the daemon's reconcile replaced by one that never ends, so
# that a stop signal meets a long wait.
STUCK_RECONCILE = """
import sys, time
from pathlib import Path
import ccc_watch.daemon.daemon as daemon
marker = Path(sys.argv.pop(1))
def stuck(*args, **kwargs):
    marker.write_text("reconciling")
    while True:
        time.sleep(0.05)
daemon.reconcile = stuck
from ccc_watch.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _flusher_children(data: Path) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ccc_watch.mirror.flusher" in cmdline and os.fsencode(data) in cmdline:
            found.append(int(pid))
    return found


def test_a_second_stop_signal_cuts_a_long_wait_short_and_still_closes_everything(
    tmp_path: Path,
) -> None:
    """The first SIGINT waits for the work in hand; a second signal (SIGTERM) cuts the
    wait short, yet the flusher child is ended and the store closed cleanly: a redb
    store left open by a dead writer refuses readers until repaired, so `info` working
    at once proves the close, and the next daemon starts clean."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("# A\n")
    data, marker, log = tmp_path / "data", tmp_path / "stuck", tmp_path / "daemon.log"
    d = Daemon(vault, data, log)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", STUCK_RECONCILE, str(marker), "--vault", str(vault),
             "--data-dir", str(data), "run"],
            stdout=out, stderr=out, env=d.env)  # fmt: skip
    try:
        wait_until(marker.exists, "the start-up reconcile")
        wait_until(lambda: bool(_flusher_children(data)), "the mirror's flusher child")
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert proc.poll() is None, "the first signal waits for the reconcile in hand"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 1
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "SIGTERM again: stopping without draining" in text
    assert "Traceback" not in text
    wait_until(lambda: not _flusher_children(data), "no flusher child left", timeout=5)
    info = d.cli("info")
    assert info.returncode == 0, info.stderr
    d.start()
    try:
        d.settle()
    finally:
        assert d.stop() == 0


def test_sigusr2_dumps_every_thread_s_stack_and_the_daemon_goes_on(daemon: Daemon) -> None:
    """For a daemon that stops answering: `kill -USR2` shows where each thread waits."""
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGUSR2)

    def dumped() -> bool:  # faulthandler writes thread after thread: wait for the lot
        text = daemon.log.read_text(errors="replace")
        return all(part in text for part in ("most recent call first", "Thread 0x", "daemon.py"))

    wait_until(dumped, "a stack dump on stderr naming the daemon's frames")
    (daemon.vault / "after.md").write_text("still watching\n")
    daemon.settle()
