"""Settled file events become store operations: the event-side counterpart of reconcile.

The watcher hands over moves and settled paths; each path is indexed under the walk's
policy (what a scan would leave out, an event leaves out too), notes reached through a
file symlink change with their target, a delete and a create of the same content in
one settle window are a move, a record that a move brought to a path already gone
waits there a moment for the move that takes it on, and a file that may still be in
mid-write is handed back to be read again once it has been quiet. A note whose level
is unsure is a drift finding; one that became private is named, so that its old text
can be scrubbed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from ccc_watch.changes.reconcile import pair_moves
from ccc_watch.index.indexer import Indexer, IndexResult
from ccc_watch.log.drift import Drift, conflict_original
from ccc_watch.log.safe import shown
from ccc_watch.store import Delete, Move, Operation, Record, Store, Upsert
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.paths import vault_key
from ccc_watch.vault.walk import icloud_evicted, left_out, log_skip

# The least time a record moved to a path found gone waits there (EventTranslator._hold).
MOVED_HOLD = 2.0


@dataclass
class EventOps:
    """What one batch of settled events asks of the store."""

    ops: list[Operation] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)  # (key, path) to read again
    drift: list[Drift] = field(default_factory=list)
    privatized: list[str] = field(default_factory=list)  # notes whose old text must go


class EventTranslator:
    """Turns the watcher's batches into operations; remembers which files link to which
    (file symlinks) and which notes were read empty once (to confirm before storing)."""

    def __init__(self, vault: Path, indexer: Indexer, rules: IgnoreRules, settle: float) -> None:
        self.vault = vault
        self.indexer = indexer
        self.rules = rules
        self.settle = settle
        self.symlinks: dict[str, set[str]] = {}  # target key -> file symlinks to it
        self.confirm_empty: set[str] = set()  # notes read empty once, to read again
        # key -> when a move brought a record there (monotonic): see _hold()
        self.arrivals: dict[str, float] = {}

    def operations(
        self,
        store: Store,
        moves: list[tuple[str, str]],
        ready: list[tuple[str, str]],
        dirty: Callable[[str], bool],
    ) -> EventOps:
        """The operations for moves (old key, new key) and settled (key, path) pairs;
        dirty(key) says whether an event touched key again since it was handed over."""
        out = EventOps(ops=[Move(old, new, cause="event") for old, new in moves])
        # Notes that link to a changed file through a file symlink change with it.
        keys = {k for k, _ in ready}
        linked = {link for k in keys for link in self.symlinks.get(k, ())} - keys
        ready = ready + [(link, str(self.vault / link)) for link in sorted(linked)]
        with store.snapshot() as snap:
            # The records as they will be once the moves above are applied, in order:
            # a chain (a -> b -> c) or a swap in one batch keeps every note's id.
            view: dict[str, Record | None] = {}
            for old, new in moves:
                was = view[old] if old in view else snap.get(old)
                if was is not None:  # else the Move does nothing (a scan got there first)
                    view[old] = None
                    view[new] = dict(was, path=new)
            now, hold = time.monotonic(), self._hold()
            self.arrivals = {k: t for k, t in self.arrivals.items() if now - t < hold}
            self.arrivals.update((k, now) for k, rec in view.items() if rec is not None)
            known = {k: view[k] if k in view else snap.get(k) for k, _ in ready}
        gone: dict[str, Record] = {}
        fresh: list[Record] = []
        fresh_private: list[str] = []
        policy = self.indexer.policy
        for key, real in ready:
            previous = known.get(key)
            result = self._index(key, real, previous)
            record = result.record
            if record is not None and self._unsettled(key, record, previous, dirty):
                out.deferred.append((key, real))  # again, once it has been quiet
                continue
            if result.unsure is not None:
                out.drift.append(Drift("classification-unsure", key, result.unsure))
            if record is None:
                if previous is not None and not icloud_evicted(self.vault, key):
                    gone[key] = previous
            elif previous is None:
                fresh.append(record)
            else:
                out.ops.append(Upsert(record, cause="event"))
                before = previous.get("classification")
                if policy.became_private(before, record.get("classification")):
                    out.privatized.append(key)
        # A delete and a create of the same content in one settle window is a move.
        for rec, source in pair_moves(gone, fresh, out.ops, cause="event", policy=policy):
            gone.pop(source or "", None)
            shadowed = conflict_original(rec["path"])
            if shadowed is not None:
                out.drift.append(
                    Drift("sync-conflict", rec["path"], f"conflict copy of {shadowed}")
                )
            if source is None and rec.get("classification") in policy.private_classifications:
                fresh_private.append(rec["path"])
        if gone:  # perhaps one note, renamed and made private: a delete and a new file
            out.privatized += fresh_private
        reals = dict(ready)
        for key in gone:
            if key in self.arrivals:  # moved here a moment ago, and gone already
                out.deferred.append((key, reals[key]))
            else:
                out.ops.append(Delete(key, cause="event"))
        held = {k for k, _ in out.deferred}
        for key, _ in ready:
            if key not in held:
                self.arrivals.pop(key, None)
        return out

    def _hold(self) -> float:
        """How long a record that a move brought to a path now gone waits there for a
        move to take it on, read again every settle window meanwhile. A chain of moves
        (mv a tmp; mv b a; mv tmp b) can reach the daemon in several batches when the
        watcher's thread falls behind the settle window (a loaded machine): deleted at
        once, tmp's record would be lost, and b read as a new note with a new id."""
        return max(MOVED_HOLD, 2 * self.settle)

    def _unsettled(
        self, key: str, record: Record, previous: Record | None, dirty: Callable[[str], bool]
    ) -> bool:
        """Whether what was read may be a file in mid-write (A2): an event came during
        the read; or the file changed (ctime: the kernel's, no tool sets it) less than a
        settle window ago; or a note just turned empty, which is confirmed once more a
        settle window later: a stat racing a truncation can see the new size with the
        old ctime, before the truncation's event is even queued."""
        if dirty(key):
            logger.debug("{}: an event came during the read: read again once settled", shown(key))
            return True
        ctime = record.get("ctime_ns")
        age = time.time_ns() - ctime if isinstance(ctime, int) else None
        if age is not None and 0 <= age < self.settle * 1e9:
            logger.debug(
                "{}: changed {:.0f} ms ago: read again once settled", shown(key), age / 1e6
            )
            return True
        emptied = record.get("size") == 0 and previous is not None and previous.get("size")
        if emptied and key not in self.confirm_empty:
            self.confirm_empty.add(key)
            logger.debug("{}: turned empty: read again once settled to confirm", shown(key))
            return True
        self.confirm_empty.discard(key)
        return False

    def _index(self, key: str, real: str, previous: Record | None) -> IndexResult:
        """The record for one event path under the walk's policy; none when the file is
        gone or left out (a folder symlink, a symlink leaving the vault, ...)."""
        try:
            reason = left_out(self.vault, self.rules, real)
            if reason is not None:
                log_skip(os.fspath(self.vault), key, reason)
                return IndexResult(None)
            if os.path.islink(real):
                target = os.path.relpath(os.path.realpath(real), os.path.realpath(self.vault))
                self.symlinks.setdefault(vault_key(target), set()).add(key)
            prev_id = None if previous is None else previous["id"]
            return self.indexer.index(key, Path(real), prev_id)
        except Exception:  # a bug must not stop the daemon: keep what the store has
            logger.opt(exception=True).error("cannot index {}: record kept as it was", shown(key))
            return IndexResult(previous)
