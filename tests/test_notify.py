"""systemd's notify protocol: a real daemon process talking to a socket the test binds,
as systemd would for a Type=notify service."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Daemon, wait_until

from ccc_watch.daemon.notify import Notifier


class Manager:
    """A stand-in for systemd: a bound AF_UNIX datagram socket, collecting messages."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def fields(self) -> list[str]:
        return [f for _, m in self.messages for f in m.split("\n")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    m = Manager(str(tmp_path / "notify.sock"))
    yield m
    m.close()


def test_a_daemon_under_systemd_says_ready_pings_and_stops(
    tmp_path: Path, manager: Manager
) -> None:
    """READY=1 once the store is open and the start-up reconcile has begun, STATUS=
    lines, WATCHDOG=1 about every half of WATCHDOG_USEC (WATCHDOG_PID is the daemon's
    own pid, set by the exec wrapper as systemd would), STOPPING=1 on SIGTERM."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "n.md").write_text("# n\n")
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.env["NOTIFY_SOCKET"] = str(tmp_path / "notify.sock")
    d.env["WATCHDOG_USEC"] = "400000"  # a ping every 0.2 s
    d.prefix = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"]
    d.start()
    wait_until(lambda: manager.fields().count("WATCHDOG=1") >= 5, "five watchdog pings")
    fields = manager.fields()
    assert "READY=1" in fields
    assert fields.index("READY=1") < fields.index("WATCHDOG=1")
    assert any(f.startswith("STATUS=watching") for f in fields)
    pings = [t for t, m in manager.messages if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert 0.1 < sorted(gaps)[len(gaps) // 2] < 0.4, gaps  # about WATCHDOG_USEC / 2
    assert d.stop() == 0
    wait_until(lambda: "STOPPING=1" in manager.fields(), "STOPPING=1")
    assert not manager.fields()[manager.fields().index("STOPPING=1") :].count("READY=1")


def test_no_watchdog_pings_for_another_pid(tmp_path: Path, manager: Manager) -> None:
    """WATCHDOG_PID naming another process (a variable inherited from a parent
    service) means the watchdog is not ours: READY=1, but no WATCHDOG=1."""
    vault = tmp_path / "vault"
    vault.mkdir()
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.env.update(
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
        WATCHDOG_USEC="200000",
        WATCHDOG_PID=str(os.getpid()),
    )
    d.start()
    wait_until(lambda: "READY=1" in manager.fields(), "READY=1")
    time.sleep(0.5)
    assert "WATCHDOG=1" not in manager.fields()
    assert d.stop() == 0


def test_abstract_socket_and_no_socket() -> None:
    """'@name' is the abstract namespace; without NOTIFY_SOCKET nothing is sent."""
    name = f"ccc-watch-test-{os.getpid()}"
    m = Manager("\0" + name)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.send("READY=1")
        n.status("watching")
        n.status("watching")  # unchanged: not sent again
        wait_until(lambda: len(m.messages) == 2, "two datagrams")
        assert [msg for _, msg in m.messages] == ["READY=1", "STATUS=watching"]
    finally:
        m.close()
    assert Notifier({}).send("READY=1") is False
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent/sock"}).send("READY=1") is False
