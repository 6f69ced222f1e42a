"""The Watcher: watchdog events become dirty vault paths, settled before indexing.

Events are hints. A file event marks its path (both paths of a move) dirty; the
coalescer hands a path to the indexer once no event touched it for the settle
window. A folder event, or anything the observer may have lost (an inotify queue
overflow), asks for a full reconcile instead: stat-first scans are cheap, and they
catch what per-file events cannot (a folder moved out of the vault sends one event).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler, FileSystemMovedEvent
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ccc_watch.errors import InvalidPathError
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.paths import vault_key
from ccc_watch.vault.walk import NOT_UTF8, is_utf8, log_skip

OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
# A file modified and not closed yet is still being written (Obsidian: open with
# O_TRUNC, write, close): wait for the close event, but no longer than this (a writer
# that keeps the file open, or a lost close event).
WRITE_WAIT = 5.0


@dataclass
class Pending:
    """What the events asked for since the last drain."""

    # key -> (time of the last event, the real path: it may be NFD where the key is NFC)
    dirty: dict[str, tuple[float, str]] = field(default_factory=dict)
    moves: list[tuple[str, str]] = field(default_factory=list)
    rescan: str | None = None  # why a full reconcile is wanted
    expected: bool = True  # every rescan request came from an event that explains it
    rules_changed: bool = False  # an ignore-rule file (.cccignore, app.json) changed
    # key -> until when to wait for its writer's close (an open file may be mid-write)
    writing: dict[str, float] = field(default_factory=dict)
    last_event: float | None = None


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
        self.wake.set()

    def rescan(self, reason: str, expected: bool = False, rules_changed: bool = False) -> None:
        """Ask for a full reconcile; `expected` when an event explains what it will find
        (a folder created or moved), so its findings are no drift; `rules_changed` when
        the ignore rules must be read again first."""
        with self._lock:
            self._pending.rescan = self._pending.rescan or reason
            self._pending.expected = self._pending.expected and expected
            self._pending.rules_changed = self._pending.rules_changed or rules_changed
            self._pending.last_event = time.time()
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
        if one was asked for. force, or a pending rescan, releases everything: events
        first, then the scan."""
        with self._lock:
            force = force or self._pending.rescan is not None
        cutoff = time.monotonic() - (0 if force else self.settle)
        with self._lock:
            pending = self._pending
            now = time.monotonic()
            ready = [
                (k, p)
                for k, (t, p) in pending.dirty.items()
                if t <= cutoff and (force or pending.writing.get(k, 0.0) <= now)
            ]
            times = {k: pending.dirty.pop(k)[0] for k, _ in ready}
            for k in times:
                pending.writing.pop(k, None)
            # Moves go with the paths they touch: all of them once nothing is unsettled.
            moves: list[tuple[str, str]] = []
            if force or not pending.dirty:
                moves, pending.moves = pending.moves, []
            batch = Batch(
                moves, ready, pending.rescan, pending.expected, pending.rules_changed, times
            )
            pending.rescan, pending.expected, pending.rules_changed = None, True, False
        return batch


@dataclass
class Batch:
    """What Coalescer.take hands over."""

    moves: list[tuple[str, str]]  # (old key, new key), in the order they happened
    ready: list[tuple[str, str]]  # settled (key, real path)
    rescan: str | None  # why a full reconcile is wanted, if it is
    expected: bool  # the rescan's findings are explained by events (no drift)
    rules_changed: bool  # read the ignore rules again before the rescan
    times: dict[str, float]  # monotonic time of each ready path's last event


# What an event says about a file's writer: still writing (a write or a truncation
# through an open file), or done (closed). Not "created": a symlink or a hard link is
# created without ever being opened, so no close would follow.
_WRITING = {"modified": True, "closed": False}


class _Handler(FileSystemEventHandler):
    """Turns watchdog events into Coalescer calls, filtering with the shared rules."""

    def __init__(self, vault: Path, rules: IgnoreRules, coalescer: Coalescer) -> None:
        self.vault = vault
        self.rules = rules
        self.coalescer = coalescer

    def key(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        try:
            rel = os.path.relpath(text, self.vault)
        except ValueError:
            return None
        if rel == "." or rel.startswith(".."):
            return None
        try:
            return vault_key(rel)
        except InvalidPathError:
            reason = NOT_UTF8 if not is_utf8(rel) else "not a valid vault path"
            log_skip(os.fspath(self.vault), rel, reason)
            return None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        self.coalescer.events[event.event_type] += 1
        src = self.key(event.src_path)
        dest = self.key(event.dest_path) if isinstance(event, FileSystemMovedEvent) else None
        for key in (src, dest):
            if key is not None and key in self.rules.rule_files:
                self.coalescer.rescan(f"{key} changed", expected=True, rules_changed=True)
                return
        if event.is_directory:
            if event.event_type != "modified":  # created, deleted, moved: the subtree
                self.coalescer.rescan(f"folder {event.event_type}: {src or dest}", expected=True)
            return
        src_ok = src is not None and not self.rules.is_ignored(src)
        dest_ok = dest is not None and not self.rules.is_ignored(dest)
        src_path = os.fsdecode(event.src_path)
        if isinstance(event, FileSystemMovedEvent):
            dest_path = os.fsdecode(event.dest_path)
            if src_ok and dest_ok:
                self.coalescer.move(str(src), str(dest), dest_path)
            else:  # into or out of ignored space (an atomic save from a temp name)
                if src_ok:
                    self.coalescer.mark(str(src), src_path)
                if dest_ok:
                    self.coalescer.mark(str(dest), dest_path)
        elif src_ok:
            self.coalescer.mark(str(src), src_path, _WRITING.get(event.event_type))


class _OverflowHook(logging.Handler):
    """watchdog reports a lost-events queue overflow only as a log record."""

    def __init__(self, coalescer: Coalescer) -> None:
        super().__init__(logging.WARNING)
        self.coalescer = coalescer

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.coalescer.rescan("inotify queue overflowed: events were lost")


class Watcher:
    """A watchdog observer over the vault feeding a Coalescer."""

    def __init__(self, vault: Path, rules: IgnoreRules, coalescer: Coalescer) -> None:
        self.vault = vault
        self.coalescer = coalescer
        self.handler = _Handler(vault, rules, coalescer)
        self.observer: BaseObserver | None = None
        self._hook = _OverflowHook(coalescer)
        logging.getLogger(OVERFLOW_LOGGER).addHandler(self._hook)

    def set_rules(self, rules: IgnoreRules) -> None:
        """Use new ignore rules from now on."""
        self.handler.rules = rules

    def start(self) -> None:
        """Start (or restart) the observer. OSError when the system refuses (out of
        inotify instances or watches for the root): the caller falls back to scans."""
        self._stop_observer()
        observer = Observer()
        observer.schedule(self.handler, str(self.vault), recursive=True)
        try:
            observer.start()
        except OSError:
            observer.stop()
            raise
        self.observer = observer

    def alive(self) -> bool:
        """Whether the observer and every emitter thread still run: an exception in an
        emitter ends its thread silently while the observer thread carries on."""
        observer = self.observer
        if observer is None or not observer.is_alive():
            return False
        emitters = list(observer.emitters)
        return bool(emitters) and all(e.is_alive() for e in emitters)

    def watches(self) -> int | None:
        """inotify watches this process holds (Linux), or None where unknown."""
        return inotify_watches()

    def _stop_observer(self) -> None:
        observer, self.observer = self.observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def stop(self) -> None:
        """Stop watching."""
        self._stop_observer()
        logging.getLogger(OVERFLOW_LOGGER).removeHandler(self._hook)


def inotify_watches() -> int | None:
    """The inotify watches held by this process, from /proc/self/fdinfo (Linux only).

    Running out of watches is silent in watchdog: folders beyond the limit simply never
    report. Comparing this count with the folders on disk is how the daemon notices.
    """
    if not sys.platform.startswith("linux"):
        return None
    total = 0
    try:
        fds = os.listdir("/proc/self/fdinfo")
    except OSError:
        return None
    for fd in fds:
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                total += f.read().count("inotify wd:")
        except OSError:  # closed meanwhile
            continue
    return total


def watched_folders(vault: Path) -> int:
    """Folders a recursive inotify observer watches: the root and every readable folder
    below it, ignored ones included (watchdog knows nothing of our rules), symlinks not
    followed."""
    count = 1
    for parent, dirnames, _ in os.walk(vault):
        dirnames[:] = [
            d
            for d in dirnames
            if not os.path.islink(full := os.path.join(parent, d))
            # inotify_add_watch needs read access; watchdog passes over EACCES quietly
            and os.access(full, os.R_OK)
        ]
        count += len(dirnames)
    return count


def inotify_limit(name: str) -> int | None:
    """/proc/sys/fs/inotify/<name> (max_user_watches, max_user_instances), if readable."""
    try:
        return int(Path(f"/proc/sys/fs/inotify/{name}").read_text())
    except (OSError, ValueError):
        return None
