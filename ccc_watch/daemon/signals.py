"""How the daemon hears the outside world: signals become flags its main loop reads.

SIGTERM/SIGINT ask for a clean stop (drain, flush, close); a second one while the
daemon is still busy raises Interrupted in the main thread, which cuts short whatever
it waits for (a long reconcile, a rebuild, the final drain) while the `finally`
blocks still stop the flusher and close the store, as litestream does. SIGHUP asks
for a reload, SIGUSR1 says a request file waits. The handlers only set flags: loguru
is not re-entrant, so nothing is logged from inside a handler.
"""

from __future__ import annotations

import faulthandler
import signal
import threading
from collections.abc import Callable
from types import FrameType

from loguru import logger

from ccc_watch.daemon import control


class Interrupted(BaseException):
    """A second stop signal: stop waiting and shut down now (BaseException, like
    KeyboardInterrupt, so no `except Exception` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} again: stopping without draining")
        self.signum = signum


class Signals:
    """The flags the signal handlers set; `wake` is set with each, so a waiting main
    loop looks at once."""

    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.requests = threading.Event()
        self.hurry = threading.Event()  # a second stop signal came
        self.closing = False  # the shutdown has begun: a second signal only hurries it
        self.received: int | None = None  # the first stop signal's number

    def install(self) -> None:
        """Take over SIGTERM, SIGINT, SIGHUP and SIGUSR1, and log thread deaths; only
        from the main thread (embedded in another program, its signals are its own)."""
        if threading.current_thread() is not threading.main_thread():
            return
        # A thread that dies (a watchdog emitter, say) is noticed by the main loop; its
        # traceback belongs in the daemon's log, not on a terminal nobody watches.
        threading.excepthook = _log_thread_death
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._flag(self.reload))
        signal.signal(control.SIGNAL, self._flag(self.requests))
        # `kill -USR2 <pid>`: every thread's stack on stderr, to see where a daemon that
        # stopped answering waits (faulthandler writes from C, safe inside a handler).
        faulthandler.register(signal.SIGUSR2, all_threads=True)

    def stop_reason(self) -> str:
        """The first stop signal's name, for the log."""
        return "stop requested" if self.received is None else signal.Signals(self.received).name

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.hurry.set()
            self.wake.set()
            if not self.closing:
                raise Interrupted(signum)
            return
        self.received = signum
        self.stop.set()
        self.wake.set()

    def _flag(self, event: threading.Event) -> Callable[[int, FrameType | None], None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            event.set()
            self.wake.set()

        return handler


def _log_thread_death(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "?"
    logger.opt(exception=(args.exc_type, args.exc_value, args.exc_traceback)).error(
        "thread {} died", name
    )
