"""Scheduled manifest publication (README "Headquarters and outposts"): the daemon runs
`ccc-watch manifest publish --json` as a child process, with its own settings, when
the store changed since the last publication, at most every `publish_interval` seconds
(0: never automatically), and also when the last publication is half of `stale_after`
old, so that a node whose vault does not change is not reported stale.

A child, as for backups: it reads the store through its own read-only open (a process
cannot open its own redb file twice) and loads pyarrow, which the daemon never does. A
failure is one ERROR line; the next interval tries again. Nothing happens without a
carrier (manifest_dir or hq_url).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from loguru import logger

from ccc_watch.config import Config
from ccc_watch.daemon.backups import Child, child_command


class ScheduledPublish:
    """Starts a publishing child when one is due, and reports how it ended."""

    def __init__(self, cfg: Config, head: Callable[[], int | None]) -> None:
        self.cfg = cfg
        self.head = head  # the store's changelog head now
        self.on = cfg.publish_interval > 0 and (
            cfg.manifest_dir is not None or cfg.hq_url is not None
        )
        self.due = 0.0  # monotonic; the first one at start
        self.published_head: int | None = None
        self.published_at = 0.0  # monotonic
        self.child: Child | None = None
        self._head_at_start: int | None = None
        self.last_error: str | None = None

    def tick(self) -> None:
        """Called from the daemon's loop: reap a finished child, start a due one."""
        if not self.on:
            return
        if self.child is not None and self.child.done():
            self._reap()
        now = time.monotonic()
        if self.child is not None or now < self.due:
            return
        head = self.head()
        if head is None:
            return
        refresh = now - self.published_at >= self.cfg.stale_after / 2
        if head == self.published_head and not refresh:
            return
        self.due = now + self.cfg.publish_interval
        argv = child_command(self.cfg, "manifest", "publish", "--json")
        self.child = Child.start(argv, "manifest publication")
        self._head_at_start = head

    def _reap(self) -> None:
        assert self.child is not None
        code, stdout, reason = self.child.finish()
        self.child = None
        if code == 0:
            head: int | None
            try:
                reports = json.loads(stdout)
                head = int(reports[0]["head_seq"])
            except (ValueError, LookupError, TypeError):
                head = self._head_at_start
            self.published_head, self.published_at = head, time.monotonic()
            self.last_error = None
            logger.info("manifest published (changelog head {})", head)
        else:
            self.last_error = reason
            logger.error(
                "manifest publication failed (exit {}): {}; retrying in {:g} s",
                code,
                reason,
                self.cfg.publish_interval,
            )

    def stop(self) -> None:
        """Let a running publication finish (it is atomic and short), up to 10 s."""
        if self.child is None:
            return
        self.child.end(terminate=False)
        self._reap()
