"""The daemon against faults of the machine rather than of the vault: a full disk, its
data dir deleted, a damaged store or mirror, an unwritable log folder, a metrics port
in use.

Inside its loop, `ccc-watch run` survives each one: it logs one line naming the cause
and the fix (never a traceback), `status` says degraded with the reason, nothing queued
is lost, and once the cause is gone it catches up until `verify` is clean. At start-up
a cause that restarting cannot fix is one line and exit 78 (77 for a permission), which
the systemd unit does not restart. Real `ccc-watch run` processes, a real tmpfs for the
full disk, real files.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Daemon, wait_until
from disks import fill
from privileges import blocked_prefix
from records import stored_value

from ccc_watch import service
from ccc_watch.errors import EXIT_CONFIG, EXIT_NOPERM

STORE_FILES = {"redb": "index.redb", "sqlite": "index.sqlite"}
LOGGING_ERROR = "Logging error in Loguru Handler"  # loguru's own report of a failing sink


def make_vault(root: Path, notes: int = 40) -> Path:
    vault = root / "vault"
    (vault / "Folder").mkdir(parents=True)
    for i in range(notes):
        (vault / "Folder" / f"n{i:02d}.md").write_text(f"# note {i}\n\nbody {i} #tag\n")
    return vault


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test started; any still running at the end is killed."""
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()


def start(
    daemons: list[Daemon], root: Path, vault: Path, data: Path, *args: str, backend: str = "redb"
) -> Daemon:
    """A daemon whose stderr goes to root/daemon.out and log file to LOG_FILE under data's
    parent (INFO and up, as users see it)."""
    d = Daemon(vault, data, root / "daemon.out")
    d.backend = backend
    d.run_args = ["--log-file", str(log_file(d)), *args]
    d.ready_states = ("watching", "degraded")
    daemons.append(d)
    d.start()
    return d


def log_file(d: Daemon) -> Path:
    """Where the daemon's log file goes: beside its data dir (on the same disk)."""
    return d.data / "logs" / "ccc.log"


def log_text(d: Daemon) -> str:
    """Everything the daemon wrote: its stderr, and its log file."""
    path = log_file(d)
    return d.log.read_text() + (path.read_text() if path.exists() else "")


def assert_no_traceback(d: Daemon) -> None:
    text = log_text(d)
    assert "Traceback" not in text and LOGGING_ERROR not in text, text[-4000:]


def ids(d: Daemon) -> dict[str, str]:
    return {path: r["id"] for path, r in d.records().items()}


def not_restarted() -> set[int]:
    """The exit codes after which the systemd units do not restart the daemon."""
    found = []
    for unit in ("systemd", "systemd@"):
        text = service.load_template(unit)[1]
        (line,) = [x for x in text.splitlines() if x.startswith("RestartPreventExitStatus=")]
        found.append({int(c) for c in line.partition("=")[2].split()})
    assert found[0] == found[1]
    return found[0]


def cli_ok(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    proc = d.cli(*args)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


# --------------------------------------------------------------------------------------------
# a full disk while running
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["redb", "sqlite"])
def test_full_disk_while_running_degrades_then_catches_up(
    tmp_path: Path, small_disk: Path, daemons: list[Daemon], backend: str
) -> None:
    """With the data dir (store, mirror, status file) and the log file on a tmpfs that
    fills up while the daemon runs: notes created, edited and deleted meanwhile cannot be
    stored. The daemon logs one line naming the full disk, keeps running, and `status`
    says degraded with that reason (the status file is rewritten in place). Once space is
    freed every change lands: `verify` clean, nothing lost, status back to watching."""
    vault = make_vault(tmp_path)
    d = start(daemons, tmp_path, vault, small_disk, backend=backend)
    d.settle()
    with log_file(d).open("ab") as f:  # end it on a block boundary: the next line needs one
        f.write(b" " * (-f.tell() % 4096 - 1) + b"\n")
    filler = fill(small_disk)

    for i in range(150):  # about 500 KB of records: more than a full disk takes
        (vault / f"new{i:03d}.md").write_text(f"# new {i}\n\n" + "words " * 500)
    (vault / "Folder" / "n00.md").write_text("# note 0, edited while the disk was full\n")
    (vault / "Folder" / "n01.md").unlink()

    wait_until(lambda: d.status().get("state") == "degraded", "degraded", 30)
    status = d.status()
    assert status["running"] and status["pid"] == d.proc.pid  # type: ignore[union-attr]
    assert "no space left" in status["degraded_reason"], status
    assert "free space on that disk" in status["degraded_reason"], status
    assert status["health"] == "Degraded"
    stderr = d.log.read_text()
    assert stderr.count("no space left for the store file") == 1, stderr[-4000:]
    assert "cannot write the log file" in stderr  # said once, then stderr only
    assert d.proc is not None and d.proc.poll() is None

    filler.unlink()
    d.settle(timeout=60)
    records = d.records()
    assert {f"new{i:03d}.md" for i in range(150)} <= records.keys()
    assert records["Folder/n00.md"]["body"] == "# note 0, edited while the disk was full\n"
    assert "Folder/n01.md" not in records
    wait_until(lambda: d.status().get("state") == "watching", "watching again", 30)
    assert "working again after" in log_text(d)
    assert "writing the log file" in log_text(d)
    assert_no_traceback(d)
    assert d.stop() == 0  # first: a running daemon writes its status through a temp file
    assert sorted(p.name for p in small_disk.iterdir() if p.name.startswith(".")) == []


# --------------------------------------------------------------------------------------------
# the data dir deleted while running
# --------------------------------------------------------------------------------------------


def remove_tree(root: Path) -> None:
    """`rm -rf root`, typed again when a running program created a file in a folder
    between rmtree's listing and its rmdir (ENOTEMPTY), until one run removes it all."""

    def gone() -> bool:
        try:
            shutil.rmtree(root)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
            return False
        return True

    wait_until(gone, f"{root} removed", 10)


@pytest.mark.parametrize("backend", ["redb", "sqlite"])
def test_data_dir_deleted_while_running_is_made_again(
    tmp_path: Path, daemons: list[Daemon], backend: str
) -> None:
    """`rm -rf` of the data dir while the daemon runs: it takes its pid lock again (a
    second daemon is still refused), builds a new store from the vault keeping every id
    (also one no new index could derive: a note renamed while watched), a new mirror, and
    carries on: changes made meanwhile and afterwards land, `verify` is clean."""
    vault = make_vault(tmp_path)
    d = start(daemons, tmp_path, vault, tmp_path / "data", backend=backend)
    d.settle()
    (vault / "Folder" / "n05.md").rename(vault / "renamed.md")
    d.settle()
    before = ids(d)

    remove_tree(d.data)
    (vault / "during.md").write_text("written right after the data dir went\n")
    wait_until(lambda: (d.data / STORE_FILES[backend]).exists(), "a new store", 30)
    (vault / "after.md").write_text("written after the new store\n")
    d.settle(timeout=30)
    after = ids(d)
    assert {p: after[p] for p in before} == before
    assert {"during.md", "after.md"} <= after.keys()
    assert d.status()["pid"] == d.proc.pid  # type: ignore[union-attr]
    second = d.cli("run")
    assert second.returncode == 1 and "already running" in second.stderr, second.stderr
    assert "was deleted while running" in log_text(d)
    assert_no_traceback(d)
    assert d.stop() == 0


# --------------------------------------------------------------------------------------------
# a damaged store or mirror
# --------------------------------------------------------------------------------------------


def flip_record(store: Path, key: str) -> None:
    """Flip one byte in the middle of the record stored at key, in every copy of its
    value in the file (old copies stay in free pages; one of them is the live one): the
    value is compressed, so the note's text is not in the file as it is, and the frame's
    checksum makes the flipped one a record that does not decode."""
    value = stored_value(store, key)
    data = bytearray(store.read_bytes())
    found = [i for i in range(len(data)) if data.startswith(value, i)]
    assert found, f"the value of {key!r} is not in {store}"
    for at in found:
        data[at + len(value) // 2] ^= 0xFF
    store.write_bytes(bytes(data))


@pytest.mark.parametrize("found_by", ["start", "check"])
def test_damaged_store_is_rebuilt_by_the_daemon(
    tmp_path: Path, daemons: list[Daemon], found_by: str
) -> None:
    """A store with a flipped byte (as it is, or after `check` found it damaged, which
    leaves redb's file unreadable): `run` does not refuse it or exit 65, it moves the file
    aside, builds a new store from the vault with the ids of every record it could still
    read, and watches; nothing of the damaged file is left."""
    vault = make_vault(tmp_path)
    (vault / "Folder" / "n07.md").write_text("# note 7\n\nzqxdamaged\n")
    d = start(daemons, tmp_path, vault, tmp_path / "data")
    d.settle()
    (vault / "Folder" / "n05.md").rename(vault / "renamed.md")
    d.settle()
    before = ids(d)
    assert d.stop() == 0
    flip_record(d.data / "index.redb", "Folder/n07.md")
    if found_by == "check":
        assert d.cli("check").returncode == 65

    d.start()
    d.settle()
    after = ids(d)
    assert after.keys() == before.keys()
    if found_by == "start":  # every record but the flipped one could be read
        del before["Folder/n07.md"], after["Folder/n07.md"]
        assert after == before
    text = log_text(d)
    assert "store file is damaged" in text and "moving it aside" in text, text[-3000:]
    assert_no_traceback(d)
    assert d.stop() == 0  # first: a running daemon writes its status through a temp file
    left = [p.name for p in d.data.iterdir() if p.name.startswith(".") or "damage" in p.name]
    assert left == []
    cli_ok(d, "check")


def test_damaged_mirror_is_rebuilt_by_the_flusher(tmp_path: Path, daemons: list[Daemon]) -> None:
    """The mirror file damaged while the daemon runs (garbage over its header): the next
    flush rebuilds it from the store instead of failing at every retry."""
    vault = make_vault(tmp_path)
    d = start(daemons, tmp_path, vault, tmp_path / "data", "--flush-interval", "0.2")
    d.settle()
    with (d.data / "mirror.duckdb").open("r+b") as f:
        f.write(b"\xa5" * 100)
    (vault / "after.md").write_text("needs a flush\n")
    d.settle(timeout=30)
    assert "the mirror file is damaged" in log_text(d)
    assert_no_traceback(d)


# --------------------------------------------------------------------------------------------
# the log folder, the metrics port, the data dir's permissions: at start-up
# --------------------------------------------------------------------------------------------


def test_unwritable_log_folder_logs_to_stderr_only(tmp_path: Path, daemons: list[Daemon]) -> None:
    """A log folder the daemon may not write (mode 000, and no capability that would
    let root write it anyway): the daemon runs with stderr logging, says so once, and
    keeps the vault as usual."""
    vault = make_vault(tmp_path, notes=3)
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o000)
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.out")
    d.prefix = list(blocked_prefix(logs))
    d.run_args = ["--log-file", str(logs / "ccc.log")]
    daemons.append(d)
    d.start()
    (vault / "new.md").write_text("indexed without a log file\n")
    d.settle()
    stderr = d.log.read_text()
    assert stderr.count("cannot write the log file") == 1, stderr
    assert "Permission denied" in stderr and "logging to stderr only" in stderr
    assert not (logs / "ccc.log").exists()
    assert_no_traceback(d)
    assert d.stop() == 0


def test_metrics_port_in_use_is_a_setting_error(tmp_path: Path) -> None:
    """Another program holds the metrics port: `run` exits 78 (restarting cannot help;
    the unit does not restart it) with one line naming the setting and the fix."""
    vault = make_vault(tmp_path, notes=1)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.out")
        proc = d.cli("run", "--metrics", str(port))
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert EXIT_CONFIG in not_restarted()
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("ccc-watch: ")]
    assert line.startswith("ccc-watch: config: metrics: cannot serve metrics at "), line
    assert "Address already in use" in line and "choose another port" in line, line


def test_unwritable_data_dir_at_start_is_exit_77(tmp_path: Path) -> None:
    """A data dir the daemon may not write, at start-up: one line naming the file and
    the cause, exit 77, which the systemd unit does not restart (a person must fix it)."""
    vault = make_vault(tmp_path, notes=1)
    data = tmp_path / "data"
    data.mkdir(mode=0o000)
    prefix = blocked_prefix(data)
    if prefix:
        # Root also owns the folder, and may chmod it back to 0700 (as ccc-watch does to
        # its data dir): give it to another user, and drop CAP_FOWNER too.
        os.chown(data, 65534, 65534)
        prefix = (
            "setpriv",
            "--inh-caps=-dac_override,-dac_read_search,-fowner",
            "--bounding-set=-dac_override,-dac_read_search,-fowner",
        )
    argv = [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir", str(data)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    proc = subprocess.run(
        [*prefix, *argv, "run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_NOPERM, proc.stderr
    assert EXIT_NOPERM in not_restarted()
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("ccc-watch: ")]
    assert "permission denied" in line and str(data) in line, line
