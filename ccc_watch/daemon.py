"""`ccc-watch run`: the Daemon that keeps the store and the mirror equal to the vault.

Start watching first, then reconcile (so nothing between the two is lost), then loop:
settled paths are indexed and applied in one store transaction; folder events,
observer overflows, rule-file edits, SIGHUP and a jittered periodic timer ask for a
full reconcile; the mirror is flushed about once a second, backing off when a reader
holds it. One daemon per vault (a lock on `<data_dir>/daemon.pid`); SIGTERM/SIGINT
drain and exit 0, a second signal exits at once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from loguru import logger

from ccc_watch import config
from ccc_watch.drift import Drift, conflict_original
from ccc_watch.errors import CccWatchError
from ccc_watch.ignore import IgnoreRules
from ccc_watch.indexer import Indexer, IndexPolicy
from ccc_watch.mirror import Mirror, MirrorBusyError, MirrorError
from ccc_watch.procs import PID_FILE, running_pid, try_lock
from ccc_watch.reconcile import pair_moves, reconcile
from ccc_watch.store import Delete, Move, Operation, Record, Store, Upsert, open_store
from ccc_watch.vault import VaultUnreadableError
from ccc_watch.watcher import Coalescer, Watcher

STATUS_FILE = "status.json"
EXIT_ROOT_GONE = 2


class AlreadyRunningError(CccWatchError):
    """Another daemon watches this vault."""


class _PidLock:
    """An exclusive lock on <data_dir>/daemon.pid holding this process's pid."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / PID_FILE
        self.fd, other = try_lock(self.path)
        if self.fd < 0:
            raise AlreadyRunningError(
                f"ccc-watch is already running for this vault (pid {other or '?'}); "
                f"stop it first: {self.path}"
            )
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        os.close(self.fd)


class Daemon:
    """One vault's watcher, indexer, store writer and mirror flusher."""

    def __init__(
        self,
        cfg: config.Config,
        settle: float = 0.2,
        reconcile_interval: float = 1800.0,
        flush_interval: float = 1.0,
    ) -> None:
        self.cfg = cfg
        self.vault = cfg.require_vault().resolve()
        self.data_dir = cfg.resolved_data_dir()
        self.settle = settle
        self.reconcile_interval = reconcile_interval
        self.flush_interval = flush_interval
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.state = "starting"
        self.started = time.time()
        self.last_reconcile: float | None = None
        self.drift_count = 0
        self.coalescer = Coalescer(settle)

    # --- lifecycle ------------------------------------------------------------

    def _signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            if self.stop_requested.is_set():
                os._exit(1)  # a second signal: leave now
            logger.info("signal {}: stopping", signal.Signals(signum).name)
            self.stop_requested.set()
            self.coalescer.wake.set()

        def reload(signum: int, frame: FrameType | None) -> None:
            self.reload_requested.set()
            self.coalescer.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def run(self) -> int:
        """Watch until told to stop; the exit code."""
        lock = _PidLock(_private(self.data_dir))
        try:
            return self._run()
        finally:
            lock.release()

    def _load(self) -> tuple[IgnoreRules, IndexPolicy]:
        rules = IgnoreRules.load(
            self.vault, config_dir=self.cfg.config_dir, patterns=self.cfg.ignore
        )
        policy = IndexPolicy(
            max_note_bytes=self.cfg.max_note_bytes,
            default_classification=self.cfg.default_classification,
        )
        return rules, policy

    def _run(self) -> int:
        self._signals()
        root = os.stat(self.vault)
        rules, policy = self._load()
        store = open_store(self.data_dir, backend=self.cfg.backend, vault_root=self.vault)
        mirror = Mirror(self.data_dir, policy)
        indexer = Indexer(self.vault, str(store.meta["vault_id"]), policy)
        watcher = Watcher(self.vault, rules, self.coalescer)
        watcher.start()  # first: what changes during the reconcile is queued
        logger.info("watching {} (pid {})", self.vault, os.getpid())
        try:
            self._reconcile(store, indexer, rules, offline=True)
            next_reconcile = self._next_reconcile()
            next_flush = 0.0
            failures = 0
            flushed_head = -1
            next_status = 0.0
            self.state = "watching"
            while not self.stop_requested.is_set():
                self.coalescer.wake.wait(timeout=min(self.settle / 2, 0.25))
                self.coalescer.wake.clear()
                if not self._root_intact(root):
                    logger.error(
                        "the vault folder {} was deleted or replaced: stopping", self.vault
                    )
                    return EXIT_ROOT_GONE
                if not watcher.alive():
                    logger.error("the file observer died: restarting it and reconciling")
                    watcher.start()
                    self.coalescer.rescan("observer restarted")
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self.cfg = config.load(config_file=self.cfg.config_file)
                    rules, policy = self._load()
                    watcher.set_rules(rules)
                    indexer = Indexer(self.vault, str(store.meta["vault_id"]), policy)
                    self.coalescer.rescan("configuration reloaded (SIGHUP)")
                try:
                    self._drain(store, indexer, rules)
                except VaultUnreadableError:
                    if self._root_intact(root):
                        raise
                    logger.error(
                        "the vault folder {} was deleted or replaced: stopping", self.vault
                    )
                    return EXIT_ROOT_GONE
                if time.monotonic() >= next_reconcile:
                    self.coalescer.rescan("periodic reconcile")
                    next_reconcile = self._next_reconcile()
                # Only when the store moved: attaching DuckDB costs ~30 ms of CPU.
                if time.monotonic() >= next_flush and store.head() != flushed_head:
                    outcome = self._flush(store, mirror)
                    if outcome == "ok":
                        flushed_head = store.head()
                    failures = 0 if outcome == "ok" else failures + 1
                    # A reader holding the file lets go soon: retry within seconds.
                    # Anything else (disk full, damage) backs off up to a minute.
                    cap = 5.0 if outcome == "busy" else 60.0
                    delay = (
                        self.flush_interval
                        if not failures
                        else min(0.25 * 2 ** (failures - 1), cap)
                    )
                    next_flush = time.monotonic() + delay * random.uniform(0.8, 1.2)
                if time.monotonic() >= next_status:
                    self._write_status(store, mirror)
                    next_status = time.monotonic() + 2.0
            self.state = "stopping"
            self._write_status(store, mirror)
            self._drain(store, indexer, rules, force=True)
            self._flush(store, mirror)
            logger.info("stopped")
            return 0
        finally:
            watcher.stop()
            store.close()
            self.state = "stopped"
            self._write_status(None, mirror)

    # --- work -----------------------------------------------------------------

    def _next_reconcile(self) -> float:
        # Jittered, as Syncthing does, so that many vaults do not scan in step.
        return time.monotonic() + self.reconcile_interval * random.uniform(0.75, 1.25)

    def _root_intact(self, root: os.stat_result) -> bool:
        try:
            now = os.stat(self.vault)
        except OSError:
            return False
        return (now.st_ino, now.st_dev) == (root.st_ino, root.st_dev)

    def _reconcile(
        self,
        store: Store,
        indexer: Indexer,
        rules: IgnoreRules,
        offline: bool,
        expected: bool = False,
    ) -> None:
        self.state = "reconciling"
        result = reconcile(
            self.vault,
            store,
            indexer,
            rules,
            offline=offline,
            previous_scan_ns=store.meta.get("last_scan_started_ns"),
            batch_size=self.cfg.batch_size,
            expected=expected,
        )
        self.drift_count += len(result.drift)
        self.last_reconcile = time.time()
        logger.info(
            "reconciled {} files in {:.2f} s: {} changes, {} drift",
            result.seen,
            result.seconds,
            result.changes,
            len(result.drift),
        )
        self.state = "watching"

    def _drain(
        self, store: Store, indexer: Indexer, rules: IgnoreRules, force: bool = False
    ) -> None:
        moves, ready, rescan, expected = self.coalescer.take(force)
        if moves or ready:
            self._apply_paths(store, indexer, moves, ready)
        if rescan is not None:
            logger.info("reconcile: {}", rescan)
            self._reconcile(store, indexer, rules, offline=False, expected=expected)

    def _apply_paths(
        self,
        store: Store,
        indexer: Indexer,
        moves: list[tuple[str, str]],
        ready: list[tuple[str, str]],
    ) -> None:
        ops: list[Operation] = [Move(old, new, cause="event") for old, new in moves]
        with store.snapshot() as snap:
            known = {k: snap.get(k) for k, _ in ready}
            # A move's target is read as the record it will be once the Move above is
            # applied, so the re-read keeps the moved note's id.
            for old, new in moves:
                if known.get(new) is None and (was := snap.get(old)) is not None:
                    known[new] = dict(was, path=new)
        gone: dict[str, Record] = {}
        fresh: list[Record] = []
        for key, real in ready:
            previous = known.get(key)
            res = indexer.index(key, Path(real), None if previous is None else previous["id"])
            if res.record is None:
                if previous is not None:
                    gone[key] = previous
            elif previous is None:
                fresh.append(res.record)
            else:
                ops.append(Upsert(res.record, cause="event"))
        # A delete and a create of the same content in one settle window is a move.
        for rec, source in pair_moves(gone, fresh, ops, cause="event"):
            gone.pop(source or "", None)
            shadowed = conflict_original(rec["path"])
            if shadowed is not None:
                logger.warning(
                    Drift("sync-conflict", rec["path"], f"conflict copy of {shadowed}").line()
                )
                self.drift_count += 1
        ops += [Delete(k, cause="event") for k in gone]
        store.apply(ops)

    def _flush(self, store: Store, mirror: Mirror) -> str:
        """Flush the mirror: 'ok', 'busy' (a reader holds the file) or 'failed'."""
        try:
            mirror.flush(store)
        except MirrorBusyError:
            self.state = "degraded"
            return "busy"
        except MirrorError as e:
            logger.warning("mirror flush failed: {}", e)
            self.state = "degraded"
            return "failed"
        if self.state == "degraded":
            self.state = "watching"
        return "ok"

    def _write_status(self, store: Store | None, mirror: Mirror) -> None:
        status: dict[str, Any] = {
            "pid": os.getpid(),
            "state": self.state,
            "vault": str(self.vault),
            "started_at": self.started,
            "last_event": self.coalescer.last_event(),
            "last_reconcile": self.last_reconcile,
            "queue_depth": self.coalescer.depth(),
            "drift_since_start": self.drift_count,
            "store_head": None if store is None else store.head(),
            "updated_at": time.time(),
        }
        path = self.data_dir / STATUS_FILE
        tmp = path.with_name(f".{STATUS_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(status, indent=1))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def _private(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return data_dir


def read_status(data_dir: Path) -> dict[str, Any]:
    """What `ccc-watch status` shows: the status file, checked against the lock."""
    pid = running_pid(data_dir)
    try:
        status: dict[str, Any] = json.loads((data_dir / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        status = {}
    if pid is None:
        return {
            "running": False,
            "pid": None,
            "state": "stopped",
            **{k: v for k, v in status.items() if k not in ("pid", "state")},
        }
    return {**status, "running": True, "pid": pid, "state": status.get("state", "starting")}
