"""`ccc-watch rebuild`: a complete new store from the files, swapped in atomically.

The new store is written beside the old one (in `<data_dir>/.rebuild-<pid>/`) through
the same Store.apply() upserts every other source of change uses, then renamed over
the old file. A crash or Ctrl-C before the rename leaves the previous index intact.
Ids of paths the old store knew are kept, and the vault id is carried over, so a
rebuild of an unchanged vault reproduces every record apart from `indexed_at`.

The history goes on: the new store starts with the old one's changelog (entries as
stored, chain hashes and all, its pruning anchor and checkpoint), and the rebuild adds
entries (cause "rebuild") only where a file differs from what that history last said
of its path (another blake3 or id, a file new to it, or one gone), not one per file.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import blake3
from loguru import logger

from ccc_watch.changes.reconcile import POLICY_META
from ccc_watch.errors import (
    CccWatchError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreInternalError,
    StoreLockedError,
    StoreMissingError,
    StoreNeedsRepairError,
    StorePermissionError,
)
from ccc_watch.index.indexer import IndexResult
from ccc_watch.index.policy import IndexPolicy, KeySource, key_source
from ccc_watch.index.pool import (
    PARALLEL_MIN_FILES,
    Task,
    chunks,
    collecting_less,
    packed_indexing,
    worker_policy,
)
from ccc_watch.index.pool import started as started_workers
from ccc_watch.log.drift import Drift
from ccc_watch.log.progress import Progress
from ccc_watch.log.progress import enabled as progress_enabled
from ccc_watch.procs import owner_pid, pid_alive, replace_durably, running_pid, secure_dir
from ccc_watch.store import (
    BACKENDS,
    Change,
    Forget,
    History,
    Record,
    Store,
    Upsert,
    codec,
    open_readonly,
    open_store,
    store_file,
)
from ccc_watch.store.backend import damage_note
from ccc_watch.store.store import comparable
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.walk import walking

if TYPE_CHECKING:
    from ccc_watch.config import Config
    from ccc_watch.mirror.rows import Rows

# The new store's page cache: it is written in key order and hardly read, so the default
# (64 MiB) mostly holds memory. With this and the mirror load's smaller DuckDB cache, the
# whole command's peak at 100,000 notes went from 637 to 533 MB (bench/rebuild_bench.py).
_WRITE_CACHE_BYTES = 16 << 20
# The old store's page cache, in the main process (one scan of its ids) and in each
# worker (a lookup per file, in walk order): neither reads a page twice that a small
# cache would not hold. With the default, each of these processes filled 64 MiB: a
# rebuild over an old store at 100,000 notes peaked at 552 MB instead of 533.
_READ_CACHE_BYTES = 4 << 20

# Sends a request to the daemon with a pid and returns its answer: daemon.control.ask.
AskDaemon = Callable[[Path, int, dict[str, Any]], dict[str, Any]]


@dataclass
class RebuildReport:
    """What a rebuild found and did."""

    vault: str
    store: str
    dry_run: bool
    seen: int = 0
    indexed: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (for --json)."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: object) -> RebuildReport:
        """The report in plain data (a daemon's answer), checked field by field:
        ValueError naming the first field that is missing or of the wrong type. Keys it
        does not know are left out (a newer daemon may report more)."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            if not _REPORT_FIELDS[f.name](value):
                raise ValueError(f"{f.name} is missing or of the wrong type")
            values[f.name] = value
        return cls(**values)


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _items(value: object) -> bool:
    """A list of {"path": str, "reason": str}."""
    return isinstance(value, list) and all(
        isinstance(item, dict)
        and item.keys() == {"path", "reason"}
        and all(isinstance(v, str) for v in item.values())
        for item in value
    )


_REPORT_FIELDS: dict[str, Callable[[object], bool]] = {
    "vault": lambda v: isinstance(v, str),
    "store": lambda v: isinstance(v, str),
    "dry_run": lambda v: isinstance(v, bool),
    "seconds": lambda v: type(v) in (int, float),
    "failed": _items,
    "warnings": _items,
    "skipped": _items,
    **dict.fromkeys(("seen", "indexed", "added", "changed", "unchanged", "removed"), _count),
}


def _fingerprint(record: Record) -> bytes:
    """A digest of a record as the store compares it (no volatile fields, sealed text by
    its key and digest), to compare old and new cheaply."""
    return blake3.blake3(codec.canonical(comparable(record))).digest()


@dataclass
class _Previous:
    """What a rebuild keeps of the old store: the vault id and, per path, (id,
    fingerprint); and why the old store could not be read whole, if it could not."""

    vault_id: str | None = None
    # path -> (id, fingerprint); no fingerprint when the workers compare each new
    # record with the old store's (compared_in), which spreads that work over them
    known: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    damage: str | None = None
    compared_in: Path | None = None  # the data dir of the old store the workers read


def _previous(data_dir: Path, backend: str, source: Store | None) -> _Previous:
    """The old store's ids: from source when given, else from the store file. A store
    that is damaged gives what can still be read of it (recreating it is what rebuild
    is for); one that cannot be read for want of space or permission is an error."""
    if source is not None:
        return _salvaged(source)
    try:
        try:
            store = open_store(
                data_dir, backend=backend, readonly=True, cache_bytes=_READ_CACHE_BYTES
            )
        except StoreMissingError:
            return _Previous()
        except StoreNeedsRepairError:
            # Not closed cleanly (a killed writer): a writable open repairs it first.
            open_store(data_dir, backend=backend).close()
            store = open_store(
                data_dir, backend=backend, readonly=True, cache_bytes=_READ_CACHE_BYTES
            )
    except (StoreLockedError, StorePermissionError, StoreFullError):
        raise
    except StoreError as e:  # damaged, or of another schema: nothing of it is kept
        return _Previous(damage=e.detail if isinstance(e, StoreCorruptError) else str(e))
    with store:
        try:
            with store.snapshot() as snap:
                ids: dict[str, tuple[str, bytes | None]] = {
                    r["path"]: (str(r["id"]), None) for r in snap.records(fields=())
                }
            vault_id = store.meta.get("vault_id")
        except StoreError:  # a record that does not decode: read what can be read
            return _salvaged(store)
    return _Previous(str(vault_id) if vault_id else None, ids, compared_in=data_dir)


def _salvaged(store: Store) -> _Previous:
    records, lost = store.salvage()
    vault_id = store.meta.get("vault_id")
    return _Previous(
        str(vault_id) if vault_id else None,
        {r["path"]: (r["id"], _fingerprint(r)) for r in records},
        "some records could not be read" if lost else None,
    )


def _move_aside(data_dir: Path, backend: str, work_dir: Path) -> Path:
    """Move a damaged store (with SQLite's side files) into the rebuild's work folder:
    nothing opens it any more, and it goes when the work folder goes. It is not kept
    (it holds note text, and no file under the data dir may keep a note's text after
    the note turned private)."""
    old = store_file(data_dir, backend)
    secure_dir(work_dir)
    aside = work_dir / f"damaged-{old.name}"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(old.with_name(old.name + suffix), aside.with_name(aside.name + suffix))
    damage_note(old).unlink(missing_ok=True)
    return aside


class _Indexed(NamedTuple):
    """One file's record as a worker sends it: encoded there, with only what the main
    process reads of it (path, id, blake3) beside, and how it compares with the old
    store's: `same` when the worker compared it with the old store itself, else its
    fingerprint when the main process holds old ones to compare with. A tuple: one is
    made, pickled and unpickled per file."""

    record: Record  # path, id, blake3
    encoded: bytes
    same: bool | None
    fingerprint: bytes | None
    error: str | None
    warnings: list[str]
    unsure: str | None


@dataclass(frozen=True)
class _Part:
    """What a worker sends for a part of a batch: per file its record (None for a file
    gone since the walk) and, when a mirror is being built, the part's mirror rows."""

    files: list[_Indexed | None]
    rows: Rows | None


# The old store each worker compares with, opened once per process: (data dir, store).
_old_store: tuple[Path, Store | None] | None = None


def _old_snapshot(data_dir: Path, backend: str) -> contextlib.AbstractContextManager[Any]:
    """A snapshot of the old store in data_dir (opened read-only once per worker), or
    a null context giving None when it cannot be opened any more."""
    global _old_store
    if _old_store is None or _old_store[0] != data_dir:
        try:
            _old_store = (
                data_dir,
                open_store(data_dir, backend=backend, readonly=True, cache_bytes=_READ_CACHE_BYTES),
            )
        except StoreError as e:
            logger.warning("the old store cannot be read to compare with ({})", e)
            _old_store = (data_dir, None)
    store = _old_store[1]
    return contextlib.nullcontext() if store is None else store.snapshot()


def _let_go_of_old_store() -> None:
    """Close the old store a rebuild that indexed in this process compared with: the
    swap replaces its file, and a daemon must not keep it open."""
    global _old_store
    if _old_store is not None and _old_store[1] is not None:
        _old_store[1].close()
    _old_store = None


def _pack(
    compare: tuple[Path, str] | None,
    fingerprints: bool,
    rows: bool,
    results: list[IndexResult],
) -> _Part:
    """A part's results as _Part (runs in the worker that indexed them). With compare
    (the old store's data dir and backend), each record is compared with the old
    store's record at its path; with fingerprints, its fingerprint goes along."""
    files: list[_Indexed | None] = []
    with _old_snapshot(*compare) if compare else contextlib.nullcontext() as old:
        for res in results:
            rec = res.record
            if rec is None:
                files.append(None)
                continue
            light = {"path": rec["path"], "id": rec["id"], "blake3": rec.get("blake3")}
            same = None
            if old is not None:
                try:
                    before = old.get(rec["path"])
                except StoreError:  # a damaged record there: not the same
                    before = None
                # As the store compares (Store.upsert): ~7 µs less a file than two
                # fingerprints (canonical JSON and a digest each).
                same = before is not None and comparable(before) == comparable(rec)
            files.append(
                _Indexed(
                    light, codec.encode(rec), same, _fingerprint(rec) if fingerprints else None,
                    res.error, res.warnings, res.unsure,
                )
            )  # fmt: skip
    if not rows:
        return _Part(files, None)
    # Here, not at the top: the daemon imports this module and needs no Arrow.
    from ccc_watch.mirror.rows import Rows

    records = [res.record for res in results if res.record is not None]
    return _Part(files, Rows.of(records, worker_policy()))


# What a carried history last said of a path: (id, blake3).
_Said = tuple[str, str | None]


def _last_said(history: History, known: dict[str, tuple[str, bytes | None]]) -> dict[str, _Said]:
    """history.state as (id, blake3) per path, each id the old store's records also hold
    kept once: at 100,000 paths this is 25 MB less than the dicts, for the whole rebuild.
    history.state is emptied (its dicts are let go)."""
    said: dict[str, _Said] = {}
    for path, value in history.state.items():
        ident, before = str(value.get("id")), value.get("blake3")
        old = known.get(path)
        said[path] = (old[0] if old is not None and old[0] == ident else ident, before)
    history.state.clear()
    return said


def _restated(item: _Indexed, said: _Said | None) -> Upsert:
    """The upsert of a fresh record into a store carrying the old history: an entry
    only when the file is not what the history last said of its path."""
    record = item.record
    if said is None:
        return Upsert(record, cause="rebuild", encoded=item.encoded)
    ident, before = said
    same = before == record.get("blake3") and ident == record.get("id")
    return Upsert(record, cause="rebuild", before=before, logged=not same, encoded=item.encoded)


def _carry(
    new_store: Store,
    data_dir: Path,
    backend: str,
    source: Store | None,
    work_dir: Path,
    on_changes: Callable[[list[Change]], None] | None,
) -> History:
    """The old store's history, copied into the new one (its entries to on_changes as
    they are): from source when given, else from the old file (moved into work_dir when
    it was damaged)."""
    if source is not None:
        with source.snapshot() as snap:
            history = new_store.carry_history(snap, on_changes)
    else:
        old = store_file(data_dir, backend)
        aside = work_dir / f"damaged-{old.name}"
        path = aside if aside.exists() else old
        if not path.exists():
            return History()
        try:
            impl = BACKENDS[backend][0](path, readonly=True)
            try:
                store = Store(impl)
            except BaseException:
                impl.close()
                raise
            with store, store.snapshot() as snap:
                history = new_store.carry_history(snap, on_changes)
        except StoreError as e:
            logger.warning("the old store's history cannot be read ({}): it starts again", e)
            return History(lost=True)
    if history.lost:
        logger.warning(
            "the old store's history could be read only in part: {} entries carried",
            history.carried,
        )
    return history


# Batches of indexed files kept while the old history is copied (on a thread): the
# encoded records and what the main process reads of them, ~0.8 KB a file.
_WAITING = 16


def _refuse_other_writer(data_dir: Path, backend: str) -> None:
    """StoreLockedError when another process has the old store open for writing: the
    swap would leave it writing to a file nobody reads any more. Only a probe (open for
    writing, close): a rebuild killed while holding the old store would leave it needing
    a repair, which readers refuse. A store too damaged to open has no writer to fear."""
    path = store_file(data_dir, backend)
    if not path.exists():
        return  # nothing to swap out, and a probe must not create the file
    with contextlib.suppress(StoreCorruptError, StoreInternalError):
        BACKENDS[backend][0](path).close()


class _Progress:
    """A bar on a terminal (log.progress); a log line every few seconds otherwise (the
    daemon's log, when it rebuilds on request). total: None until known (walked())."""

    def __init__(self, total: int | None) -> None:
        self.total, self.done, self.last = total, 0, time.monotonic()
        self.bar = Progress(total, "rebuild") if progress_enabled() else None

    def walked(self, total: int) -> None:
        """The walk has ended: total files to index."""
        self.total = total
        if self.bar is not None:
            self.bar.set_total(total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.advance(n)
        elif time.monotonic() - self.last >= 5 or self.done == self.total:
            self.last = time.monotonic()
            of = "" if self.total is None else f"/{self.total}"
            logger.info("rebuild: {}{} files", self.done, of)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def rebuild(
    vault: Path,
    data_dir: Path,
    *,
    backend: str = "redb",
    batch_size: int = 1000,
    policy: IndexPolicy | None = None,
    rules: IgnoreRules | None = None,
    dry_run: bool = False,
    workers: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    source: Store | None = None,
    seal_key: KeySource | None = None,
    on_rows: Callable[[Rows], None] | None = None,
    on_changes: Callable[[list[Change]], None] | None = None,
    on_end: Callable[[int, int, Mapping[str, Any]], None] | None = None,
) -> RebuildReport:
    """Index every file of the vault into a new store and swap it in (unless dry_run).

    Ids come from the old store (what can still be read of it when it is damaged; a
    damaged file is moved aside first), or from source when given: a store still open
    whose file is gone (the daemon's, when its data dir was deleted). seal_key gives
    the vault's key (by vault id) when the policy seals and has no key yet. on_rows,
    when given, receives the mirror rows of every record the new store holds, batch by
    batch, as the workers made them (not for a dry run); on_changes, the changelog
    entries of the new store as they go in (the old store's history carried over
    first, then what the rebuild appends); on_end, the new store's first and last
    entry's seq and its meta once its last entry is in (before its last pages are
    written).
    """
    started = time.perf_counter()
    pid = running_pid(data_dir)
    if not dry_run and pid is not None and pid != os.getpid():
        # Swapping the store file under a running daemon would leave it writing to the
        # old one: the daemon rebuilds on request (`ccc-watch rebuild` asks it).
        raise StoreLockedError(
            f"{store_file(data_dir, backend)} (a daemon runs for this vault, pid {pid}: "
            "ask it with `ccc-watch rebuild`, or stop it first)"
        )
    if not dry_run:
        # Private from the start, and a data dir found wider made private, as `run` does.
        secure_dir(data_dir)
        _refuse_other_writer(data_dir, backend)  # before the work, not only at the swap
    # The workers first, while this process holds little more than its imports.
    with started_workers(workers) as pool:
        vault = vault.resolve()
        target = store_file(data_dir, backend)
        report = RebuildReport(str(vault), str(target), dry_run)
        previous = _previous(data_dir, backend, source)
        known = previous.known
        vault_id = previous.vault_id or str(uuid.uuid4())
        # Before any file is read: under "seal" with no key, nothing is indexed (exit 78).
        policy = (policy or IndexPolicy()).keyed_for(
            vault_id, seal_key, new_vault=previous.vault_id is None
        )
        rules = rules or IgnoreRules.load(vault)
        # The walk goes on as the files are indexed (the workers need not wait for it),
        # in key order. Its first files now: a vault that cannot be read fails before
        # anything is made, and one too small for the workers is known whole.
        walked, found = walking(vault, rules)
        first = list(itertools.islice(found, PARALLEL_MIN_FILES))
        n_files = len(first) if len(first) < PARALLEL_MIN_FILES else max(len(known), len(first))

        work_dir = data_dir / f".rebuild-{os.getpid()}"
        _remove_stale_work_dirs(data_dir)
        if previous.damage is not None:
            aside = None if dry_run else _move_aside(data_dir, backend, work_dir)
            logger.warning(
                "the old store cannot be read whole ({}): keeping the ids of the {} records it "
                "could still read{}",
                previous.damage,
                len(known),
                "" if aside is None else f"; moved it aside until the new one is in place: {aside}",
            )
        tasks = (
            (f.key, f.location, known.get(f.key, (None, b""))[0])
            for f in itertools.chain(first, found)
        )
        seen_keys: set[str] = set()
        compare = None if previous.compared_in is None else (previous.compared_in, backend)
        fingerprints = compare is None and bool(known)
        pack = functools.partial(_pack, compare, fingerprints, on_rows is not None and not dry_run)
        # Workers of their own (pool None: spawned, or one process) come before any
        # database is open in this process.
        with (
            packed_indexing(vault, vault_id, policy, n_files, workers, pack, pool) as index_many,
            collecting_less(),  # this process's share of the work allocates as much
        ):
            new_store = None
            copier = ThreadPoolExecutor(1, thread_name_prefix="carry-history")
            carried: Future[History] | None = None  # the old history, being copied
            history = History()
            last_said: dict[str, _Said] = {}
            # How many files there are is known once the walk ends; till then, the old
            # store's count is a guess (a new vault has none).
            progress = _Progress(n_files if n_files < PARALLEL_MIN_FILES or known else None)
            try:
                if not dry_run:
                    new_store = open_store(
                        work_dir,
                        backend=backend,
                        vault_root=vault,
                        vault_id=vault_id,
                        cache_bytes=_WRITE_CACHE_BYTES,
                    )
                    new_store.set_meta(POLICY_META, policy.fingerprint())
                    new_store.defer_hash_index()  # written once, in order, at the end
                    carry = (new_store, data_dir, backend, source, work_dir, on_changes)
                    if source is None:  # copied while the workers index the first files
                        carried = copier.submit(_carry, *carry)
                    else:  # the daemon's own store is not read from another thread
                        carried = Future()
                        carried.set_result(_carry(*carry))
                # What is here now lives until the end (the tasks, the old ids, the
                # history): the garbage collector need not go through it again at every
                # full pass (~1.5 s of this process's CPU at 100,000 files).
                gc.freeze()
                # Batches indexed while the old history is still being copied wait here
                # (at most _WAITING of them), so the workers need not.
                waiting: list[tuple[Sequence[Task], list[_Indexed | None]]] = []

                def write_waiting() -> None:
                    nonlocal carried, history, last_said
                    if carried is not None:  # needed from the first store write on
                        history, carried = carried.result(), None
                        last_said = _last_said(history, known)
                    for chunk, results in waiting:
                        ops = []
                        for (key, _, _), item in zip(chunk, results, strict=True):
                            if item is None:  # vanished since the walk
                                continue
                            seen_keys.add(key)
                            _account(report, key, item, known)
                            ops.append(_restated(item, last_said.get(key)))
                        if new_store is not None:
                            appended = new_store.apply(ops)
                            if on_changes is not None:
                                on_changes(appended)
                        progress.advance(len(chunk))
                        if on_batch is not None:
                            on_batch(len(ops))
                    waiting.clear()

                sent: deque[list[Task]] = deque()  # batches the workers have, in order

                def batches() -> Iterator[list[Task]]:
                    while batch := list(itertools.islice(tasks, batch_size)):
                        report.seen += len(batch)
                        sent.append(batch)
                        yield batch
                    progress.walked(report.seen)

                for parts in index_many(batches()):
                    chunk = sent.popleft()
                    if on_rows is not None:
                        for made in parts:
                            if made.rows is not None:
                                on_rows(made.rows)
                    waiting.append((chunk, [item for made in parts for item in made.files]))
                    if carried is None or carried.done() or len(waiting) >= _WAITING:
                        write_waiting()
                write_waiting()
                report.skipped = [{"path": p, "reason": r} for p, r in walked.skipped]
                _let_go_of_old_store()
                report.removed = len(known.keys() - seen_keys)
                if new_store is not None:
                    gone = sorted(last_said.keys() - seen_keys)
                    for part in chunks([(k, last_said[k]) for k in gone], batch_size):
                        appended = new_store.apply(Forget(k, ident, b3) for k, (ident, b3) in part)
                        if on_changes is not None:
                            on_changes(appended)
                    if on_end is not None:
                        on_end(history.after + 1, new_store.head(), new_store.meta)
                    new_store.index_hashes()
                    new_store.compact()  # half the file is free pages (bench/store_size.py)
                    new_store.close()
                    new_store = None
                    _refuse_other_writer(data_dir, backend)  # one may have started meanwhile
                    _swap(work_dir, data_dir, backend)
            finally:
                copier.shutdown()  # a copy still going must not outlive the store
                gc.unfreeze()
                _let_go_of_old_store()
                progress.close()
                if new_store is not None:
                    new_store.close()
                shutil.rmtree(work_dir, ignore_errors=True)
        report.seconds = round(time.perf_counter() - started, 3)
    return report


def rebuild_vault(
    cfg: Config, *, dry_run: bool = False, ask_daemon: AskDaemon | None = None
) -> RebuildReport:
    """`ccc-watch rebuild`: a new store from the vault's files, then a new mirror.

    When a daemon runs for the vault, it does the work (it swaps the store it writes
    to, and loses no event): ask_daemon sends it the request and returns its answer.
    It is passed in because this layer sits below the daemon's; without it, a running
    daemon is a StoreLockedError. Otherwise the store is rebuilt here, and the mirror
    recreated from it, since the new store's changelog starts again. A dry run only
    reports, and never needs the daemon.
    """
    vault = cfg.require_vault().resolve()
    data_dir = cfg.resolved_data_dir()
    pid = running_pid(data_dir)
    if pid is not None and not dry_run and ask_daemon is not None:
        answer = ask_daemon(data_dir, pid, {"command": "rebuild"})
        if "error" in answer:
            raise CccWatchError(f"the daemon could not rebuild: {answer['error']}")
        try:
            return RebuildReport.from_dict(answer.get("report"))
        except ValueError as e:
            raise CccWatchError(f"the daemon's answer is no rebuild report: {e}") from None
    policy = IndexPolicy.from_settings(cfg)
    run = functools.partial(
        rebuild,
        vault,
        data_dir,
        backend=cfg.backend,
        batch_size=cfg.batch_size,
        policy=policy,
        rules=IgnoreRules.from_settings(vault, cfg),
        seal_key=key_source(cfg),
    )
    if dry_run:
        return run(dry_run=True)
    # Imported here, before the workers fork (they share it): the daemon imports this
    # module and must not load DuckDB.
    from ccc_watch.mirror.mirror import Mirror, MirrorError

    mirror = Mirror(data_dir, policy)
    new_store = functools.partial(open_readonly, data_dir, backend=cfg.backend, vault=vault)
    failed: MirrorError | None = None
    with mirror.loading() as load:
        report = run(on_rows=load.add, on_changes=load.add_changes, on_end=load.ending)
        with new_store() as store:
            try:
                load.finish(store)
            except MirrorError as e:
                failed = e
    if failed is not None:
        logger.warning("building the mirror beside the store failed ({}): from the store", failed)
        with new_store() as store:
            mirror.rebuild(store)
    return report


def _account(
    report: RebuildReport,
    key: str,
    item: _Indexed,
    known: dict[str, tuple[str, bytes | None]],
) -> None:
    report.indexed += 1
    if item.error:
        report.failed.append({"path": key, "reason": item.error})
    for w in item.warnings:
        report.warnings.append({"path": key, "reason": w})
    if item.unsure is not None:
        report.warnings.append({"path": key, "reason": f"classification unsure: {item.unsure}"})
        logger.warning(Drift("classification-unsure", key, item.unsure).line())
    old = known.get(key)
    if old is None:
        report.added += 1
    elif item.same if item.same is not None else old[1] == item.fingerprint:
        report.unchanged += 1
    else:
        report.changed += 1


def _swap(work_dir: Path, data_dir: Path, backend: str) -> None:
    """Rename the new store over the old one: readers see one or the other, whole."""
    new, old = store_file(work_dir, backend), store_file(data_dir, backend)
    replace_durably(new, old)
    damage_note(old).unlink(missing_ok=True)  # about the file just replaced
    for suffix in ("-wal", "-shm"):  # SQLite leaves none after a clean close
        stale = old.with_name(old.name + suffix)
        if stale.exists() and not new.with_name(new.name + suffix).exists():
            stale.unlink()


def _remove_stale_work_dirs(data_dir: Path) -> None:
    """Remove what an interrupted rebuild left behind."""
    if not data_dir.is_dir():
        return
    for entry in data_dir.glob(".rebuild-*"):
        pid = owner_pid(entry.name)
        if pid is not None and not pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
