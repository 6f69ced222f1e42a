"""`ccc-watch status [--json]` against a real daemon: while it runs, after it stops,
and when its status file goes stale (a hung main loop, simulated by SIGSTOP)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import Daemon, start_daemon, wait_until

from ccc_watch import __version__
from ccc_watch.daemon.status import STALE_SECONDS


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    vault = tmp_path / "vault"
    (vault / "Templates").mkdir(parents=True)
    (vault / "Templates" / "t.md").write_text("# template\n")
    (vault / "n.md").write_text("# n\n[[t]]\n")
    (vault / "data.json").write_text("{}")
    d = start_daemon(tmp_path, vault)
    yield d
    if d.proc is not None:
        d.proc.kill()
        d.proc.wait()


def status(d: Daemon) -> tuple[int, dict[str, Any]]:
    done = d.cli("status", "--json")
    got: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, got


def test_status_while_running_and_after(daemon: Daemon) -> None:
    """Every field the service issue asks for, with values that match the store, the
    mirror and the process; then the same command once the daemon has stopped."""
    (daemon.vault / "later.md").write_text("# later\n")
    daemon.settle()
    # The status file is rewritten every 2 s: wait for the one that saw the event.
    wait_until(lambda: status(daemon)[1]["last_event"] is not None, "the event in status")
    code, got = status(daemon)
    assert code == 0, got
    assert got["running"] is True and got["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert got["version"] == __version__
    assert got["uptime_seconds"] is not None and got["uptime_seconds"] >= 0
    assert got["state"] == "watching"
    assert got["health"] == "Healthy"
    assert got["last_event"] is not None and got["last_reconcile"] is not None
    assert got["queue_depth"] == 0
    assert sum(got["records_by_type"].values()) == 4
    assert got["records_by_type"].get("Template") == 1, got["records_by_type"]
    assert got["store"]["path"].endswith("index.redb") and got["store"]["bytes"] > 0
    assert got["mirror"]["path"].endswith("mirror.duckdb") and got["mirror"]["bytes"] > 0
    assert got["mirror"]["lag"] == 0 and got["mirror"]["watermark"] == got["store"]["head"]
    assert got["errors_24h"] == 0
    assert isinstance(got["drift_since_start"], int)
    text = daemon.cli("status")
    assert text.returncode == 0 and "Healthy" in text.stdout and "mirror lag" in text.stdout

    assert daemon.stop() == 0
    code, got = status(daemon)
    assert code == 2
    assert got["running"] is False and got["pid"] is None and got["state"] == "stopped"
    assert got["health"] == "Unhealthy" and "no daemon" in got["reason"]
    assert got["store"]["head"] is not None and got["mirror"]["lag"] == 0


def test_a_hung_daemon_is_unhealthy(daemon: Daemon) -> None:
    """A daemon that holds its lock but stops updating its status file (SIGSTOP stands
    in for a hung main loop) is Unhealthy, with the reason, exit 2."""
    daemon.pause()
    try:
        path = daemon.data / "status.json"
        old = time.time() - STALE_SECONDS - 5
        data = json.loads(path.read_text())
        data["updated_at"] = old  # as if the last write were that old
        path.write_text(json.dumps(data))
        code, got = status(daemon)
        assert code == 2
        assert got["running"] is True and got["health"] == "Unhealthy"
        assert "has not updated its status" in got["reason"]
    finally:
        daemon.resume()
    wait_until(lambda: status(daemon)[0] == 0, "healthy again")


def test_init_while_the_daemon_runs_changes_nothing(daemon: Daemon) -> None:
    """`init` beside a running daemon does not fail on the store's lock: it says what
    exists and who holds it, exit 0, and the store is byte for byte as it was."""
    store = daemon.data / "index.redb"
    before = store.read_bytes()
    done = daemon.cli("init")
    assert done.returncode == 0, done.stderr
    pid = daemon.proc.pid  # type: ignore[union-attr]
    assert done.stdout == (
        f"store ready: {store} (redb, 3 records); in use by the daemon (pid {pid}), "
        "nothing changed\n"
    )
    assert store.read_bytes() == before


def test_status_shows_the_last_changes_newest_first(daemon: Daemon) -> None:
    """`status` lists the store's last five changelog entries, newest first: the op,
    the path (a move with its old path), the cause and when; in text, one line each,
    a hostile name escaped."""
    (daemon.vault / "n.md").rename(daemon.vault / "m.md")
    daemon.settle()
    (daemon.vault / "new\x1b[2J.md").write_text("# new\n")
    daemon.settle()
    (daemon.vault / "data.json").unlink()
    daemon.settle()
    code, got = status(daemon)
    assert code == 0, got
    recent = got["recent_changes"]
    assert len(recent) == 5
    assert [c["seq"] for c in recent] == list(
        range(got["store"]["head"], got["store"]["head"] - 5, -1)
    )
    # A rename is a move, then an upsert of the moved record (its ctime changed).
    assert [(c["op"], c["path"], c["prev_path"], c["cause"]) for c in recent[:4]] == [
        ("delete", "data.json", None, "event"),
        ("upsert", "new\x1b[2J.md", None, "event"),
        ("upsert", "m.md", None, "event"),
        ("move", "m.md", "n.md", "event"),
    ]
    assert all(c["at"].endswith("+00:00") for c in recent)
    text = daemon.cli("status").stdout.splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("recent changes"))
    lines = text[start + 1 : start + 6]
    assert lines[0].endswith("  delete  data.json  (event)")
    assert lines[1].endswith("  upsert  new\\x1b[2J.md  (event)")
    assert lines[3].endswith("  move    n.md -> m.md  (event)")
    assert all(line.startswith("  20") for line in lines)
