"""`ccc-watch audit verify`: walk the audit chain of the store's changelog and of the
mirror's `events`, and name the first entry that does not match.

An entry is checked against the one before it: its hash must be blake3 over that
entry's hash and its own content (store/chain.py), its key the seq it holds, and the
seqs must follow on from the pruning anchor without a gap. The store's meta repeats the
newest entry (chain_tip), so entries cut off the end show as well. The mirror's rows
are walked the same way from the same anchor and must carry the store's hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ccc_watch.store import codec
from ccc_watch.store.chain import ANCHOR, TIP, anchor_of, link

if TYPE_CHECKING:
    import duckdb

    from ccc_watch.store.store import Snapshot

# The fields an entry's hash covers, in the mirror's column names.
FIELDS = ("seq", "op", "path", "prev_path", "id", "blake3_before", "blake3_after", "cause", "ts")


@dataclass
class ChainReport:
    """The outcome of walking one chain."""

    where: str  # "store" or "mirror"
    checked: int = 0  # entries that matched
    first: int | None = None  # seq of the oldest entry walked
    last: int | None = None  # seq of the newest entry walked
    head: str | None = None  # hash of the newest entry that matched
    broken_at: int | None = None  # seq of the first entry that does not match
    reason: str | None = None

    @property
    def intact(self) -> bool:
        """Whether every entry matched."""
        return self.reason is None

    def line(self) -> str:
        """One line for a terminal."""
        if self.intact:
            span = "no entries" if self.first is None else f"seq {self.first}..{self.last}"
            head = "" if self.head is None else f", head {self.head[:16]}"
            return f"{self.where}: intact: {self.checked} entries ({span}){head}"
        return f"{self.where}: broken at seq {self.broken_at}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for --json."""
        return asdict(self) | {"intact": self.intact}


def _walk(
    where: str, entries: Iterable[tuple[int, dict[str, Any] | None]], after: int, prev: str
) -> ChainReport:
    """Walk (key, entry or None when unreadable) from the anchor (after, prev)."""
    report = ChainReport(where)
    expected = after + 1
    for key, entry in entries:
        if report.first is None:
            report.first = key
        report.last = key
        if key < expected:
            return _broken(report, key, f"seq {key} appears again (entries duplicated)")
        if key != expected:
            span = f"{expected}" if key == expected + 1 else f"{expected}..{key - 1}"
            return _broken(report, expected, f"entries {span} are missing (deleted)")
        if entry is None:
            return _broken(report, key, "the entry cannot be read (damaged or edited)")
        if entry.get("seq") != key:
            return _broken(
                report, key, f"the entry holds seq {entry.get('seq')} (entries reordered)"
            )
        if entry.get("hash") is None:
            return _broken(
                report, key, "the entry has no chain hash (a store of an older version: open "
                "it once with `ccc-watch run` or `rebuild` to chain it)"
            )  # fmt: skip
        if link(prev, entry) != entry["hash"]:
            return _broken(
                report, key, "the entry does not match its chain hash (edited, or an entry "
                "before it replaced)"
            )  # fmt: skip
        prev = entry["hash"]
        report.checked += 1
        report.head = prev
        expected += 1
    return report


def _broken(report: ChainReport, seq: int, reason: str) -> ChainReport:
    report.broken_at, report.reason = seq, reason
    return report


def _store_entries(snap: Snapshot, after: int) -> Iterator[tuple[int, dict[str, Any] | None]]:
    while batch := snap.raw_changes(after, 10_000):
        for seq, blob in batch:
            try:
                value = codec.decode(blob)
            except ValueError:
                value = None
            yield seq, value
            after = seq


def verify_store(snap: Snapshot) -> ChainReport:
    """Walk the store's changelog from the pruning anchor to the chain's tip."""
    after, prev = anchor_of({ANCHOR: snap.meta_value(ANCHOR)})
    report = _walk("store", _store_entries(snap, after), after, prev)
    tip = snap.meta_value(TIP)
    if report.intact and isinstance(tip, dict):
        newest = report.last if report.last is not None else after
        if tip.get("seq") != newest or (report.head is not None and tip.get("hash") != report.head):
            return _broken(
                report,
                newest + 1,
                f"the newest entry is seq {newest}, but the chain's tip says seq "
                f"{tip.get('seq')} (entries cut off the end)",
            )
    return report


def verify_mirror(con: duckdb.DuckDBPyConnection, snap: Snapshot) -> ChainReport:
    """Walk the mirror's `events` from the store's pruning anchor (rows at or before it
    are pruned in the store and wait for the next flush), and check each row's hash
    against the store's entry of the same seq."""
    after, prev = anchor_of({ANCHOR: snap.meta_value(ANCHOR)})
    columns = ", ".join((*FIELDS, "hash"))
    rows = con.execute(
        f"SELECT {columns} FROM events WHERE seq > ? ORDER BY seq, rowid", [after]
    ).fetchall()
    entries = [(int(r[0]), dict(zip((*FIELDS, "hash"), r, strict=True))) for r in rows]
    report = _walk("mirror", iter(entries), after, prev)
    if not report.intact:
        return report
    state = con.execute("SELECT watermark FROM mirror_state").fetchall()
    newest = report.last if report.last is not None else after
    if state and int(state[0][0]) > newest:
        return _broken(
            report,
            newest + 1,
            f"the newest row is seq {newest}, but the mirror holds the store's changes up "
            f"to seq {state[0][0]} (rows cut off the end)",
        )
    stored = {seq: blob for seq, blob in snap.raw_changes(after, len(entries))} if entries else {}
    for seq, entry in entries:
        theirs = stored.get(seq)
        if theirs is not None and codec.decode(theirs).get("hash") != entry["hash"]:
            return _broken(report, seq, "the row's hash is not the store's (edited)")
    return report
