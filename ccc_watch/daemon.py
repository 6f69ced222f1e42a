"""`ccc-watch run`: the Daemon that keeps the store and the mirror equal to the vault.

Start watching first, then reconcile (so nothing between the two is lost), then loop:
settled paths are indexed and applied in one store transaction; folder events,
observer overflows, rule-file edits, SIGHUP and a jittered periodic timer ask for a
full reconcile; the mirror is flushed about once a second, backing off when a reader
holds it. One daemon per vault (a lock on `<data_dir>/daemon.pid`); SIGTERM/SIGINT
drain and exit 0, a second signal exits at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from loguru import logger

from ccc_watch import __version__, config, control, logs, status
from ccc_watch.drift import Drift, conflict_original
from ccc_watch.errors import CccWatchError, store_os_error
from ccc_watch.flusher import MirrorFlusher
from ccc_watch.ignore import IgnoreRules
from ccc_watch.indexer import Indexer, IndexPolicy
from ccc_watch.metrics import Metrics, Readings
from ccc_watch.notify import Notifier
from ccc_watch.paths import vault_key
from ccc_watch.procs import PID_FILE, try_lock
from ccc_watch.reconcile import pair_moves, reconcile
from ccc_watch.store import Delete, Move, Operation, Record, Store, Upsert, open_store
from ccc_watch.vault import VaultUnreadableError, icloud_evicted, left_out, log_skip
from ccc_watch.watcher import Coalescer, Watcher, inotify_limit, watched_folders

EXIT_ROOT_GONE = 2


class AlreadyRunningError(CccWatchError):
    """Another daemon watches this vault."""


class _PidLock:
    """An exclusive lock on <data_dir>/daemon.pid holding this process's pid."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / PID_FILE
        try:
            self.fd, other = try_lock(self.path)
        except OSError as e:
            raise store_os_error(self.path, e, what="daemon's pid file") from e
        if self.fd < 0:
            raise AlreadyRunningError(
                f"ccc-watch is already running for this vault (pid {other or '?'}); "
                f"stop it first: {self.path}"
            )
        try:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())
        except OSError as e:  # a full disk: one line naming the file, not a traceback
            os.close(self.fd)
            raise store_os_error(self.path, e, what="daemon's pid file") from e

    def release(self) -> None:
        os.close(self.fd)


class Daemon:
    """One vault's watcher, indexer and store writer; the mirror has its own thread."""

    def __init__(self, cfg: config.Config) -> None:
        self.cfg = cfg
        self.vault = cfg.require_vault().resolve()
        self.data_dir = cfg.resolved_data_dir()
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.requests = threading.Event()
        self.notifier = Notifier()  # systemd's notify socket, when there is one
        self._phase = "starting"  # starting, reconciling, watching, rebuilding, stopping
        self.fallback: str | None = None  # why file events cannot be trusted, if so
        self.started = time.time()
        self.last_reconcile: float | None = None
        self.drift_count = 0
        self.errors: deque[float] = deque()
        self.error_total = 0
        self.ops: Counter[tuple[str, str]] = Counter()  # store changes by (op, cause)
        self.drift_kinds: Counter[str] = Counter()
        self.metrics = Metrics()
        self.coalescer = Coalescer(cfg.settle)
        self.symlinks: dict[str, set[str]] = {}  # target key -> file symlinks to it
        self.confirm_empty: set[str] = set()  # notes read empty once, to read again
        self.root = -1  # the vault folder, held open while running
        self.rules, self.policy = self._load()
        self.store: Store | None = None
        self.flusher = MirrorFlusher(self.data_dir, cfg.backend, self.policy, cfg.flush_interval)
        self.watcher = Watcher(self.vault, self.rules, self.coalescer)

    # --- lifecycle ------------------------------------------------------------

    def _signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            if self.stop_requested.is_set():
                os._exit(1)  # a second signal: leave now
            logger.info("signal {}: stopping", signal.Signals(signum).name)
            self.stop_requested.set()
            self.coalescer.wake.set()

        def flag(event: threading.Event) -> Callable[[int, FrameType | None], None]:
            def handler(signum: int, frame: FrameType | None) -> None:
                event.set()
                self.coalescer.wake.set()

            return handler

        if threading.current_thread() is not threading.main_thread():
            return  # embedded in another program: its signals are its own business
        # A thread that dies (a watchdog emitter, say) is noticed by the main loop; its
        # traceback belongs in the daemon's log, not on a terminal nobody watches.
        threading.excepthook = _log_thread_death
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, flag(self.reload_requested))
        signal.signal(control.SIGNAL, flag(self.requests))

    def run(self) -> int:
        """Watch until told to stop; the exit code."""
        # Handlers first: a request's SIGUSR1 must never meet the default (terminate).
        self._signals()
        lock = _PidLock(_private(self.data_dir))
        sink = logger.add(self._count_error, level="ERROR", diagnose=False)
        try:
            return self._run()
        finally:
            logger.remove(sink)
            lock.release()

    def _count_error(self, message: Any) -> None:
        self.errors.append(message.record["time"].timestamp())
        self.error_total += 1

    @property
    def phase(self) -> str:
        """What the daemon is doing (told to systemd as STATUS=)."""
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        self._phase = value
        if value not in ("stopping", "stopped"):
            self.notifier.status(f"{value}: {self.vault}")

    @property
    def state(self) -> str:
        """What `status` shows: the phase, or degraded while watching with a problem."""
        if self.phase == "watching" and self.degraded_reason() is not None:
            return "degraded"
        return self.phase

    def degraded_reason(self) -> str | None:
        """Why the daemon is degraded, or None."""
        if self.fallback is not None:
            return self.fallback
        if self.flusher.degraded:
            return f"the mirror lags: {self.flusher.last_error}"
        return None

    def _load(self) -> tuple[IgnoreRules, IndexPolicy]:
        rules = IgnoreRules.load(
            self.vault, config_dir=self.cfg.config_dir, patterns=self.cfg.ignore
        )
        policy = IndexPolicy(
            max_note_bytes=self.cfg.max_note_bytes,
            default_classification=self.cfg.default_classification,
        )
        return rules, policy

    def _open_store(self) -> Store:
        store = open_store(self.data_dir, backend=self.cfg.backend, vault_root=self.vault)
        self.indexer = Indexer(self.vault, str(store.meta["vault_id"]), self.policy)
        return store

    def _run(self) -> int:
        # Held open, the root's inode cannot be reused by a folder made in its place
        # (ext4 hands out the number just freed): rm -rf + mkdir is always noticed.
        root = os.open(self.vault, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return self._watch(root)
        finally:
            os.close(root)

    def _watch(self, root: int) -> int:
        self.root = root
        self.store = self._open_store()
        self.flusher.on_flush = self.metrics.flush_seconds.observe
        if self.cfg.metrics:
            host, port = self.metrics.serve(self.cfg.metrics, self._readings())
            logger.info("metrics at http://{}:{}/metrics", host, port)
        self._start_watcher()  # first: what changes during the reconcile is queued
        self.flusher.start()
        logger.info("watching {} (pid {})", self.vault, os.getpid())
        try:
            return self._loop()
        except VaultUnreadableError:
            if self._root_intact(root):
                raise
            return self._root_gone()
        finally:
            self.watcher.stop()
            self.flusher.stop()  # flushes what is left, within seconds
            if self.store is not None:
                self.store.close()
                self.store = None
            self.phase = "stopped"
            self._write_status()

    def _readings(self) -> Readings:
        def lag() -> int | None:
            store, watermark = self.store, self.flusher.watermark
            return None if store is None or watermark is None else store.head() - watermark

        return Readings(
            events=lambda: dict(self.coalescer.events),
            operations=lambda: dict(self.ops),
            drift=lambda: dict(self.drift_kinds),
            errors=lambda: self.error_total,
            queue=self.coalescer.depth,
            mirror_lag=lag,
        )

    def _root_gone(self) -> int:
        logger.error("the vault folder {} was deleted or replaced: stopping", self.vault)
        return EXIT_ROOT_GONE

    def _loop(self) -> int:
        assert self.store is not None
        # A store never scanned is the vault's first index: nothing in it is drift.
        first = self.store.meta.get("last_scan_started_ns") is None and not len(self.store)
        self.notifier.ready(f"reconciling: {self.vault}")  # store open, watching begun
        self._reconcile(offline=True, expected=first)
        self._audit_watches()
        self._serve_requests()
        next_reconcile = self._next_reconcile()
        next_status = 0.0
        self.phase = "watching"
        while not self.stop_requested.is_set():
            self.notifier.ping()
            self.coalescer.wake.wait(timeout=min(self.cfg.settle / 2, 0.25))
            self.coalescer.wake.clear()
            if not self._root_intact(self.root):
                return self._root_gone()
            if self.fallback is None and not self.watcher.alive():
                logger.error("the file observer died: restarting it and reconciling")
                self._start_watcher()
                self.coalescer.rescan("observer restarted")
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
            if self.requests.is_set():
                self.requests.clear()
                self._serve_requests()
            self._drain()
            if time.monotonic() >= next_reconcile:
                self._periodic()
                next_reconcile = self._next_reconcile()
            if time.monotonic() >= next_status:
                self._write_status()
                next_status = time.monotonic() + 2.0
        self.phase = "stopping"
        self.notifier.stopping()
        self._write_status()
        self._drain(force=True)
        logger.info("stopped")
        return 0

    # --- watching ---------------------------------------------------------------

    def _start_watcher(self) -> None:
        """Start the observer; when the system refuses, say so loudly and scan instead."""
        try:
            self.watcher.start()
        except OSError as e:
            limit = inotify_limit("max_user_instances")
            self._fall_back(
                f"cannot watch the vault ({e.strerror or e}; fs.inotify.max_user_instances "
                f"= {limit}): raise the limit (sysctl), or close other watchers"
            )
            return
        if self.fallback is not None and self.fallback.startswith("cannot watch"):
            logger.info("the file observer runs again")
            self.fallback = None

    def _fall_back(self, reason: str) -> None:
        if self.fallback != reason:
            logger.error(
                "{}; until then every change is found by a full reconcile every {:.0f} s",
                reason,
                self.cfg.fallback_interval,
            )
        self.fallback = reason

    def _audit_watches(self) -> None:
        """Compare the inotify watches held with the folders on disk: running out of
        watches is silent, and the folders beyond the limit would never report."""
        held = self.watcher.watches()
        if held is None or not self.watcher.alive():
            return
        folders = watched_folders(self.vault)
        if held < folders:  # look again: folders come and go while we count
            time.sleep(0.5)
            held, folders = self.watcher.watches() or 0, watched_folders(self.vault)
        if held < folders:
            limit = inotify_limit("max_user_watches")
            self._fall_back(
                f"only {held} of {folders} folders are watched: out of inotify watches "
                f"(fs.inotify.max_user_watches = {limit}); raise it, e.g. "
                f"`sudo sysctl fs.inotify.max_user_watches=524288`"
            )
        elif self.fallback is not None and self.fallback.startswith("only"):
            logger.info("every folder is watched again ({} watches)", held)
            self.fallback = None

    def _periodic(self) -> None:
        """The periodic full reconcile; when watching is not trusted, also try to
        watch again and recount the watches."""
        if self.fallback is not None:
            if not self.watcher.alive():
                self._start_watcher()
            else:  # the limit may have been raised: watch every folder anew
                self.watcher.start()
            self._reconcile(offline=False, expected=True)
            self._audit_watches()
        else:
            self.coalescer.rescan("periodic reconcile")

    def _next_reconcile(self) -> float:
        # Jittered, as Syncthing does, so that many vaults do not scan in step.
        interval = float(
            self.cfg.fallback_interval if self.fallback else self.cfg.reconcile_interval
        )
        return time.monotonic() + interval * random.uniform(0.75, 1.25)

    def _root_intact(self, root: int) -> bool:
        """Whether the vault path still names the folder held open as root."""
        try:
            held, now = os.fstat(root), os.stat(self.vault)
        except OSError:
            return False
        return held.st_nlink > 0 and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev)

    def _reload(self) -> None:
        """SIGHUP: read the configuration and ignore rules again, then reconcile."""
        try:
            cfg = config.load(config_file=self.cfg.config_file)
        except CccWatchError as e:
            logger.error("configuration not reloaded: {}", e)
            return
        # Flags outrank the file, as at start; and where the vault and the databases are
        # cannot change under a running daemon.
        kept = {k for k, source in self.cfg.sources.items() if source == "flag"}
        kept |= {"vault", "data_dir"}
        self.cfg = config.Config(
            {k: self.cfg.values[k] if k in kept else v for k, v in cfg.values.items()},
            {k: self.cfg.sources[k] if k in kept else v for k, v in cfg.sources.items()},
            cfg.config_file,
        )
        logs.setup(self.cfg, command="run")  # the log file's settings may have changed
        self.rules, self.policy = self._load()
        self.watcher.set_rules(self.rules)
        assert self.store is not None
        self.indexer = Indexer(self.vault, str(self.store.meta["vault_id"]), self.policy)
        self.coalescer.settle = self.cfg.settle
        self.coalescer.rescan("configuration reloaded (SIGHUP)")

    # --- work -----------------------------------------------------------------

    def _reconcile(self, offline: bool, expected: bool = False) -> None:
        assert self.store is not None
        self.phase = "reconciling"
        result = reconcile(
            self.vault,
            self.store,
            self.indexer,
            self.rules,
            offline=offline,
            previous_scan_ns=self.store.meta.get("last_scan_started_ns"),
            batch_size=self.cfg.batch_size,
            expected=expected,
            still_the_vault=lambda: self._root_intact(self.root),
            settle_ns=int(self.cfg.settle * 1e9),
            progress=self.notifier.ping,  # a long scan is no hung main loop
        )
        for key, path in result.deferred:
            self.coalescer.mark(key, path)
        if result.hashed > 1000:
            release_memory()  # a big scan's records are garbage now: give the pages back
        if result.changes:
            self.flusher.poke()
        self.symlinks = result.symlinks
        self.drift_count += len(result.drift)
        self.drift_kinds.update(d.kind for d in result.drift)
        self.ops.update({(op, "reconcile"): n for op, n in result.by_op.items()})
        self.metrics.reconcile_seconds.observe(result.seconds)
        self.last_reconcile = time.time()
        logger.info(
            "reconciled {} files in {:.2f} s: {} changes, {} drift",
            result.seen,
            result.seconds,
            result.changes,
            len(result.drift),
        )
        self.phase = "watching"

    def _drain(self, force: bool = False) -> None:
        batch = self.coalescer.take(force)
        if batch.moves or batch.ready:
            self._apply_paths(batch.moves, batch.ready)
            now = time.monotonic()
            for key, _ in batch.ready:
                self.metrics.event_to_store_seconds.observe(now - batch.times[key])
        if batch.rescan is not None:
            if batch.rules_changed:
                self._reload_rules()
            logger.info("reconcile: {}", batch.rescan)
            self._reconcile(offline=False, expected=batch.expected or self.fallback is not None)

    def _reload_rules(self) -> None:
        """Read .cccignore and app.json again (one of them changed)."""
        self.rules = IgnoreRules.load(
            self.vault, config_dir=self.cfg.config_dir, patterns=self.cfg.ignore
        )
        self.watcher.set_rules(self.rules)

    def _apply_paths(self, moves: list[tuple[str, str]], ready: list[tuple[str, str]]) -> None:
        store = self.store
        assert store is not None
        ops: list[Operation] = [Move(old, new, cause="event") for old, new in moves]
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
            known = {k: view[k] if k in view else snap.get(k) for k, _ in ready}
        gone: dict[str, Record] = {}
        fresh: list[Record] = []
        for key, real in ready:
            previous = known.get(key)
            record = self._index_event_path(key, real, previous)
            if record is not None and self._unsettled(key, record, previous):
                self.coalescer.mark(key, real)  # again, once it has been quiet
                continue
            if record is None:
                if previous is not None and not icloud_evicted(self.vault, key):
                    gone[key] = previous
            elif previous is None:
                fresh.append(record)
            else:
                ops.append(Upsert(record, cause="event"))
        # A delete and a create of the same content in one settle window is a move.
        for rec, source in pair_moves(gone, fresh, ops, cause="event"):
            gone.pop(source or "", None)
            shadowed = conflict_original(rec["path"])
            if shadowed is not None:
                logger.warning(
                    Drift("sync-conflict", rec["path"], f"conflict copy of {shadowed}").line()
                )
                self.drift_count += 1
                self.drift_kinds["sync-conflict"] += 1
        ops += [Delete(k, cause="event") for k in gone]
        changes = store.apply(ops)
        if changes:
            self.flusher.poke()
        self.ops.update((c.op, c.cause) for c in changes)

    def _unsettled(self, key: str, record: Record, previous: Record | None) -> bool:
        """Whether what was read may be a file in mid-write (A2): an event came during
        the read; or the file changed (ctime: the kernel's, no tool sets it) less than a
        settle window ago; or a note just turned empty, which is confirmed once more a
        settle window later: a stat racing a truncation can see the new size with the
        old ctime, before the truncation's event is even queued."""
        if self.coalescer.is_dirty(key):
            logger.debug("{}: an event came during the read: read again once settled", key)
            return True
        ctime = record.get("ctime_ns")
        age = time.time_ns() - ctime if isinstance(ctime, int) else None
        if age is not None and 0 <= age < self.cfg.settle * 1e9:
            logger.debug("{}: changed {:.0f} ms ago: read again once settled", key, age / 1e6)
            return True
        emptied = record.get("size") == 0 and previous is not None and previous.get("size")
        if emptied and key not in self.confirm_empty:
            self.confirm_empty.add(key)
            logger.debug("{}: turned empty: read again once settled to confirm", key)
            return True
        self.confirm_empty.discard(key)
        return False

    def _index_event_path(self, key: str, real: str, previous: Record | None) -> Record | None:
        """The record for one event path under the walk's policy, or None when the
        file is gone or left out (a folder symlink, a symlink leaving the vault, ...)."""
        try:
            reason = left_out(self.vault, self.rules, real)
            if reason is not None:
                log_skip(os.fspath(self.vault), key, reason)
                return None
            if os.path.islink(real):
                target = os.path.relpath(os.path.realpath(real), os.path.realpath(self.vault))
                self.symlinks.setdefault(vault_key(target), set()).add(key)
            prev_id = None if previous is None else previous["id"]
            return self.indexer.index(key, Path(real), prev_id).record
        except Exception:  # a bug must not stop the daemon: keep what the store has
            logger.opt(exception=True).error("cannot index {}: record kept as it was", key)
            return previous

    def _serve_requests(self) -> None:
        """Answer what `ccc-watch` commands asked of this daemon (today: rebuild)."""
        for rid, request in control.pending(self.data_dir):
            if request.get("command") == "rebuild":
                answer = self._rebuild()
            else:
                answer = {"error": f"unknown request {request.get('command')!r}"}
            control.answer(self.data_dir, rid, answer)

    def _rebuild(self) -> dict[str, Any]:
        """`ccc-watch rebuild` while running: events queue meanwhile, and are applied
        to the new store afterwards, so none is lost."""
        from ccc_watch.rebuild import rebuild

        logger.info("rebuilding the store on request")
        self.phase = "rebuilding"
        self._write_status()
        try:
            with self.flusher.paused():
                assert self.store is not None
                self.store.close()
                try:
                    report = rebuild(
                        self.vault,
                        self.data_dir,
                        backend=self.cfg.backend,
                        batch_size=self.cfg.batch_size,
                        policy=self.policy,
                        rules=self.rules,
                        on_batch=lambda n: self.notifier.ping(),
                    )
                finally:
                    self.store = self._open_store()
            # The new store has a new store_id: this flush rebuilds the mirror.
            outcome = self.flusher.flush_now()
        except (CccWatchError, OSError) as e:
            logger.error("rebuild failed: {}", e)
            return {"error": str(e)}
        finally:
            self.phase = "watching"
        logger.info("rebuilt: {} files in {:.2f} s", report.indexed, report.seconds)
        return {"report": report.as_dict(), "mirror": outcome}

    def _write_status(self) -> None:
        store = self.store
        day_ago = time.time() - 86400
        while self.errors and self.errors[0] < day_ago:
            self.errors.popleft()
        fields: dict[str, Any] = {
            "pid": os.getpid(),
            "version": __version__,
            "state": self.state,
            "degraded_reason": self.degraded_reason(),
            "vault": str(self.vault),
            "started_at": self.started,
            "last_event": self.coalescer.last_event(),
            "last_reconcile": self.last_reconcile,
            "queue_depth": self.coalescer.depth(),
            "drift_since_start": self.drift_count,
            "store_head": None if store is None else store.head(),
            "mirror_watermark": self.flusher.watermark,
            "last_flush": self.flusher.last_flush,
            "errors": list(self.errors),  # times of ERROR lines in the last 24 hours
            "updated_at": time.time(),
        }
        status.write(self.data_dir, fields)


def release_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise, and an idle
    daemon would look as big as its largest scan)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _log_thread_death(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "?"
    logger.opt(exception=(args.exc_type, args.exc_value, args.exc_traceback)).error(
        "thread {} died", name
    )


def _private(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return data_dir
