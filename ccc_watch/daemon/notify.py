"""systemd's notify protocol, spoken directly: one datagram per message to the
AF_UNIX socket named by $NOTIFY_SOCKET (a leading '@' means the abstract namespace).
No libsystemd, and nothing at all when the variable is unset (not under systemd, or
not Type=notify).

The daemon says READY=1 once its store is open and the start-up reconcile has begun,
STATUS=<what it is doing> when that changes, STOPPING=1 when it shuts down, and
WATCHDOG=1 from its main loop every half of $WATCHDOG_USEC, when $WATCHDOG_PID is
unset or is this process (sd_watchdog_enabled's rule): a hung main loop then stops
the pings and systemd restarts the service.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

from loguru import logger


class Notifier:
    """Messages to the service manager; every method is a no-op outside systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        self.watchdog_interval: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2
        self._next_ping = 0.0
        self._status: str | None = None
        self._failed = False  # the last send failed (said once, not every ping)

    def send(self, *fields: str) -> bool:
        """Send 'KEY=value' fields as one datagram; False when not sent."""
        if self.address is None:
            return False
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(address)
                s.sendall("\n".join(fields).encode())
        except OSError as e:  # the manager went away: nothing to tell
            if not self._failed:
                logger.warning("cannot notify the service manager at {}: {}", self.address, e)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> None:
        """The service is up (systemd's start job completes)."""
        self._status = status
        self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> None:
        """What the service is doing, shown by `systemctl status` (sent on change)."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    def stopping(self) -> None:
        """The service is shutting down."""
        self._status = "stopping"
        self.send("STOPPING=1", "STATUS=stopping")

    def ping(self) -> None:
        """WATCHDOG=1, at most every half watchdog interval; call it from the main loop."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now >= self._next_ping:
            self._next_ping = now + self.watchdog_interval
            self.send("WATCHDOG=1")
