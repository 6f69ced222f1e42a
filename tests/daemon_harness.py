"""A real `ccc-watch run` process for tests, and helpers to look at what it did.

Every daemon test drives the daemon as users do: a child process started with the CLI,
a real watchdog observer on a real temp folder, and `verify` (which hashes every file
independently of the daemon) as the judge of "clean".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ccc_watch.changes.verify import Difference, verify
from ccc_watch.errors import StoreMissingError, StoreNeedsRepairError
from ccc_watch.mirror.mirror import Mirror, MirrorBusyError
from ccc_watch.store import open_store
from ccc_watch.vault.ignore import IgnoreRules

MODES = ("live", "stopped", "paused")  # SCENARIOS.md: run each scenario three ways


class Daemon:
    """A `ccc-watch run` child process and helpers to look at what it did."""

    def __init__(self, vault: Path, data: Path, log: Path) -> None:
        self.vault, self.data, self.log = vault, data, log
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
        self.env["XDG_CONFIG_HOME"] = str(data.parent / "cfg")
        self.proc: subprocess.Popen[bytes] | None = None
        self.prefix: list[str] = []  # e.g. an `unshare` wrapper that execs the daemon
        self.run_args: list[str] = []  # extra flags for `run`
        self.ready_states = ("watching",)
        self.backend = "redb"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ccc_watch.cli", "--vault", str(self.vault),
             "--data-dir", str(self.data), "--backend", self.backend, *args],
            capture_output=True, text=True, env=self.env, timeout=120)  # fmt: skip

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "ccc_watch.cli", "--vault",
                 str(self.vault), "--data-dir", str(self.data), "--backend", self.backend,
                 "run", "--settle", "0.1", *self.run_args],
                stdout=out, stderr=out, env=self.env)  # fmt: skip
        # A bound, not a timing: with every core running other tests (pytest -n auto) a
        # start with an offline reconcile has taken over 15 s. A daemon that died fails
        # at once in the next settle().
        wait_until(
            lambda: self.status().get("state") in self.ready_states, "daemon ready", timeout=45
        )

    def status(self) -> dict[str, Any]:
        got: dict[str, Any] = json.loads(self.cli("status", "--json").stdout)
        return got

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        # A bound, not a timing: a clean stop may wait out a running flush (5 s), flush
        # what is left (up to 5 s more) and then the flusher's child; with every core
        # running other tests that has taken over 10 s.
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(
                "the daemon did not stop within 30 s of SIGTERM:\n--- log ---\n"
                + self.log.read_text(errors="replace")[-4000:]
            )
        self.proc = None
        return code

    def records(self) -> dict[str, dict[str, Any]]:
        with open_store(self.data, backend=self.backend, readonly=True) as store:
            return {r["path"]: r for r in store.records()}

    def rules(self) -> IgnoreRules:
        """The rules the daemon should be applying."""
        return IgnoreRules.load(self.vault)

    def differences(self) -> list[Difference]:
        """What `verify --deep` finds: every field, id, walk entry and mirror row."""
        return verify(
            self.vault.resolve(),
            self.data,
            self.rules(),
            backend=self.backend,
            mirror=Mirror(self.data),
            deep=True,
        )

    def is_clean(self) -> bool:
        return not self.differences()

    def settle(self, timeout: float = 15) -> None:
        """Wait until `verify --deep` is clean; fail at once, with the log, if the daemon
        died."""
        died: list[int] = []

        def done() -> bool:
            code = None if self.proc is None else self.proc.poll()
            if code is not None:
                died.append(code)
                return True
            return self.is_clean()

        try:
            wait_until(done, "verify --deep clean", timeout)
            if not died:
                return
        except AssertionError:
            pass
        pytest.fail(
            (f"the daemon exited with code {died[0]}:\n" if died else "not clean:\n")
            + "\n".join(d.line() for d in self.differences()[:40])
            + "\n--- log ---\n"
            + self.log.read_text(errors="replace")[-4000:]
        )

    def events(self) -> list[tuple[Any, ...]]:
        with Mirror(self.data).connect() as con:
            return con.execute(
                "SELECT op, path, prev_path, cause FROM events ORDER BY seq"
            ).fetchall()

    def pause(self) -> None:
        """SIGSTOP: the observer is frozen, the kernel keeps queueing events."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill9(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    @contextmanager
    def during(self, mode: str) -> Iterator[None]:
        """Run the body with the daemon live, stopped (start-up reconcile afterwards) or
        paused (SIGSTOP, then SIGCONT)."""
        assert mode in MODES, mode
        if mode == "stopped":
            assert self.stop() == 0
        elif mode == "paused":
            self.pause()
        try:
            yield
        finally:
            if mode == "stopped":
                self.start()
            elif mode == "paused":
                self.resume()


def start_daemon(tmp_path: Path, vault: Path, *run_args: str) -> Daemon:
    """A daemon for vault with its data dir and log under tmp_path, started and clean."""
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.run_args = list(run_args)
    d.start()
    d.settle()
    return d


# What a check may meet while the daemon moves between states: the mirror held by a
# flush, a store left open by a killed writer until the next one repairs it, a store or
# status file not written yet. Anything else is a real failure and is raised at once.
TRANSIENT: tuple[type[BaseException], ...] = (
    MirrorBusyError,
    StoreNeedsRepairError,
    StoreMissingError,
    json.JSONDecodeError,
)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    """Poll check until it is true; a transient error means "not yet", any other error
    is raised as it is; after timeout, fail naming the last transient error seen."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except TRANSIENT as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(
        f"timed out waiting for {what}" + (f" (last: {last!r})" if last is not None else "")
    )
