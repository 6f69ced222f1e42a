"""What keeps the daemon from its work for a while, and when it tries again.

A full disk, a data dir deleted or made unwritable, a failing disk: the daemon's main
loop turns each such error (an OSError, or the StoreError the store made of one) into
a Fault here instead of dying. The reason is what `status` shows as degraded; it is
logged once (again only when it changes), as one line naming the cause and the fix;
the work is tried again after an exponential back-off. Nothing is lost meanwhile:
events keep queueing, and what a failed round took is given back to the queue.
"""

from __future__ import annotations

import errno
import time

from loguru import logger

from ccc_watch.errors import StoreError, store_os_error

FIRST_RETRY = 1.0  # seconds before the first retry; doubled after each failure
LAST_RETRY = 30.0  # the longest wait between two tries


def describe(err: BaseException) -> str:
    """One line naming what failed, why, and what to do."""
    if isinstance(err, OSError):
        where = err.filename if err.filename is not None else "the data dir"
        if err.errno == errno.ENOENT:
            return f"a file or folder the daemon writes is gone: {where}: {err.strerror}"
        return str(store_os_error(where, err, what="file"))
    return str(err)


class Faults:
    """The current fault of the daemon's work, if any, and its retry schedule."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.failures = 0
        self._retry_at = 0.0

    def due(self) -> bool:
        """Whether work may run now (no fault, or its back-off has passed)."""
        return time.monotonic() >= self._retry_at

    def failed(self, err: OSError | StoreError) -> None:
        """A round of work failed: note why, log it if the reason is new, back off."""
        reason = describe(err)
        if reason != self.reason:
            logger.error("{}; the daemon keeps watching and tries again until it works", reason)
        self.reason = reason
        self.failures += 1
        wait = min(FIRST_RETRY * 2 ** (self.failures - 1), LAST_RETRY)
        self._retry_at = time.monotonic() + wait

    def cleared(self) -> bool:
        """A round of work succeeded; True when it ends a fault."""
        ended = self.reason is not None
        if ended:
            logger.info("working again after {} failed tries ({})", self.failures, self.reason)
        self.reason = None
        self.failures = 0
        self._retry_at = 0.0
        return ended
