"""The control channel under attack: request files the daemon reads, answer files
`ccc-watch rebuild` reads.

Anyone who can write in the data dir can leave anything in `<data_dir>/requests/`:
a JSON list, bytes that are not UTF-8, an integer of thousands of digits, a FIFO, a
symlink to a device, a file of another owner, a name with a newline. None of it may
crash, hang or exhaust the daemon, at start-up (pending requests are read then, so a
crash would repeat on every restart) or on SIGUSR1; each is dropped with one log line.
The answer side is as wary: a hostile answer is one line and an exit code, never a
hang or a traceback.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_harness import Daemon, wait_until

# A child that runs control.pending on a data dir and prints what it returned; its
# address space is capped, so reading a device or a huge file fails instead of eating
# the machine, and the caller's timeout catches a read that blocks.
PENDING = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
    from ccc_watch.daemon import control
    print(json.dumps(control.pending(Path(sys.argv[1]))))
""")
ESC = "\x1b"


def rid() -> str:
    return uuid.uuid4().hex


def good(pid: int | None = None) -> bytes:
    return json.dumps({"command": "rebuild", "pid": pid or os.getpid()}).encode()


def pending_in_child(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PENDING, str(data)],
        capture_output=True, text=True, timeout=20)  # fmt: skip


def dropped_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "dropped" in line]


# name -> a function that makes the hostile request file in the requests folder.
def _write(content: bytes, name: str | None = None) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / (name or f"{rid()}.json")
        path.write_bytes(content)
        return path

    return make


def _fifo(folder: Path) -> Path:
    path = folder / f"{rid()}.json"
    os.mkfifo(path)
    return path


def _device(folder: Path) -> Path:
    path = folder / f"{rid()}.json"
    path.symlink_to("/dev/zero")
    return path


def _symlink_to_a_good_request(folder: Path) -> Path:
    target = folder.parent / "elsewhere.json"
    target.write_bytes(good())
    path = folder / f"{rid()}.json"
    path.symlink_to(target)
    return path


def _folder(folder: Path) -> Path:
    path = folder / f"{rid()}.json"
    path.mkdir()
    return path


def _other_owner(folder: Path) -> Path:
    path = _write(good())(folder)
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another owner")
    os.chown(path, 65534, 65534)
    return path


HOSTILE: dict[str, Callable[[Path], Path]] = {
    "json list": _write(b'["rebuild", 1]'),
    "json string": _write(b'"rebuild"'),
    "not utf-8": _write(b'{"command": "rebuild\xff\xfe", "pid": 1}'),
    "integer of 5000 digits": _write(b'{"command": "rebuild", "pid": ' + b"9" * 5000 + b"}"),
    "pid beyond pid_t": _write(b'{"command": "rebuild", "pid": 100000000000000000000}'),
    "pid true": _write(b'{"command": "rebuild", "pid": true}'),
    "pid a float": _write(b'{"command": "rebuild", "pid": 1.5}'),
    "command a list": _write(json.dumps({"command": ["rebuild"], "pid": os.getpid()}).encode()),
    "unknown key": _write(
        json.dumps({"command": "rebuild", "pid": os.getpid(), "then": "rm -rf"}).encode()
    ),
    "over 64 KiB": _write(good()[:-1] + b" " * 70_000 + b"}"),
    "deeply nested": _write(b'{"command": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
    "name not an id": _write(good(), name="x\n\x1b[31mred\x1b]0;title\x07.json"),
    "fifo": _fifo,
    "symlink to /dev/zero": _device,
    "symlink to a good request": _symlink_to_a_good_request,
    "folder": _folder,
    "another owner": _other_owner,
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_request_is_dropped_with_one_log_line(tmp_path: Path, case: str) -> None:
    """The request is not served, the file is removed (a folder stays: it is no
    request), and one escaped log line says so; a good request beside it is served."""
    data = tmp_path / "data"
    folder = data / "requests"
    folder.mkdir(parents=True)
    bad = HOSTILE[case](folder)
    good_id = rid()
    (folder / f"{good_id}.json").write_bytes(good())

    proc = pending_in_child(data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout)
    assert served == [[good_id, {"command": "rebuild", "pid": os.getpid()}]]
    lines = dropped_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr[-2000:]
    assert ESC not in proc.stderr and "\x07" not in proc.stderr
    assert os.path.lexists(bad) == (case == "folder")
    assert (folder / f"{good_id}.json").exists()  # served requests are the asker's to remove


def test_a_flood_of_requests_is_read_within_bounds(tmp_path: Path) -> None:
    """Many junk files are all dropped at once: the next look finds none of them."""
    data = tmp_path / "data"
    folder = data / "requests"
    folder.mkdir(parents=True)
    for _ in range(300):
        (folder / f"{rid()}.json").write_bytes(b"[]")
    first = pending_in_child(data)
    assert first.returncode == 0 and json.loads(first.stdout) == []
    assert len(dropped_lines(first.stderr)) == 300
    again = pending_in_child(data)
    assert json.loads(again.stdout) == [] and dropped_lines(again.stderr) == []


# --- a real daemon --------------------------------------------------------------------


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    v.mkdir()
    (v / "a.md").write_text("# a\n")
    (v / "b.md").write_text("# b [[a]]\n")
    return v


def _plant(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        make(folder)
        for make in (
            HOSTILE["json list"],
            HOSTILE["integer of 5000 digits"],
            HOSTILE["not utf-8"],
            HOSTILE["fifo"],
            HOSTILE["symlink to /dev/zero"],
            HOSTILE["name not an id"],
        )
    ]


def test_the_daemon_starts_and_serves_despite_hostile_requests(tmp_path: Path, vault: Path) -> None:
    """Hostile request files left before start-up, and more sent with SIGUSR1 while it
    runs: the daemon starts, stays up, drops each with a log line, still rebuilds on a
    real request, and stops cleanly (a restart would meet none of them again)."""
    data = tmp_path / "data"
    planted = _plant(data / "requests")
    d = Daemon(vault, data, tmp_path / "daemon.log")
    try:
        d.start()  # old code: crashed or blocked on the first of them
        d.settle()
        assert not any(os.path.lexists(p) for p in planted)
        again = _plant(data / "requests")
        assert d.proc is not None
        os.kill(d.proc.pid, signal.SIGUSR1)
        wait_until(lambda: not any(os.path.lexists(p) for p in again), "hostile requests dropped")
        assert d.proc.poll() is None
        done = d.cli("rebuild")
        assert done.returncode == 0, done.stderr
        assert "indexed 2 of 2 files" in done.stdout
        assert d.stop() == 0
    finally:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()
    log = d.log.read_text(encoding="utf-8", errors="replace")
    assert len(dropped_lines(log)) == 2 * len(planted), log[-3000:]
    assert ESC not in log and "\x07" not in log
    assert "Traceback" not in log


# --- the answer side: `ccc-watch rebuild` against a hostile daemon ------------------

# A process that holds the daemon's pid lock, waits for the request's SIGUSR1, and
# answers in the way argv[2] names (or withdraws the request).
FAKE_DAEMON = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from ccc_watch.procs import PidLock
    data, mode = Path(sys.argv[1]), sys.argv[2]
    lock = PidLock(data)
    asked = []
    signal.signal(signal.SIGUSR1, lambda *_: asked.append(1))
    print("ready", flush=True)
    while not asked:
        time.sleep(0.02)
    request = next(p for p in (data / "requests").iterdir() if not p.name.endswith(".answer.json"))
    answer = request.with_name(request.name.removesuffix(".json") + ".answer.json")
    if mode == "fifo":
        os.mkfifo(answer)
    elif mode == "device":
        answer.symlink_to("/dev/zero")
    elif mode == "list":
        answer.write_text("[1, 2]")
    elif mode == "not-utf8":
        answer.write_bytes(b'{"error": "\\xff"}')
    elif mode == "huge":
        with answer.open("wb") as f:
            f.write(b'{"error": "')
            for _ in range(70):
                f.write(b"x" * (1 << 20))
            f.write(b'"}')
    elif mode == "bad-report":
        answer.write_text('{"report": {"vault": 1, "unknown": 2}, "mirror": "ok"}')
    elif mode == "escapes":
        answer.write_text('{"error": "\\\\u001b]0;pwned\\\\u0007 and\\\\nccc-watch: all is well"}')
    elif mode == "folder":
        answer.mkdir()
    elif mode == "withdrawn":
        request.unlink()
    time.sleep(60)
""")


@pytest.fixture
def fake_daemon(tmp_path: Path, vault: Path) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(mode: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", FAKE_DAEMON, str(tmp_path / "data"), mode],
            stdout=subprocess.PIPE, text=True)  # fmt: skip
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _cap_memory() -> None:
    """Reading a device to its end fails here instead of eating the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))


ANSWERS = (
    "fifo",
    "device",
    "folder",
    "list",
    "not-utf8",
    "huge",
    "bad-report",
    "escapes",
    "withdrawn",
)


@pytest.mark.parametrize("mode", ANSWERS)
def test_rebuild_meets_a_hostile_answer_with_one_line(
    tmp_path: Path,
    vault: Path,
    mode: str,
    fake_daemon: Callable[[str], subprocess.Popen[str]],
) -> None:
    """`ccc-watch rebuild` asks a process that holds the daemon's lock; whatever it
    answers (or if it drops the request), the command ends within seconds with one line
    on stderr, no traceback and no terminal escape, and exit 1."""
    fake_daemon(mode)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir",
         str(tmp_path / "data"), "rebuild"],
        capture_output=True, text=True, timeout=30, preexec_fn=_cap_memory)  # fmt: skip
    assert time.monotonic() - started < 20
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("asking the running daemon"), lines[:3]
    assert len(lines) == 2 and lines[1].startswith("ccc-watch: "), proc.stderr[-2000:]
    assert "the daemon" in lines[1]  # the cause named, not an error met cleaning up
    assert len(lines[1]) < 500
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", proc.stderr)
    assert proc.stdout == ""
