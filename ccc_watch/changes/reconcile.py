"""Reconcile: compare a walk of the vault with the store and turn the differences into
the same upserts, deletes and moves every other source of change uses.

Stat first (size, mtime_ns, ctime_ns, inode); a file is read and hashed only when one
of them moved, or when its mtime is not older than the previous scan's start (git's
"racy" rule: a write in the same clock tick as the last scan looks unchanged). Every
file is read when the store was indexed under another policy (its fingerprint in the
store's meta): a changed default level or a new release's privacy rules apply to
notes whose files did not change. A deleted record and a new file with the same
blake3 are one move, so the note keeps its id. Everything found is also reported as
drift, and so is every note whose level is unsure.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from ccc_watch.index.indexer import Indexer
from ccc_watch.index.policy import IndexPolicy, key_source
from ccc_watch.index.pool import chunks, indexing
from ccc_watch.log.applied import applied_line
from ccc_watch.log.drift import Drift, DriftKind, conflict_original
from ccc_watch.log.progress import Progress
from ccc_watch.log.safe import shown
from ccc_watch.store import Delete, Move, Operation, Record, Store, Upsert, open_store
from ccc_watch.store.store import SCRUB_DUE
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.walk import FileStat, VaultFile, VaultUnreadableError, icloud_evicted, walk

if TYPE_CHECKING:
    from ccc_watch.config import Config

_KEPT = ("id", "blake3", "classification", *FileStat._fields)
POLICY_META = "index_policy"  # the store's meta key for the fingerprint of its policy


@dataclass
class ReconcileResult:
    """What a reconcile found and applied."""

    seen: int = 0
    hashed: int = 0
    changes: int = 0
    drift: list[Drift] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    symlinks: dict[str, set[str]] = field(default_factory=dict)  # target key -> links
    deferred: list[tuple[str, str]] = field(default_factory=list)  # (key, path) mid-write
    by_op: Counter[str] = field(default_factory=Counter)  # changes applied, by operation
    # Notes whose old text may still be in the store's files: they became private (or
    # were re-indexed under a new policy, or appeared private as others vanished).
    privatized: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _stat_moved(rec: Record, f: VaultFile) -> bool:
    return FileStat.of_record(rec) != f.stat


def reconcile(
    vault: Path,
    store: Store,
    indexer: Indexer,
    rules: IgnoreRules,
    *,
    offline: bool,
    previous_scan_ns: int | None = None,
    batch_size: int = 1000,
    expected: bool = False,
    still_the_vault: Callable[[], bool] | None = None,
    settle_ns: int = 0,
    progress: Callable[[], None] | None = None,
) -> ReconcileResult:
    """Bring the store in line with the files; `offline` names the drift kinds
    (changes made while no daemon ran) rather than missed events. `expected`: the scan
    follows an event that asked for it (a folder moved in), so what it finds is no
    drift: it is logged at DEBUG and not returned. `still_the_vault` is asked before
    anything is written: False (the vault folder was replaced during the walk) raises
    VaultUnreadableError and writes nothing. `settle_ns` (the daemon's settle window):
    a file that changed more recently may be in mid-write, so it is not stored but
    returned in `deferred` for the events to settle. `progress` is called between
    batches (the daemon pings systemd's watchdog from it)."""
    started = time.perf_counter()
    scan_started_ns = time.time_ns()
    result = ReconcileResult()
    report = walk(vault, rules)
    result.skipped = report.skipped
    files = {f.key: f for f in report.files}
    result.seen = len(files)
    for f in report.files:
        if f.target is not None:
            result.symlinks.setdefault(f.target, set()).add(f.key)
    with store.snapshot() as snap:
        # Only what the comparison needs: a vault's bodies would not fit a small daemon.
        known = {r["path"]: {k: r.get(k) for k in _KEPT} for r in snap.records(_KEPT)}
    policy = indexer.policy
    new_policy = store.meta.get(POLICY_META) != policy.fingerprint()

    def kind(offline_kind: DriftKind) -> DriftKind:
        return offline_kind if offline else "missed-event"

    ops: list[Operation] = []
    drift: list[Drift] = []
    unsure: list[Drift] = []
    new_records: list[Record] = []
    todo: list[tuple[str, str, str | None]] = []
    deferred: dict[str, VaultFile] = {}
    held: dict[str, Record] = {}  # the records of deferred files
    for key, f in sorted(files.items()):
        rec = known.get(key)
        racy = previous_scan_ns is not None and f.stat.mtime_ns >= previous_scan_ns
        if racy or new_policy or rec is None or _stat_moved(rec, f) or not rec.get("blake3"):
            todo.append((key, f.location, None if rec is None else rec["id"]))
    result.hashed = len(todo)
    # Many changed files (a branch switch) are parsed on every core, as rebuild does.
    with (
        indexing(indexer.vault, indexer.vault_id, indexer.policy, len(todo), None) as many,
        Progress(len(todo), "scan") as bar,  # a terminal's, for `ccc-watch scan`
    ):
        for batch, results in zip(
            chunks(todo, batch_size), many(chunks(todo, batch_size)), strict=True
        ):
            bar.advance(len(batch))
            if progress is not None:
                progress()
            for (key, _, _), res in zip(batch, results, strict=True):
                rec = known.get(key)
                if res.record is None:  # vanished since the walk: the delete pass sees it
                    continue
                ctime = res.record.get("ctime_ns")
                if settle_ns and isinstance(ctime, int) and time.time_ns() - ctime < settle_ns:
                    result.deferred.append((key, files[key].location))
                    own = known.pop(key, None)  # neither changed nor gone: left to the events
                    if own is not None:
                        held[key] = own
                    deferred[key] = files.pop(key)
                    continue
                if res.unsure is not None:  # a finding about the note, whatever the scan
                    unsure.append(Drift("classification-unsure", key, res.unsure))
                if rec is None:
                    new_records.append(res.record)
                    continue
                level = res.record.get("classification")
                if policy.became_private(rec.get("classification"), level) or (
                    new_policy and level in policy.private_classifications
                ):
                    result.privatized.append(key)
                if res.record.get("blake3") != rec.get("blake3"):
                    if _stat_moved(rec, files[key]):
                        drift.append(Drift(kind("modified-offline"), key, "content changed"))
                    else:  # same size, times and inode: only the racy re-hash saw it
                        drift.append(
                            Drift("checksum-mismatch", key, "content changed, stat did not")
                        )
                ops.append(Upsert(res.record, cause="reconcile"))

    unreadable = [u.rstrip("/") + "/" for u in report.unreadable]
    gone = {
        path: rec
        for path, rec in known.items()
        if path not in files and not any(path.startswith(u) for u in unreadable)
    }
    for path in [p for p in gone if icloud_evicted(vault, p)]:
        del gone[path]
        logger.debug("reconcile: {} is evicted to iCloud: its record is kept", shown(path))
    inodes: dict[object, str] = {
        f.stat.inode: key for key, f in itertools.chain(files.items(), deferred.items())
    }
    for was, now in _renamed_lately(gone, deferred, rules):
        # A rename sets the file's ctime, so a note renamed within the settle window is
        # deferred; its old record is moved now, not deleted, so the note keeps its id.
        del gone[was]
        occupant = held.get(now)
        if occupant is not None and inodes.get(occupant.get("inode"), now) != now:
            # The record there belongs to a file that was renamed too, and lately (a
            # swap, or a chain whose events may still be on their way): moving onto it
            # would lose that note's id. Both are left to the events, which follow the
            # renames in order (the deferred files are read again once settled).
            continue
        ops.append(Move(was, now, cause="reconcile"))
        drift.append(Drift(kind("created-offline"), now, f"moved from {was}"))
    movable = {p: r for p, r in gone.items() if not rules.is_ignored(p)}
    paired = pair_moves(movable, new_records, ops, cause="reconcile", policy=policy)
    private = policy.private_classifications
    for new, old in paired:
        gone.pop(old or "", None)
        detail = f"moved from {old}" if old else "new file"
        drift.append(Drift(kind("created-offline"), new["path"], detail))
        shadowed = conflict_original(new["path"])
        if shadowed is not None:
            drift.append(Drift("sync-conflict", new["path"], f"conflict copy of {shadowed}"))
    if gone:  # a note renamed and made private while nobody watched: a delete and a new file
        result.privatized += [
            r["path"] for r, old in paired if old is None and r.get("classification") in private
        ]
    for path in sorted(gone):
        ops.append(Delete(path, cause="reconcile"))
        if rules.is_ignored(path):
            drift.append(Drift("orphan-record", path, "now excluded by the ignore rules"))
        else:
            drift.append(Drift(kind("deleted-offline"), path, "file is gone"))
    for path in report.unreadable:
        logger.warning("reconcile: folder {} is unreadable: its records are kept", shown(path))

    if still_the_vault is not None and not still_the_vault():
        raise VaultUnreadableError(f"the vault folder {vault} was replaced during a scan")
    if result.privatized:  # first: a crash before the scrub must not forget it
        store.set_meta(SCRUB_DUE, True)
    for chunk in chunks(ops, batch_size):
        if progress is not None:
            progress()
        applied = store.apply(chunk)
        if applied:
            logger.info(applied_line(applied))
        for change in applied:
            result.changes += 1
            result.by_op[change.op] += 1
    store.set_meta("last_scan_started_ns", scan_started_ns)
    if new_policy:
        store.set_meta(POLICY_META, policy.fingerprint())
    for d in drift:
        logger.log("DEBUG" if expected else "WARNING", d.line())
    for d in unsure:
        logger.warning(d.line())
    result.drift = ([] if expected else drift) + unsure
    result.seconds = time.perf_counter() - started
    return result


def scan(cfg: Config) -> ReconcileResult:
    """`ccc-watch scan`: reconcile the store with the vault once, as the daemon does at
    start-up (offline drift kinds), then bring the mirror up to date with the store;
    when a note became private, scrub the store and rebuild the mirror instead."""
    vault = cfg.require_vault().resolve()
    data_dir = cfg.resolved_data_dir()
    policy = IndexPolicy.from_settings(cfg)
    with open_store(data_dir, backend=cfg.backend, vault_root=vault) as store:
        vault_id = str(store.meta["vault_id"])
        # Under "seal" with no key: nothing is read or written (exit 78).
        keyed = policy.keyed_for(vault_id, key_source(cfg))
        result = reconcile(
            vault,
            store,
            Indexer(vault, vault_id, keyed),
            IgnoreRules.from_settings(vault, cfg),
            offline=True,
            previous_scan_ns=store.meta.get("last_scan_started_ns"),
            batch_size=cfg.batch_size,
        )
        # Imported here: the daemon imports this module and must not load DuckDB.
        from ccc_watch.mirror.mirror import Mirror

        mirror = Mirror(data_dir, policy)
        if not store.meta.get(SCRUB_DUE):
            mirror.flush(store)
        elif not store.scrub():
            logger.warning(
                "{} is being read by another process: the old text of notes made private "
                "stays in its WAL until the next scan, or the daemon, scrubs it",
                store.path,
            )
            mirror.flush(store)
        else:  # old text of notes made private: out of both databases' files
            mirror.rebuild(store)
            store.set_meta(SCRUB_DUE, False)
    return result


def _renamed_lately(
    gone: dict[str, Record], deferred: dict[str, VaultFile], rules: IgnoreRules
) -> list[tuple[str, str]]:
    """(old path, new path) for each record whose file is gone while a deferred file
    has its inode, size and mtime: the same file under a new name."""
    by_stat: dict[tuple[object, ...], str] = {
        (f.stat.inode, f.stat.size, f.stat.mtime_ns): k for k, f in deferred.items()
    }
    found = []
    for old, rec in sorted(gone.items()):
        if rules.is_ignored(old):
            continue
        new = by_stat.pop((rec.get("inode"), rec.get("size"), rec.get("mtime_ns")), None)
        if new is not None:
            found.append((old, new))
    return found


def pair_moves(
    gone: dict[str, Record],
    fresh: list[Record],
    ops: list[Operation],
    cause: str,
    policy: IndexPolicy,
) -> list[tuple[Record, str | None]]:
    """Append the operations for new records to ops: a record whose content equals one
    that disappeared (same blake3) becomes a Move plus an Upsert keeping that note's id
    (its sealed text sealed anew for that id, by the policy it was indexed under), any
    other an Upsert. Returns (new record, path it moved from or None) for each. Used by
    reconcile and by the daemon for deletes and creates seen in one window."""
    by_hash: dict[str, list[str]] = {}
    for path, rec in gone.items():
        if rec.get("blake3"):
            by_hash.setdefault(str(rec["blake3"]), []).append(path)
    paired: list[tuple[Record, str | None]] = []
    for new in fresh:
        candidates = by_hash.get(str(new.get("blake3")), [])
        old = candidates.pop(0) if candidates else None
        if old is not None:
            ops.append(Move(old, new["path"], cause=cause))
            ops.append(Upsert(policy.reidentified(new, gone[old]["id"]), cause=cause))
        else:
            ops.append(Upsert(new, cause=cause))
        paired.append((new, old))
    return paired
