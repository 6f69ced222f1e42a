"""Questions the history answers: one note's operations (renames followed), which
files existed with which blake3 at a time, and where to prune for a retention setting.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ccc_watch.errors import CccWatchError, UsageError
from ccc_watch.store.chain import ANCHOR
from ccc_watch.store.store import Change, replay

if TYPE_CHECKING:
    from ccc_watch.store.store import Snapshot

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: float | None = None) -> float:
    """A moment given as ISO 8601 (`2026-11-30`, `2026-11-30T09:00`, with or without
    a UTC offset; without one, local time) or as an age (`90m`, `36h`, `7d`, `2w`
    ago): seconds since the epoch. UsageError naming the text otherwise."""
    value = text.strip()
    m = _AGO.match(value)
    if m:
        return (time.time() if now is None else now) - float(m[1]) * _UNIT[m[2]]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise UsageError(
            f"{text!r} is no time: give ISO 8601 (2026-11-30, 2026-11-30T09:00, "
            "2026-11-30T09:00+01:00) or an age (90m, 36h, 7d, 2w)"
        ) from None


def _entries_newest_first(snap: Snapshot) -> list[Change]:
    return list(reversed(snap.changes_after(0)))


def path_history(snap: Snapshot, path: str, since: float | None = None) -> list[Change]:
    """The operations on the file now (or last) at path, oldest first: entries at path,
    and, before a move to it, those at the name it had (followed back through every
    rename). Entries before since are left out; prune entries never appear."""
    names = {path}
    found: list[Change] = []
    for change in _entries_newest_first(snap):
        if change.op == "prune" or change.path not in names:
            continue
        if since is not None and change.ts < since:
            break
        found.append(change)
        if change.op == "move" and change.prev_path:
            names.add(change.prev_path)
    return list(reversed(found))


def state_as_of(snap: Snapshot, when: float) -> dict[str, dict[str, Any]]:
    """Each path that existed at `when` with its id and blake3, from the history: the
    checkpoint the last pruning left, then every entry up to that time. CccWatchError
    when the history kept does not reach back to `when`."""
    anchor = snap.meta_value(ANCHOR)
    if isinstance(anchor, dict) and when < float(anchor.get("ts", 0)):
        kept = datetime.fromtimestamp(float(anchor["ts"])).astimezone().isoformat("T", "seconds")
        raise CccWatchError(
            f"the history before {kept} was pruned (history_keep_days / "
            "history_keep_entries): nothing earlier can be told"
        )
    state = dict(snap.checkpoint())
    after = 0
    while batch := snap.changes_after(after, 10_000):
        for change in batch:
            if change.ts > when:
                return state
            replay(state, vars(change))
        after = batch[-1].seq
    return state


def prune_point(snap: Snapshot, keep_days: int, keep_entries: int, now: float | None = None) -> int:
    """The newest seq a retention setting lets go (0: none): entries older than
    keep_days, and all but the newest keep_entries (0 turns either off)."""
    head = snap.head()
    through = 0
    if keep_entries:
        through = max(through, head - keep_entries)
    if keep_days:
        cutoff = (time.time() if now is None else now) - timedelta(days=keep_days).total_seconds()
        after = 0
        while batch := snap.changes_after(after, 10_000):
            older = [c.seq for c in batch if c.ts < cutoff]
            if older:
                through = max(through, older[-1])
            if len(older) < len(batch):
                break
            after = batch[-1].seq
    return through
