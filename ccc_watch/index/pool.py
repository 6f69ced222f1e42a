"""Index many files at once on every core: worker processes, results in order.

Parsing is CPU-bound Python, so it runs in worker processes (threads would share one
GIL). Used by `rebuild` and by reconciles that find many changed files (a branch
switch), so both scale the same way.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ccc_watch.index.indexer import Indexer, IndexResult
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.log import sinks as logs

T = TypeVar("T")
P = TypeVar("P")
Task = tuple[str, str, str | None]  # (vault key, real path, previous id)

# Below this many files a worker pool costs more than it saves.
PARALLEL_MIN_FILES = 500
# Container objects allocated between two young collections of the garbage collector
# while files are indexed (CPython's default: 700). Indexing allocates dicts and lists
# by the hundred per file, nearly all freed by their reference counts; at 700 the
# collector went through them every few files for nothing (a worker's loop: 1.4% of its
# instructions, callgrind). Garbage in cycles is still collected, a few files later.
YOUNG_COLLECTION = 20_000


def collect_less() -> tuple[int, int, int]:
    """Raise the young generation's threshold to YOUNG_COLLECTION (unless collection is
    off: a threshold of 0); returns the thresholds before."""
    old = gc.get_threshold()
    if old[0]:
        gc.set_threshold(max(old[0], YOUNG_COLLECTION), *old[1:])
    return old


@contextmanager
def collecting_less() -> Iterator[None]:
    """collect_less() while the block runs."""
    old = collect_less()
    try:
        yield
    finally:
        gc.set_threshold(*old)


# Files per task sent to a worker: large enough to amortize the pickling.
TASK_FILES = 250

_worker: Indexer | None = None
# What _worker indexes for, in a worker forked before it was known (started()): the
# token of the packed_indexing() that made it.
_worker_token: str | None = None


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """items in consecutive slices of at most size."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _init_worker(
    vault: Path | None,
    vault_id: str,
    policy: IndexPolicy | None,
    watch_parent: bool = False,
    spawned: bool = False,
) -> None:
    global _worker
    collect_less()  # for good: a worker does nothing but index
    if vault is not None and policy is not None:
        _worker = Indexer(vault, vault_id, policy)
    if spawned:  # a fresh interpreter has loguru's default sink, which shows variables
        logs.child_setup()
    if watch_parent:
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker of a killed rebuild would wait for work forever: leave with the parent."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def worker_policy() -> IndexPolicy:
    """The policy of this process's indexer (a pack function's, in a worker)."""
    assert _worker is not None
    return _worker.policy


def _index_tasks(tasks: Sequence[Task]) -> list[IndexResult]:
    assert _worker is not None
    with _worker.batch():
        return [_worker.index(key, path, prev) for key, path, prev in tasks]


def _packed(pack: Callable[[list[IndexResult]], P], tasks: Sequence[Task]) -> P:
    return pack(_index_tasks(tasks))


def _packed_for(
    setting: tuple[str, Path, str, IndexPolicy],
    pack: Callable[[list[IndexResult]], P],
    tasks: Sequence[Task],
) -> P:
    """_packed in a worker started before its vault was known: its indexer is made by
    the first task that brings it (token, vault, vault id, policy)."""
    global _worker, _worker_token
    token, vault, vault_id, policy = setting
    if _worker_token != token:
        _worker, _worker_token = Indexer(vault, vault_id, policy), token
    return pack(_index_tasks(tasks))


@contextmanager
def _frozen(freeze: bool) -> Iterator[None]:
    """With freeze, this process's objects frozen for the garbage collector while the
    block runs: a worker forked meanwhile never visits them, and so never copies the
    pages that hold them (its memory would grow to this process's)."""
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()


@contextmanager
def indexing(
    vault: Path, vault_id: str, policy: IndexPolicy, n_files: int, workers: int | None
) -> Iterator[Callable[[Iterable[Sequence[Task]]], Iterator[list[IndexResult]]]]:
    """A function from batches of tasks to their results, in order.

    Parsing is CPU-bound Python, so it runs in worker processes (threads would share
    one GIL); the store writes stay in this process, overlapping with them. At most a
    few tasks are in flight, which bounds memory whatever the vault's size.
    """
    with packed_indexing(vault, vault_id, policy, n_files, workers, list) as run:
        yield lambda batches: ([r for part in parts for r in part] for parts in run(batches))


def _start_method() -> str:
    # fork is cheapest, but only safe while this process has one thread; the daemon
    # (observer and flusher threads) spawns fresh workers instead (a forkserver would
    # stay alive, and resident, for the daemon's whole life).
    return "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"


@contextmanager
def started(workers: int | None) -> Iterator[ProcessPoolExecutor | None]:
    """Worker processes started now, before the caller knows its vault, for
    packed_indexing(pool=...): forked while this process is small, a worker shares only
    its imports. Forked after a rebuild's walk and its reading of the old store, two
    workers held ~90 MB more between them at 100,000 files (the pages of this
    process's that it rewrote later were copied, and counted, twice). None when one
    process is asked for, or when workers would be spawned (they share nothing then,
    so packed_indexing() starts its own, and only when there is enough to index)."""
    n = workers or os.cpu_count() or 1
    if n == 1 or _start_method() != "fork":
        yield None
        return
    with ProcessPoolExecutor(
        n,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(None, "", None, True),
    ) as pool:
        with _frozen(True):
            pool.submit(os.getpid).result()  # forks every worker now
        try:
            yield pool
        except BaseException:
            _abandon(pool)
            raise


@contextmanager
def packed_indexing(
    vault: Path,
    vault_id: str,
    policy: IndexPolicy,
    n_files: int,
    workers: int | None,
    pack: Callable[[list[IndexResult]], P],
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[Callable[[Iterable[Sequence[Task]]], Iterator[list[P]]]]:
    """As indexing(), but each part of a batch (at most TASK_FILES files) is handed to
    pack where it was indexed, in the worker, and what pack made of each part comes
    back: work on the results that parallelises (encoding them, say) is done there,
    and only what pack returns crosses to this process. pack must be picklable (a
    module-level function, or a functools.partial of one). pool: workers from
    started() to use instead of starting new ones."""
    n = workers or os.cpu_count() or 1
    if n == 1 or n_files < PARALLEL_MIN_FILES:
        _init_worker(vault, vault_id, policy)
        yield lambda batches: (
            [pack(_index_tasks(part)) for part in chunks(b, TASK_FILES)] for b in batches
        )
        return
    if pool is not None:
        setting = (uuid.uuid4().hex, vault, vault_id, policy)
        yield _submitting(pool, functools.partial(_packed_for, setting, pack), False)
        return
    method = _start_method()
    with ProcessPoolExecutor(
        n,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_worker,
        initargs=(vault, vault_id, policy, True, method == "spawn"),
    ) as own:
        try:
            yield _submitting(own, functools.partial(_packed, pack), method == "fork")
        except BaseException:
            _abandon(own)
            raise


def _abandon(pool: ProcessPoolExecutor) -> None:
    """Shut down a pool whose work is no longer wanted (interrupted by a second stop
    signal or Ctrl-C, or failed): the queued tasks are dropped instead of waited for,
    and only the few already in a worker's hands are let finish. It waits for the
    pool's manager thread all the same: left running (shutdown(wait=False)), it closed
    its wakeup pipe while Python's exit handler wrote to it (a race in CPython's
    concurrent.futures, python/cpython#125451), and a command that had failed with one
    line printed a traceback ("Bad file descriptor") as it exited."""
    pool.shutdown(wait=True, cancel_futures=True)


def _submitting(
    pool: ProcessPoolExecutor, work: Callable[[Sequence[Task]], P], forks: bool
) -> Callable[[Iterable[Sequence[Task]]], Iterator[list[P]]]:
    """A function from batches of tasks to what work made of their parts, in order,
    with at most a few batches in flight. forks: the first task forks the workers."""

    def run(batches: Iterable[Sequence[Task]]) -> Iterator[list[P]]:
        pending: deque[list[Future[P]]] = deque()
        for n_batch, batch in enumerate(batches):
            with _frozen(forks and n_batch == 0):
                pending.append([pool.submit(work, part) for part in chunks(batch, TASK_FILES)])
            if len(pending) > 4:
                yield [fut.result() for fut in pending.popleft()]
        while pending:
            yield [fut.result() for fut in pending.popleft()]

    return run
