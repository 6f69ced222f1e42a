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


def child_output(out: IO[bytes], err: IO[bytes]) -> tuple[str, list[str]]:
    """A finished child's stdout (its first MiB) and its one-line error messages (the
    `ccc-watch: ` lines of its stderr); closes both files."""
    with out, err:
        out.seek(0)
        err.seek(0)
        stdout = out.read(1 << 20).decode(errors="replace")
        text = err.read(1 << 20).decode(errors="replace")
    return stdout, [ln for ln in text.splitlines() if ln.startswith("ccc-watch: ")]


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
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: tuple[IO[bytes], IO[bytes]] | None = None
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
        if self.proc is not None and self.proc.poll() is not None:
            self._reap()
        if self.due is None or self.proc is not None or time.time() < self.due:
            return
        self.due = time.time() + self.interval
        # Open for the child's whole life, closed in _reap: no `with` fits.
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                backup_command(self.cfg), stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        except OSError as e:
            out.close()
            err.close()
            logger.error("scheduled backup: cannot start it: {}", e)
            return
        self._out = (out, err)

    def _reap(self, stopping: bool = False) -> None:
        assert self.proc is not None and self._out is not None
        code = self.proc.returncode
        out, err = self._out
        self.proc, self._out = None, None
        stdout, lines = child_output(out, err)
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
            reason = lines[-1].removeprefix("ccc-watch: ") if lines else f"exit code {code}"
            self.last = {"error": reason}
            logger.error("scheduled backup failed (exit {}): {}", code, reason)

    def stop(self) -> None:
        """End a backup still running (the next one removes what it leaves)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._reap(stopping=True)
        else:
            self._reap()
