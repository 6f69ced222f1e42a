"""Index many files at once on every core: worker processes, results in order.

Parsing is CPU-bound Python, so it runs in worker processes (threads would share one
GIL). Used by `rebuild` and by reconciles that find many changed files (a branch
switch), so both scale the same way.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading
import time
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
# Files per task sent to a worker: large enough to amortize the pickling.
TASK_FILES = 250

_worker: Indexer | None = None


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """items in consecutive slices of at most size."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _init_worker(
    vault: Path,
    vault_id: str,
    policy: IndexPolicy,
    watch_parent: bool = False,
    spawned: bool = False,
) -> None:
    global _worker
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
    return [_worker.index(key, Path(path), prev) for key, path, prev in tasks]


def _packed(pack: Callable[[list[IndexResult]], P], tasks: Sequence[Task]) -> P:
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


@contextmanager
def packed_indexing(
    vault: Path,
    vault_id: str,
    policy: IndexPolicy,
    n_files: int,
    workers: int | None,
    pack: Callable[[list[IndexResult]], P],
) -> Iterator[Callable[[Iterable[Sequence[Task]]], Iterator[list[P]]]]:
    """As indexing(), but each part of a batch (at most TASK_FILES files) is handed to
    pack where it was indexed, in the worker, and what pack made of each part comes
    back: work on the results that parallelises (encoding them, say) is done there,
    and only what pack returns crosses to this process. pack must be picklable (a
    module-level function, or a functools.partial of one)."""
    n = workers or os.cpu_count() or 1
    if n == 1 or n_files < PARALLEL_MIN_FILES:
        _init_worker(vault, vault_id, policy)
        yield lambda batches: (
            [pack(_index_tasks(part)) for part in chunks(b, TASK_FILES)] for b in batches
        )
        return
    # fork is cheapest, but only safe while this process has one thread; the daemon
    # (observer and flusher threads) spawns fresh workers instead (a forkserver would
    # stay alive, and resident, for the daemon's whole life).
    method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
    with ProcessPoolExecutor(
        n,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_worker,
        initargs=(vault, vault_id, policy, True, method == "spawn"),
    ) as pool:

        def run(batches: Iterable[Sequence[Task]]) -> Iterator[list[P]]:
            pending: deque[list[Future[P]]] = deque()
            for n_batch, batch in enumerate(batches):
                # The first task forks the workers.
                with _frozen(method == "fork" and n_batch == 0):
                    pending.append(
                        [pool.submit(_packed, pack, part) for part in chunks(batch, TASK_FILES)]
                    )
                if len(pending) > 4:
                    yield [fut.result() for fut in pending.popleft()]
            while pending:
                yield [fut.result() for fut in pending.popleft()]

        try:
            yield run
        except BaseException:
            # Interrupted (a second stop signal, Ctrl-C) or failed: drop the queued
            # tasks instead of waiting for every one of them on the way out.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
