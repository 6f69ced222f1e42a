"""The change feed: the history's operations from a cursor on, and, following, each new
one as the daemon commits it (`ccc-watch events`, and the library's Index.events()).

A cursor is the sequence number of the last entry a consumer has seen, with that
entry's hash when it has one: `SEQ:HASH` (or `SEQ` alone, or 0 for the beginning).
Resuming from it yields every later operation once, in order, across a daemon restart
and a `rebuild` (both keep the history, hashes and all). When the history the cursor
points into is no longer there, the feed refuses rather than guess: ResyncNeeded, whose
message says to take a full listing (`ccc-watch dump`) and follow from the head. That
happens when
- the entries after the cursor were pruned (the cursor is older than the pruning
  anchor);
- the store holds a history that ends before the cursor, or whose entry at the cursor
  has another hash (a store restored from an older backup, or replaced by another).

Only upsert, delete and move are yielded; the audited "prune" entries move the cursor
on silently. Following costs no busy polling: a watchdog observer on the data folder
wakes the reader when the store's file changes (a commit, or a rebuild's swap), with a
slow poll beneath in case a notification is lost; a swapped store file is reopened, and
the cursor checked against it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccc_watch.errors import EXIT_RESYNC, CccWatchError, StoreMissingError
from ccc_watch.store import Change, Reopening, Store, open_store
from ccc_watch.store.chain import ANCHOR, anchor_of
from ccc_watch.store.store import Snapshot

OPS = ("upsert", "delete", "move")
PAGE = 1000  # entries read per snapshot
SAFETY_POLL = 2.0  # seconds between reads when no notification came


class ResyncNeeded(CccWatchError):
    """The cursor's place in the history is gone: resync from a full listing."""

    exit_code = EXIT_RESYNC


@dataclass(frozen=True)
class Cursor:
    """Where a consumer is: the last entry seen (its seq, and its hash when known)."""

    seq: int = 0
    hash: str | None = None

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """`SEQ` or `SEQ:HASH`; ValueError for anything else."""
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or (digest and not all(c in "0123456789abcdef" for c in digest)):
            raise ValueError(f"not a cursor (SEQ or SEQ:HASH): {text!r}")
        return cls(int(seq), digest or None)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}" if self.hash else str(self.seq)

    @classmethod
    def of(cls, change: Change) -> Cursor:
        """The cursor just after change."""
        return cls(change.seq, change.hash)


def as_event(change: Change) -> dict[str, Any]:
    """A change as the feed prints it: its fields, and the cursor to resume after it."""
    return {**vars(change), "cursor": str(Cursor.of(change))}


def check(snap: Snapshot, cursor: Cursor) -> None:
    """ResyncNeeded unless the history after cursor is all in this snapshot."""
    head = snap.head()
    anchor_seq, anchor_hash = anchor_of({ANCHOR: snap.meta_value(ANCHOR)})
    resync = "; take a full listing (`ccc-watch dump`) and follow from the head"
    if cursor.seq > head:
        raise ResyncNeeded(
            f"the store's history ends at seq {head}, before the cursor {cursor}: it is not "
            f"the history the cursor came from (a restored or replaced store){resync}"
        )
    if cursor.seq < anchor_seq:
        raise ResyncNeeded(
            f"the history through seq {anchor_seq} was pruned, and the cursor {cursor} is "
            f"older{resync}"
        )
    if cursor.hash is None or cursor.seq == 0:
        return
    if cursor.seq == anchor_seq:
        found: str | None = anchor_hash
    else:
        entry = snap.change(cursor.seq)
        found = None if entry is None else entry.hash
    if found is not None and found != cursor.hash:
        raise ResyncNeeded(
            f"the store's entry {cursor.seq} is not the one the cursor {cursor} saw (a "
            f"restored or replaced store){resync}"
        )


def cursor_at(snap: Snapshot, when: float) -> Cursor:
    """The cursor before the first entry at or after `when` (seconds since the epoch);
    ResyncNeeded when entries of that time or later were pruned (the last one pruned
    is no older than `when`)."""
    anchor = snap.meta_value(ANCHOR)
    anchor_seq, anchor_hash = anchor_of({ANCHOR: anchor})
    pruned_ts = anchor.get("ts") if isinstance(anchor, dict) else None
    if anchor_seq and (not isinstance(pruned_ts, (int, float)) or pruned_ts >= when):
        raise ResyncNeeded(
            f"the history since {time.ctime(when)} was pruned in part (through seq "
            f"{anchor_seq}); take a full listing (`ccc-watch dump`) and follow from the head"
        )
    last = Cursor(anchor_seq, anchor_hash if anchor_seq else None)
    while batch := snap.changes_after(last.seq, PAGE):
        for change in batch:
            if change.ts >= when:
                return last
            last = Cursor.of(change)
    return last


def entries(snap: Snapshot, cursor: Cursor) -> Iterator[tuple[Change, Cursor]]:
    """Each entry after cursor in this snapshot, with the cursor just after it."""
    while batch := snap.changes_after(cursor.seq, PAGE):
        for change in batch:
            cursor = Cursor.of(change)
            yield change, cursor


def changes(store: Store, since: Cursor) -> Iterator[Change]:
    """The operations after since, from one snapshot (ResyncNeeded as check())."""
    with store.snapshot() as snap:
        check(snap, since)
        for change, _ in entries(snap, since):
            if change.op in OPS:
                yield change


class _Wakeup:
    """An event set whenever something in the data folder changes (watchdog)."""

    def __init__(self, folder: Path) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        self.event = threading.Event()
        wake = self.event

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                wake.set()

        self._observer = Observer()
        self._observer.schedule(Handler(), str(folder), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def close(self) -> None:
        self._observer.stop()


def follow(
    data_dir: Path,
    backend: str,
    since: Cursor,
    *,
    stop: threading.Event | None = None,
    poll: float = SAFETY_POLL,
) -> Iterator[Change]:
    """Every operation after since, then each new one as it is committed, until stop is
    set (checked at least every `poll` seconds) or the consumer stops iterating. A store
    file swapped underneath (rebuild, restore) is reopened and the cursor checked against
    it; ResyncNeeded when it no longer fits (see the module docstring)."""
    files = Reopening(
        data_dir, backend, lambda: open_store(data_dir, backend=backend, readonly=True)
    )
    wake = _Wakeup(data_dir)
    cursor = since
    try:
        while stop is None or not stop.is_set():
            wake.event.clear()
            try:
                store: Store | None
                store, fresh = files.current()
            except StoreMissingError:
                store = None  # mid-swap, or not made yet: wait for it
            else:
                if fresh:  # the first open, or a file swapped in: is the cursor in it?
                    with store.snapshot() as snap:
                        check(snap, cursor)
            if store is not None:
                reached = cursor
                with store.snapshot() as snap:
                    for change, reached in entries(snap, cursor):  # noqa: B007 (read after)
                        if change.op in OPS:
                            yield change
                cursor = reached
            wake.event.wait(poll)
    finally:
        wake.close()
        files.close()
