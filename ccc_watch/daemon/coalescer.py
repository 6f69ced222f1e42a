"""The Coalescer: file events become dirty vault paths, released once they settle.

Events are hints. A file event marks its path (both paths of a move) dirty; a path is
handed over once no event touched it for the settle window, and a file still open for
writing waits for its close. A request for a full reconcile releases everything, once
the events pause.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

# A file modified and not closed yet is still being written (Obsidian: open with
# O_TRUNC, write, close): wait for the close event, but no longer than this (a writer
# that keeps the file open, or a lost close event).
WRITE_WAIT = 5.0
# The longest a requested rescan waits for the events to pause (Coalescer.take).
RESCAN_WAIT = 5.0


@dataclass
class Pending:
    """What the events asked for since the last drain."""

    # key -> (time of the last event, the real path: it may be NFD where the key is NFC)
    dirty: dict[str, tuple[float, str]] = field(default_factory=dict)
    moves: list[tuple[str, str]] = field(default_factory=list)
    rescan: str | None = None  # why a full reconcile is wanted
    rescan_asked: float = 0.0  # when it was first asked for (monotonic)
    expected: bool = True  # every rescan request came from an event that explains it
    rules_changed: bool = False  # an ignore-rule file (.cccignore, app.json) changed
    # key -> until when to wait for its writer's close (an open file may be mid-write)
    writing: dict[str, float] = field(default_factory=dict)
    last_event: float | None = None
    quiet_since: float = 0.0  # monotonic time of the last event of any kind


class Coalescer:
    """Thread-safe collection of dirty paths, released once they settle."""

    def __init__(self, settle_seconds: float) -> None:
        self.settle = settle_seconds
        self._lock = threading.Lock()
        self._pending = Pending()
        self.wake = threading.Event()
        self.events: Counter[str] = Counter()  # file events seen, by kind (for metrics)

    def mark(self, key: str, path: str, writing: bool | None = None) -> None:
        """A file event touched key (on disk: path). writing=True: it was modified and
        is not closed yet (held until a close event, at most WRITE_WAIT seconds);
        False: its writer closed it."""
        now = time.monotonic()
        with self._lock:
            self._pending.dirty[key] = (now, path)
            self._pending.last_event = time.time()
            self._pending.quiet_since = now
            if writing:
                self._pending.writing.setdefault(key, now + WRITE_WAIT)
            elif writing is False:
                self._pending.writing.pop(key, None)
        self.wake.set()

    def move(self, old: str, new: str, new_path: str) -> None:
        """A file moved inside the vault: keep its identity, then re-read it."""
        if old == new:  # a rename that keeps the key (NFD -> NFC): an edit, no move
            self.mark(new, new_path)
            return
        now = time.monotonic()
        with self._lock:
            self._pending.moves.append((old, new))
            self._pending.dirty[new] = (now, new_path)
            self._pending.dirty.pop(old, None)
            self._pending.last_event = time.time()
            self._pending.quiet_since = now
        self.wake.set()

    def rescan(self, reason: str, expected: bool = False, rules_changed: bool = False) -> None:
        """Ask for a full reconcile; `expected` when an event explains what it will find
        (a folder created or moved), so its findings are no drift; `rules_changed` when
        the ignore rules must be read again first."""
        with self._lock:
            if self._pending.rescan is None:
                self._pending.rescan_asked = time.monotonic()
            self._pending.rescan = self._pending.rescan or reason
            self._pending.expected = self._pending.expected and expected
            self._pending.rules_changed = self._pending.rules_changed or rules_changed
            self._pending.last_event = time.time()
            self._pending.quiet_since = time.monotonic()
        self.wake.set()

    def is_dirty(self, key: str) -> bool:
        """Whether an event touched key since it was last taken."""
        with self._lock:
            return key in self._pending.dirty

    def depth(self) -> int:
        """Paths waiting."""
        with self._lock:
            return len(self._pending.dirty) + len(self._pending.moves)

    def last_event(self) -> float | None:
        """Wall time of the last event seen."""
        with self._lock:
            return self._pending.last_event

    def take(self, force: bool = False) -> Batch:
        """What is ready: settled paths and the moves among them, and a full reconcile
        if one was asked for. force, or a rescan that is due, releases everything:
        events first, then the scan. A rescan is due once no event came for the settle
        window (or RESCAN_WAIT after it was asked for, under endless events): a scan
        run while the watcher still delivers a burst (a folder moved, then renames)
        would see files renamed by events not yet applied, and those events, applied
        after it, would move records it had already put in place."""
        with self._lock:
            pending = self._pending
            now = time.monotonic()
            force = force or (
                pending.rescan is not None
                and (
                    now - pending.quiet_since >= self.settle
                    or now - pending.rescan_asked >= RESCAN_WAIT
                )
            )
            cutoff = now - (0 if force else self.settle)
            settled = [
                (k, p)
                for k, (t, p) in pending.dirty.items()
                if t <= cutoff and (force or pending.writing.get(k, 0.0) <= now)
            ]
            # Moves go with the paths they touch, all of them once nothing is unsettled:
            # a move's destination read before its move is applied would be stored as a
            # new note, and the move applied later would then put the old record (old
            # name, old ctime) back over it with nothing left to read it again.
            moves: list[tuple[str, str]] = []
            if force or len(settled) == len(pending.dirty):
                moves, pending.moves = pending.moves, []
                ready = settled
            else:
                touched = {key for move in pending.moves for key in move}
                ready = [(k, p) for k, p in settled if k not in touched]
            times = {k: pending.dirty.pop(k)[0] for k, _ in ready}
            for k in times:
                pending.writing.pop(k, None)
            rescan = pending.rescan if force else None
            batch = Batch(moves, ready, rescan, pending.expected, pending.rules_changed, times)
            if force:
                pending.rescan, pending.expected, pending.rules_changed = None, True, False
        return batch

    def give_back(self, batch: Batch) -> None:
        """Queue again what a batch held whose work failed (a full disk, say): ready at
        once, ahead of what came since; applying it twice is harmless."""
        with self._lock:
            pending = self._pending
            for key, path in batch.ready:
                if key not in pending.dirty:  # a newer event's time wins
                    pending.dirty[key] = (batch.times.get(key, 0.0), path)
            pending.moves[:0] = batch.moves
        if batch.rescan is not None:
            self.rescan(batch.rescan, batch.expected, batch.rules_changed)
        self.wake.set()


@dataclass
class Batch:
    """What Coalescer.take hands over."""

    moves: list[tuple[str, str]]  # (old key, new key), in the order they happened
    ready: list[tuple[str, str]]  # settled (key, real path)
    rescan: str | None  # why a full reconcile is wanted, if it is
    expected: bool  # the rescan's findings are explained by events (no drift)
    rules_changed: bool  # read the ignore rules again before the rescan
    times: dict[str, float]  # monotonic time of each ready path's last event
