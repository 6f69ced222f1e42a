"""Scheduled backups: every `backup_interval` seconds the daemon runs `ccc-watch backup`
as a child process, with its own settings, and logs the outcome.

A child, not a thread: the backup reads the store through its own read-only open (a
process cannot open its own redb file twice) and builds a mirror with DuckDB, which the
daemon itself never loads. The daemon goes on watching meanwhile; a backup still
running when the next one is due is left to finish, and one still running at stop is
ended (what it leaves, a temp file and a work folder, the next backup removes).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from loguru import logger

from ccc_watch.config import BY_KEY, Config
from ccc_watch.store import Store

_NEVER_PASSED = {"vault", "data_dir", "backend"}  # given explicitly below


def backup_command(cfg: Config) -> list[str]:
    """The command line of `ccc-watch backup --json` under the daemon's settings."""
    return child_command(cfg, "backup", "--json")


class Child:
    """A `ccc-watch` child the daemon started (a backup, a publication), its output in
    private temp files that stay open for its whole life and are read when it ends."""

    def __init__(self, proc: subprocess.Popen[bytes], out: IO[bytes], err: IO[bytes]) -> None:
        self.proc, self._out, self._err = proc, out, err

    @classmethod
    def start(cls, argv: list[str], what: str) -> Child | None:
        """Start argv; None, with one ERROR line naming `what`, when it cannot start."""
        # Open for the child's whole life, closed in finish(): no `with` fits.
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        except OSError as e:
            out.close()
            err.close()
            logger.error("{}: cannot start it: {}", what, e)
            return None
        return cls(proc, out, err)

    def done(self) -> bool:
        """Whether it has ended."""
        return self.proc.poll() is not None

    def end(self, *, terminate: bool) -> None:
        """Wait for it up to 10 s (after a SIGTERM when terminate), then kill it."""
        if terminate:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def finish(self) -> tuple[int, str, str]:
        """(exit code, its stdout's first MiB, why it failed: its last `ccc-watch: `
        line, else "exit code N"); closes the files."""
        with self._out, self._err:
            self._out.seek(0)
            self._err.seek(0)
            stdout = self._out.read(1 << 20).decode(errors="replace")
            text = self._err.read(1 << 20).decode(errors="replace")
        code = self.proc.returncode
        lines = [ln for ln in text.splitlines() if ln.startswith("ccc-watch: ")]
        reason = lines[-1].removeprefix("ccc-watch: ") if lines else f"exit code {code}"
        return code, stdout, reason


def child_command(cfg: Config, *command: str) -> list[str]:
    """The command line of `ccc-watch COMMAND...` under the daemon's settings: the config
    file, and every setting the daemon had from a flag (the environment is inherited)."""
    args = [sys.executable, "-m", "ccc_watch.cli"]
    if cfg.config_file is not None:
        args += ["--config", str(cfg.config_file)]
    args += ["--vault", str(cfg.require_vault()), "--data-dir", str(cfg.resolved_data_dir())]
    args += ["--backend", cfg.backend]
    for key, source in cfg.sources.items():
        if source != "flag" or key in _NEVER_PASSED:
            continue
        value = getattr(cfg, key)
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        args += [BY_KEY[key].flag, str(value)]
    return [*args, *command]


class ScheduledBackups:
    """Starts a backup child when one is due, and reports how it ended."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.interval = cfg.backup_interval
        self.due: float | None = None  # wall clock; None until started
        self.child: Child | None = None
        self.last: dict[str, Any] | None = None  # the last report, or {"error": ...}

    def start(self, store: Store | None) -> None:
        """Schedule the first backup one interval after the newest archive of this vault
        (the store's vault id) in the backup folder (now, when that is past), or one
        interval from now."""
        if self.interval <= 0:
            return
        from ccc_watch.backup.retention import archives_of  # cryptography: only when on

        newest = None
        try:
            vault_id = None if store is None else str(store.meta["vault_id"])
            found = (
                [] if vault_id is None else archives_of(self.cfg.resolved_backup_dir(), vault_id)
            )
            newest = found[-1][0] if found else None
        except Exception as e:  # a bad backup_dir: said when the backup runs
            logger.debug("scheduled backups: cannot list the backup folder: {}", e)
        now = time.time()
        self.due = now + self.interval if newest is None else max(now, newest + self.interval)
        logger.info(
            "scheduled backups every {:g} s; the next at {}",
            self.interval,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.due)),
        )

    def tick(self) -> None:
        """Called from the daemon's loop: reap a finished backup, start a due one."""
        if self.child is not None and self.child.done():
            self._reap()
        if self.due is None or self.child is not None or time.time() < self.due:
            return
        self.due = time.time() + self.interval
        self.child = Child.start(backup_command(self.cfg), "scheduled backup")

    def _reap(self, stopping: bool = False) -> None:
        assert self.child is not None
        code, stdout, reason = self.child.finish()
        self.child = None
        if code == 0:
            try:
                self.last = json.loads(stdout)
            except ValueError:
                self.last = {}
            logger.info("scheduled backup written: {}", (self.last or {}).get("archive"))
        elif stopping:
            self.last = {"error": "cut short by the daemon's stop"}
            logger.info("scheduled backup cut short by the stop: the next one cleans up")
        else:
            self.last = {"error": reason}
            logger.error("scheduled backup failed (exit {}): {}", code, reason)

    def stop(self) -> None:
        """End a backup still running (the next one removes what it leaves)."""
        if self.child is None:
            return
        if self.child.done():
            self._reap()
        else:
            self.child.end(terminate=True)
            self._reap(stopping=True)
