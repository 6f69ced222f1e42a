"""Mirror flushes in a child process, on their own cadence, never blocking the watcher.

The daemon's `MirrorFlusher` thread starts `python -m ccc_watch.mirror.flusher` when the store
has moved, asks it to flush (one line in, one JSON line out) and lets it exit after a
quiet spell. So:
- the watcher never waits for DuckDB, not even for a mirror rebuild of 100,000 notes;
- readers never stop a flush (the mirror publishes by rename, see mirror.py); a full
  disk or a DuckDB crash only ever stops the child: the store stays current, the daemon
  marks itself degraded, retries with exponential back-off (a circuit breaker) and
  catches up from the changelog later;
- an idle daemon carries neither DuckDB nor Arrow (about 100 MB of memory).
The child opens the store read-only for each flush: redb lets readers follow the one
writer, and a store swapped by `rebuild` is picked up at the next flush.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from loguru import logger

from ccc_watch.index.policy import IndexPolicy, policy_from_json, policy_json
from ccc_watch.log.drift import Drift
from ccc_watch.store import MIRROR_FILE

if TYPE_CHECKING:  # the daemon's side loads neither DuckDB nor Arrow
    from ccc_watch.mirror.mirror import Mirror

IDLE_EXIT = 30.0  # seconds without a flush before the child is let go
BUSY_CAP = 5.0  # another writer of the mirror (`ccc-watch mirror`) is done soon
FAILED_CAP = 60.0  # anything else (disk full, damage) backs off up to a minute
DEGRADED_AFTER = 3  # consecutive failed flushes before status says degraded
TERM_GRACE = 2.0  # seconds a terminated child gets to go before it is killed


class MirrorFlusher:
    """A thread that keeps the mirror within `interval` of the store, via a child."""

    def __init__(self, data_dir: Path, backend: str, policy: IndexPolicy, interval: float) -> None:
        self.data_dir = data_dir
        self.backend = backend
        self.policy = policy
        self.interval = interval
        self.failures = 0
        self.last_error: str | None = None
        self.last_flush: float | None = None  # wall time of the last good flush
        self.watermark: int | None = None
        self.deferred = 0.0  # seconds the last flush said publishing must wait
        self.on_flush: Callable[[float], None] | None = None  # seconds of each good flush
        self._poked = threading.Event()
        self._retry = threading.Event()
        self._stopping = threading.Event()
        self._busy = threading.Lock()  # held while a flush runs
        self._child: subprocess.Popen[bytes] | None = None
        self._child_lock = threading.Lock()  # spawning and ending the child
        self._hurry = threading.Event()  # stopping in a hurry: start no child
        self._child_used = 0.0
        self._rebuilds_wanted = 0  # rebuild requests made (see rebuild_soon)
        self.rebuilt = 0  # the last request a finished rebuild fulfilled
        self._thread = threading.Thread(target=self._loop, name="mirror-flusher", daemon=True)

    # --- the daemon's side ----------------------------------------------------

    def start(self) -> None:
        """Start the thread; the first flush catches up whatever the mirror lacks."""
        self._poked.set()
        self._thread.start()

    def poke(self) -> None:
        """The store moved: flush within `interval`."""
        self._poked.set()

    def rebuild_soon(self) -> int:
        """Rebuild the mirror into a new file at the next flush (retried until one
        succeeds), so that no page of the old file is kept (I8). Returns a ticket: the
        rebuild is done once `rebuilt` reaches it."""
        self._rebuilds_wanted += 1
        self._poked.set()
        return self._rebuilds_wanted

    def retry_now(self) -> None:
        """What made flushes fail is likely gone (the daemon's own writes work again after
        a full disk): cut the back-off short and flush now."""
        self._retry.set()
        self._poked.set()

    @property
    def degraded(self) -> bool:
        """Whether the mirror has failed repeatedly and lags."""
        return self.failures >= DEGRADED_AFTER

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No flush runs inside this block (used to swap the store during a rebuild)."""
        with self._busy:
            yield

    def flush_now(self, timeout: float | None = None) -> str:
        """Flush at once, waiting for a running flush first: the outcome."""
        if not self._busy.acquire(timeout=-1 if timeout is None else timeout):
            return "busy"
        try:
            return self._flush(timeout)
        finally:
            self._busy.release()

    def stop(self, grace: float = 5.0, hurry: bool = False) -> None:
        """Stop the thread, flush what is left (within grace seconds), end the child.

        In a hurry (a second SIGTERM) nothing more is flushed: the child is terminated
        at once (killed when it lingers), cutting a flush short, which is safe: the
        next flush catches up from the changelog.
        """
        self._stopping.set()
        self._poked.set()
        if hurry:
            self._hurry.set()
            self._end_child(how="terminate")
        self._thread.join(timeout=grace)
        if self._thread.is_alive():  # a long flush (a mirror rebuild): it is safe to cut
            logger.warning("mirror flush still running after {:.0f} s: stopping it", grace)
            self._end_child(how="kill")
            self._thread.join(timeout=1)
        elif not hurry:
            self.flush_now(timeout=grace)
        self._end_child()

    # --- the thread -------------------------------------------------------------

    def _loop(self) -> None:
        pending = False
        due = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            if pending:
                timeout: float | None = max(0.0, due - now)
            elif self._child is not None:
                timeout = max(0.0, self._child_used + IDLE_EXIT - now)
            else:
                timeout = None
            if self._poked.wait(timeout):
                self._poked.clear()
                pending = True
            if self._retry.is_set():
                self._retry.clear()
                due = 0.0
            if self._stopping.is_set():
                return
            now = time.monotonic()
            if not pending:
                if self._child is not None and now >= self._child_used + IDLE_EXIT:
                    self._end_child()
                continue
            if now < due:
                continue
            with self._busy:
                outcome = self._flush(None)
            if outcome == "ok":
                pending = False
                due = time.monotonic() + self.interval
            elif outcome == "deferred":  # not a failure: publishing waits for a copy
                due = time.monotonic() + max(self.interval, self.deferred)
            else:
                cap = BUSY_CAP if outcome == "busy" else FAILED_CAP
                delay = min(0.25 * 2 ** (self.failures - 1), cap)
                due = time.monotonic() + delay * random.uniform(0.8, 1.2)

    def _flush(self, timeout: float | None) -> str:
        """One flush through the child: 'ok', 'deferred', 'busy' or 'failed'."""
        started = time.perf_counter()
        try:
            reply = self._ask(timeout)
        except (OSError, TimeoutError, ValueError) as e:
            self._end_child(how="kill")
            reply = {"outcome": "failed", "error": f"mirror process: {e}"}
        outcome = str(reply.get("outcome"))
        if outcome == "deferred":
            self.deferred = float(reply.get("deferred", 0.0))
            self.watermark = reply.get("watermark")
            return "deferred"
        if outcome == "ok":
            if self.failures >= DEGRADED_AFTER:
                logger.info("mirror flushes work again after {} failures", self.failures)
            self.failures = 0
            self.deferred = 0.0
            self.last_error = None
            self.last_flush = time.time()
            self.watermark = reply.get("watermark")
            if self.on_flush is not None:
                self.on_flush(time.perf_counter() - started)
            return "ok"
        self.failures += 1
        self.last_error = str(reply.get("error"))
        if outcome != "busy" or self.failures == DEGRADED_AFTER:
            logger.warning("mirror flush {} ({}x): {}", outcome, self.failures, self.last_error)
        if self.failures == DEGRADED_AFTER:
            detail = f"{self.failures} flushes failed, retrying: {self.last_error}"
            logger.warning(Drift("mirror-lag", str(self.data_dir / MIRROR_FILE), detail).line())
        return "busy" if outcome == "busy" else "failed"

    def _ask(self, timeout: float | None) -> dict[str, Any]:
        child = self._spawn()
        assert child.stdin is not None and child.stdout is not None
        wanted = self._rebuilds_wanted
        rebuild = wanted > self.rebuilt
        child.stdin.write(b"rebuild\n" if rebuild else b"flush\n")
        child.stdin.flush()
        reply = self._reply(child, timeout)
        if rebuild and reply.get("outcome") == "ok":
            self.rebuilt = wanted
        return reply

    def _reply(self, child: subprocess.Popen[bytes], timeout: float | None) -> dict[str, Any]:
        assert child.stdout is not None
        line = _readline(child.stdout, timeout)
        self._child_used = time.monotonic()
        if not line:
            code = child.wait(timeout=5)
            self._child = None
            raise OSError(f"exited with code {code} during a flush")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self._child_lock:
            if self._hurry.is_set():
                raise OSError("stopping: no new mirror process")
            if self._child is not None and self._child.poll() is None:
                return self._child
            self._child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ccc_watch.mirror.flusher",
                    str(self.data_dir),
                    self.backend,
                    policy_json(self.policy),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self._child_used = time.monotonic()
            return self._child

    def _end_child(self, how: Literal["close", "terminate", "kill"] = "close") -> None:
        """End the child: close its input (it finishes its flush and leaves), terminate
        it, or kill it; one that lingers is killed."""
        with self._child_lock:
            child, self._child = self._child, None
        if child is None:
            return
        if how == "kill":
            child.kill()
        elif how == "terminate":
            child.terminate()
        elif child.stdin is not None:
            child.stdin.close()  # end of input: the child leaves
        try:
            child.wait(timeout=TERM_GRACE if how == "terminate" else 5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _readline(stream: IO[bytes], timeout: float | None) -> bytes:
    if timeout is not None:
        ready, _, _ = select.select([stream], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no answer within {timeout:.0f} s")
    return stream.readline()


# --- the policy, as the child gets it -------------------------------------------

# Every field, so that a field added to either class cannot be lost on the way.
# --- the child's side ----------------------------------------------------------


def _flush_once(mirror: Mirror, backend: str, rebuild: bool = False) -> dict[str, Any]:
    import duckdb

    from ccc_watch.errors import StoreError
    from ccc_watch.mirror.mirror import MirrorBusyError, MirrorError
    from ccc_watch.store import open_store

    try:
        with open_store(mirror.path.parent, backend=backend, readonly=True) as store:
            result = mirror.rebuild(store) if rebuild else mirror.flush(store)
    except MirrorBusyError as e:
        return {"outcome": "busy", "error": str(e)}
    except (MirrorError, StoreError, OSError, duckdb.Error) as e:
        return {"outcome": "failed", "error": str(e)}
    if result.deferred:
        return {"outcome": "deferred", "deferred": result.deferred, "watermark": result.watermark}
    return {
        "outcome": "ok",
        "applied": result.applied,
        "watermark": result.watermark,
        "rebuilt": result.rebuilt,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m ccc_watch.mirror.flusher DATA_DIR BACKEND POLICY`: on each input line,
    flush (`flush`) or rebuild the mirror into a new file (`rebuild`)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("backend")
    parser.add_argument("policy", help="the IndexPolicy as a JSON document (policy_json)")
    args = parser.parse_args(argv)
    try:
        policy = policy_from_json(args.policy)
    except ValueError as e:
        parser.error(f"malformed policy: {e}")
    from ccc_watch.log import sinks as logs
    from ccc_watch.mirror.mirror import Mirror

    logs.child_setup()
    # One Mirror for the child's life: it remembers when it last had to copy the file.
    mirror = Mirror(args.data_dir, policy)
    mirror.writer_wait = 1.0  # another writer: answer "busy" soon, the thread retries
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        if line.strip() not in (b"flush", b"rebuild"):
            reply: dict[str, Any] = {"outcome": "failed", "error": f"unknown request {line!r}"}
        else:
            rebuild = line.strip() == b"rebuild"
            reply = _flush_once(mirror, args.backend, rebuild)
        try:
            out.write(json.dumps(reply).encode() + b"\n")
            out.flush()
        except BrokenPipeError:  # the daemon is gone: so is the reason to flush
            os._exit(0)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
