"""The Watcher: a watchdog observer whose events feed the Coalescer.

A file event marks its path dirty; a folder event, or anything the observer may have
lost (an inotify queue overflow), asks for a full reconcile instead: stat-first scans
are cheap, and they catch what per-file events cannot (a folder moved out of the
vault sends one event).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import watchdog.events
from watchdog.events import (
    FileClosedNoWriteEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ccc_watch.daemon.audit import inotify_watches
from ccc_watch.daemon.coalescer import Coalescer
from ccc_watch.errors import InvalidPathError
from ccc_watch.log.safe import shown
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.paths import vault_key
from ccc_watch.vault.walk import NOT_UTF8, is_utf8, log_skip

OVERFLOW_LOGGER = "watchdog.observers.inotify_c"


# The events the daemon acts on. Asking the kernel for these alone matters: by default
# watchdog subscribes to opens and read-only closes too, so every file the daemon (or
# a backup tool, or Obsidian's search) reads queues two events nobody uses. Reading
# thousands of notes in a reconcile then overflowed the queue, and each overflow asked
# for the next reconcile: a loop that never went quiet.
_UNUSED = (FileOpenedEvent, FileClosedNoWriteEvent)
# Every kind of event watchdog has (created, modified, attrib, closed, deleted, moved;
# files and folders) but those two: a kind a later watchdog adds is kept, not dropped.
EVENTS: list[type[FileSystemEvent]] = [
    cls
    for cls in vars(watchdog.events).values()
    if isinstance(cls, type)
    and issubclass(cls, FileSystemEvent)
    and getattr(cls, "event_type", None)
    and cls not in (FileSystemMovedEvent, *_UNUSED)
]

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
        self.coalescer.events[event.event_type] += 1
        src = self.key(event.src_path)
        dest = self.key(event.dest_path) if isinstance(event, FileSystemMovedEvent) else None
        for key in (src, dest):
            if key is not None and key in self.rules.rule_files:
                self.coalescer.rescan(f"{shown(key)} changed", expected=True, rules_changed=True)
                return
        if event.is_directory:
            if event.event_type != "modified":  # created, deleted, moved: the subtree
                self.coalescer.rescan(
                    f"folder {event.event_type}: {shown(src or dest)}", expected=True
                )
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
        observer.schedule(self.handler, str(self.vault), recursive=True, event_filter=EVENTS)
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
