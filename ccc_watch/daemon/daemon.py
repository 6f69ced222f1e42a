"""`ccc-watch run`: the Daemon that keeps the store and the mirror equal to the vault.

Start watching first, then reconcile (so nothing between the two is lost), then loop:
settled paths are indexed and applied in one store transaction; folder events,
observer overflows, rule-file edits, SIGHUP and a jittered periodic timer ask for a
full reconcile; the mirror is flushed about once a second, backing off when a reader
holds it. One daemon per vault (a lock on `<data_dir>/daemon.pid`); SIGTERM/SIGINT
drain and exit 0; a second one cuts the drain short, still stops the flusher and closes
the store, and exits 1.

Its parts live beside it: the watcher and coalescer (events), the watch audit, the
signals, the status file; the translation of events into store operations is in
`ccc_watch.changes.events`, beside reconcile.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from ccc_watch import config
from ccc_watch.changes.events import EventTranslator
from ccc_watch.changes.reconcile import reconcile
from ccc_watch.daemon import audit, control, status
from ccc_watch.daemon.backups import ScheduledBackups
from ccc_watch.daemon.coalescer import Coalescer
from ccc_watch.daemon.faults import Faults
from ccc_watch.daemon.metrics import Metrics, Readings
from ccc_watch.daemon.notify import Notifier
from ccc_watch.daemon.publish import ScheduledPublish
from ccc_watch.daemon.signals import Interrupted, Signals
from ccc_watch.daemon.watcher import Watcher
from ccc_watch.errors import CccWatchError, ConfigError, StoreCorruptError, StoreError
from ccc_watch.history.queries import prune_point
from ccc_watch.index.indexer import Indexer
from ccc_watch.index.policy import IndexPolicy, KeySource, key_source
from ccc_watch.log import sinks as logs
from ccc_watch.log.applied import applied_line
from ccc_watch.log.drift import Drift
from ccc_watch.mirror.flusher import MirrorFlusher
from ccc_watch.procs import PidLock, release_memory
from ccc_watch.store import SCRUB_DUE, Store, open_store, store_file
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.walk import VaultUnreadableError

if TYPE_CHECKING:
    from ccc_watch.changes.rebuild import RebuildReport

EXIT_ROOT_GONE = 2
EXIT_INTERRUPTED = 1
# Seconds from storing a change that made a note private to scrubbing its old text
# from the store's and the mirror's files: a burst of such changes is one scrub.
SCRUB_DELAY = 2.0
PRUNE_INTERVAL = 86400.0  # seconds between the history's retention checks


class Daemon:
    """One vault's watcher, indexer and store writer; the mirror has its own thread."""

    def __init__(self, cfg: config.Config) -> None:
        self.cfg = cfg
        self.vault = cfg.require_vault().resolve()
        self.data_dir = cfg.resolved_data_dir()
        self.coalescer = Coalescer(cfg.settle)
        self.signals = Signals(self.coalescer.wake)
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
        self.root = -1  # the vault folder, held open while running
        self.rules, self.policy = self._load()
        self.store: Store | None = None
        self.events: EventTranslator | None = None  # once the store is open
        self.scrub_at: float | None = None  # when the store is next scrubbed (I8)
        self.mirror_scrub: int | None = None  # the flusher's ticket for the mirror's
        self.flusher = MirrorFlusher(self.data_dir, cfg.backend, self.policy, cfg.flush_interval)
        self.backups = ScheduledBackups(cfg)  # backup_interval: off by default
        self.publish = ScheduledPublish(cfg, self._head)  # manifests: with a carrier
        self.watcher = Watcher(self.vault, self.rules, self.coalescer)
        self.lock: PidLock | None = None
        self.faults = Faults()  # what keeps the loop's work from being done, if anything
        self.status_faults = Faults()  # what keeps the status file from being written
        self._rebuild_due: str | None = None  # "damaged" or "gone": the store needs a rebuild
        self._startup: bool | None = None  # the start-up reconcile is due (expected?)
        self._next_periodic = 0.0
        self._next_prune = 0.0  # the history's retention: at start-up, then once a day

    # --- lifecycle ------------------------------------------------------------

    def run(self) -> int:
        """Watch until told to stop; the exit code."""
        # Handlers first: a request's SIGUSR1 must never meet the default (terminate).
        self.signals.install()
        self.lock = PidLock(self.data_dir)
        sink = logger.add(self._count_error, level="ERROR", diagnose=False)
        try:
            return self._run()
        except Interrupted as e:
            logger.warning("{}", e)
            return EXIT_INTERRUPTED
        finally:
            logger.remove(sink)
            self.lock.release()

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
        """What `status` shows: the phase, or degraded while watching with a problem, or
        rebuilding while a damaged or deleted store waits for the next round to rebuild
        it (the store is not one to read meanwhile)."""
        if self.phase == "watching" and self.degraded_reason() is not None:
            return "degraded"
        if self.phase == "watching" and self._rebuild_due is not None:
            return "rebuilding"
        return self.phase

    def degraded_reason(self) -> str | None:
        """Why the daemon is degraded, or None."""
        if self.faults.reason is not None or self.status_faults.reason is not None:
            return self.faults.reason or self.status_faults.reason
        if self.fallback is not None:
            return self.fallback
        if self.flusher.degraded:
            return f"the mirror lags: {self.flusher.last_error}"
        return None

    def _load(self) -> tuple[IgnoreRules, IndexPolicy]:
        rules = IgnoreRules.from_settings(self.vault, self.cfg)
        return rules, IndexPolicy.from_settings(self.cfg)

    def _open_store(self) -> Store:
        store = open_store(self.data_dir, backend=self.cfg.backend, vault_root=self.vault)
        try:
            vault_id = str(store.meta["vault_id"])
            # Under "seal", the key is read here at start (a keyed policy is kept
            # across reopens; a SIGHUP builds, and keys, a new one): none is a
            # NoKeyError (exit 78) before anything is indexed.
            self.policy = self.policy.keyed_for(vault_id, self._key_source())
            self.indexer = Indexer(self.vault, vault_id, self.policy)
        except BaseException:
            store.close()
            raise
        symlinks = {} if self.events is None else self.events.symlinks
        self.events = EventTranslator(self.vault, self.indexer, self.rules, self.cfg.settle)
        self.events.symlinks = symlinks
        return store

    def _key_source(self) -> KeySource:
        """The vault's key by vault id, from the sources the settings name."""
        return key_source(self.cfg)

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
        self.flusher.on_flush = self.metrics.flush_seconds.observe
        if self.cfg.metrics:
            self._serve_metrics(self.cfg.metrics)
        try:
            self.store = self._open_store()
        except StoreCorruptError as e:
            self._found_damage(e)
            self._rebuild_store()  # at start-up: what fails here is the exit code
        self._start_watcher()  # first: what changes during the reconcile is queued
        self.flusher.start()
        self.backups.start(self.store)
        logger.info("watching {} (pid {})", self.vault, os.getpid())
        try:
            return self._loop()
        except VaultUnreadableError:
            if self._root_intact(root):
                raise
            return self._root_gone()
        finally:
            self._close()

    def _serve_metrics(self, address: str) -> None:
        """Serve the metrics; ConfigError when the address cannot be served (a port in use,
        a host not of this machine): restarting cannot help, changing the setting does."""
        try:
            host, port = self.metrics.serve(address, self._readings())
        except OSError as e:
            raise ConfigError(
                "metrics",
                f"cannot serve metrics at {address}: {e.strerror or e}; choose another port "
                "(or host), or leave metrics off",
            ) from e
        logger.info("metrics at http://{}:{}/metrics", host, port)

    def _close(self) -> None:
        """Stop watching and flushing, close the store: on every way out. A stop signal
        from here on only hurries the flusher (it flushes what is left, within seconds,
        unless hurried)."""
        self.signals.closing = True
        self.backups.stop()
        self.publish.stop()
        try:
            self.watcher.stop()
        finally:
            try:
                self.flusher.stop(hurry=self.signals.hurry.is_set())
            finally:
                self._scrub_when_due()  # clears the store's mark if the mirror is done
                if self.store is not None:
                    self.store.close()
                    self.store = None
                self.phase = "stopped"
                self._write_status_safely()

    def _readings(self) -> Readings:
        def lag() -> int | None:
            head, watermark = self._head(), self.flusher.watermark
            return None if head is None or watermark is None else head - watermark

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
        self._startup = self.store.meta.get("last_scan_started_ns") is None and not len(self.store)
        self.notifier.ready(f"reconciling: {self.vault}")  # store open, watching begun
        self.signals.requests.set()  # requests that came before the daemon did
        next_status = 0.0
        self.phase = "watching"
        while not self.signals.stop.is_set():
            self.notifier.ping()
            self.coalescer.wake.wait(timeout=min(self.cfg.settle / 2, 0.25))
            self.coalescer.wake.clear()
            if not self._root_intact(self.root):
                return self._root_gone()
            worked = self.faults.due() and self._survived(self._step, self.faults)
            if worked and self.faults.cleared():
                self.flusher.retry_now()  # it failed meanwhile too, most likely
            if time.monotonic() >= next_status:
                self._write_status_safely()
                next_status = time.monotonic() + 2.0
        logger.info("{}: stopping", self.signals.stop_reason())
        self.phase = "stopping"
        self.notifier.stopping()
        self._write_status_safely()
        if self._survived(lambda: self._drain(force=True), self.faults):
            self._scrub_when_due(now=True)  # the flusher's last flush rebuilds the mirror
            logger.info("stopped")
        else:  # what is left is found by the next start-up reconcile
            logger.warning("stopped without applying what waits: {}", self.faults.reason)
        return 0

    def _survived(self, work: Callable[[], None], faults: Faults) -> bool:
        """Run work; False when it failed for a reason outside the daemon: a full disk, a
        data dir deleted or unwritable (an OSError, or the StoreError made of one), which
        faults then holds (status says degraded, with the reason) until a retry works.
        This is the one place where the loop turns such an error into a state rather than
        its end. A damaged store is rebuilt at the next round."""
        try:
            work()
        except StoreCorruptError as e:
            self._found_damage(e)
            return False
        except (OSError, StoreError) as e:
            faults.failed(e)
            if isinstance(e, StoreError) and self.store is not None and self._rebuild_due != "gone":
                # redb refuses every write after an I/O error until the file is reopened:
                # the next round opens it again (and repairs it, once there is room). A
                # store whose file is gone stays open: the new one takes its ids.
                self.store.close()
                self.store = None
            return False
        return True

    def _step(self) -> None:
        """One round of the loop's work. What a round that fails took from the queue goes
        back to it (see _drain), so the next round does it again."""
        self._check_data_dir()
        if self._rebuild_due is not None:
            self._rebuild_store()
        elif self.store is None:  # a rebuild failed, and the old store could not be reopened
            self.store = self._open_store()
        if self._startup is not None:
            self._reconcile(offline=True, expected=self._startup)
            self._startup = None
            store = self.store
            assert store is not None
            self._scrub_later(bool(store.meta.get(SCRUB_DUE)))  # one a crash left undone
            self._audit_watches()
            self._next_periodic = self._next_reconcile()  # sooner when watches fall short
        if self.fallback is None and not self.watcher.alive():
            logger.error("the file observer died: restarting it and reconciling")
            self._start_watcher()
            self.coalescer.rescan("observer restarted")
        if self.signals.reload.is_set():
            self.signals.reload.clear()
            self._reload()
        if self.signals.requests.is_set():
            self.signals.requests.clear()
            try:
                self._serve_requests()
            except BaseException:
                self.signals.requests.set()  # still pending: the next round answers them
                raise
        self._drain()
        self._scrub_when_due()
        if time.monotonic() >= self._next_periodic:
            self._periodic()
            self._next_periodic = self._next_reconcile()
        if time.monotonic() >= self._next_prune:
            self._prune_history()
            self._next_prune = time.monotonic() + PRUNE_INTERVAL
        self.backups.tick()
        self.publish.tick()

    def _prune_history(self) -> None:
        """Let go of the history entries the retention settings no longer keep (one
        audited prune entry; see Store.prune)."""
        days, entries = self.cfg.history_keep_days, self.cfg.history_keep_entries
        store = self.store
        if store is None or not (days or entries):
            return
        with store.snapshot() as snap:
            through = prune_point(snap, days, entries)
        change = store.prune(through) if through else None
        if change is not None:
            logger.info("history: {}", change.cause)
            self.flusher.poke()

    def _check_data_dir(self) -> None:
        """Notice the pid file or the store file deleted while running (the data dir
        removed, say): have a new store built from the vault, with the ids of the one
        still open, and take the pid lock again (making the folder again)."""
        store = self.store
        if self._rebuild_due is None and store is not None and not store.path.exists():
            logger.error(
                "the store file {} was deleted while running: building a new one from the vault",
                store.path,
            )
            self._rebuild_due = "gone"  # first: a failure below must not close that store
        assert self.lock is not None
        if os.fstat(self.lock.fd).st_nlink == 0:
            logger.error(
                "the pid file {} was deleted while running: taking it again", self.lock.path
            )
            lock = PidLock(self.data_dir)  # another daemon may hold it now: that ends this one
            self.lock.release()
            self.lock = lock

    def _found_damage(self, err: StoreCorruptError) -> None:
        """The store is damaged: it is moved aside and rebuilt from the vault."""
        if self._rebuild_due != "damaged":
            logger.error(
                "store file is damaged: {}: {}; moving it aside and building a new one from "
                "the vault",
                store_file(self.data_dir, self.cfg.backend),
                err.detail,
            )
        self._rebuild_due = "damaged"

    # --- watching ---------------------------------------------------------------

    def _start_watcher(self) -> None:
        """Start the observer; when the system refuses, say so loudly and scan instead."""
        try:
            self.watcher.start()
        except OSError as e:
            self._fall_back(audit.refused(e))
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
        if not self.watcher.alive():
            return
        reason, held = audit.shortfall(self.watcher.watches, self.vault)
        if reason is not None:
            self._fall_back(reason)
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
        assert self.store is not None and self.events is not None
        vault_id = str(self.store.meta["vault_id"])
        new_cfg = self.cfg.reloaded(cfg)
        try:  # a policy that seals needs the key now: without it, keep the old settings
            policy = IndexPolicy.from_settings(new_cfg)
            policy = policy.keyed_for(vault_id, key_source(new_cfg))
        except CccWatchError as e:
            logger.error("configuration not reloaded: {}", e)
            return
        self.cfg = new_cfg
        logs.setup(self.cfg, command="run")  # the log file's settings may have changed
        self.rules, self.policy = IgnoreRules.from_settings(self.vault, self.cfg), policy
        self.watcher.set_rules(self.rules)
        self.indexer = Indexer(self.vault, vault_id, self.policy)
        self.events.indexer, self.events.rules = self.indexer, self.rules
        self.coalescer.settle = self.events.settle = self.cfg.settle
        self.coalescer.rescan("configuration reloaded (SIGHUP)")

    # --- work -----------------------------------------------------------------

    def _reconcile(self, offline: bool, expected: bool = False) -> None:
        assert self.store is not None
        self.phase = "reconciling"
        try:
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
        finally:
            self.phase = "watching"  # also after a failure: status then says why
        for key, path in result.deferred:
            self.coalescer.mark(key, path)
        if result.hashed > 1000:
            release_memory()  # a big scan's records are garbage now: give the pages back
        if result.changes:
            self.flusher.poke()
        self._scrub_later(bool(result.privatized))
        assert self.events is not None
        self.events.symlinks = result.symlinks
        self._count_drift(result.drift)
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

    def _drain(self, force: bool = False) -> None:
        batch = self.coalescer.take(force)
        try:
            if batch.moves or batch.ready:
                self._apply_paths(batch.moves, batch.ready)
                now = time.monotonic()
                for key, _ in batch.ready:
                    self.metrics.event_to_store_seconds.observe(now - batch.times[key])
            if batch.rescan is not None:
                if batch.rules_changed:
                    self._reload_rules()
                logger.info("reconcile: {}", batch.rescan)
                expected = batch.expected or self.fallback is not None
                self._reconcile(offline=False, expected=expected)
        except BaseException:
            self.coalescer.give_back(batch)  # nothing taken is lost: the next round retries
            raise

    def _reload_rules(self) -> None:
        """Read .cccignore and app.json again (one of them changed)."""
        self.rules = IgnoreRules.from_settings(self.vault, self.cfg)
        self.watcher.set_rules(self.rules)
        if self.events is not None:
            self.events.rules = self.rules

    def _apply_paths(self, moves: list[tuple[str, str]], ready: list[tuple[str, str]]) -> None:
        store, events = self.store, self.events
        assert store is not None and events is not None
        found = events.operations(store, moves, ready, self.coalescer.is_dirty)
        for key, path in found.deferred:
            self.coalescer.mark(key, path)
        for drift in found.drift:
            logger.warning(drift.line())
        self._count_drift(found.drift)
        if found.privatized:  # first: a crash before the scrub must not forget it
            store.set_meta(SCRUB_DUE, True)
        changes = store.apply(found.ops)
        if changes:
            logger.info(applied_line(changes))
            self.flusher.poke()
        self._scrub_later(bool(found.privatized))
        self.ops.update((c.op, c.cause) for c in changes)

    # --- scrubbing the old text of notes made private (I8) ----------------------

    def _scrub_later(self, due: bool) -> None:
        """A note became private: scrub the store and the mirror SCRUB_DELAY from now."""
        if due and self.scrub_at is None:
            self.scrub_at = time.monotonic() + SCRUB_DELAY

    def _scrub_when_due(self, now: bool = False) -> None:
        """Copy the store into a fresh file and have the flusher rebuild the mirror into
        one, so no freed page keeps a private note's old text; once both are done,
        clear the store's mark (a crash before that scrubs again at the next start)."""
        store = self.store
        if store is None:
            return
        if self.scrub_at is not None and (now or time.monotonic() >= self.scrub_at):
            try:
                done = store.scrub()
            except (CccWatchError, OSError) as e:
                logger.error("cannot scrub {} now, trying again in a minute: {}", store.path, e)
                self.scrub_at = time.monotonic() + 60
                return
            if not done:  # a reader holds SQLite's WAL: it lets go soon
                self.scrub_at = time.monotonic() + 1
                return
            self.scrub_at = None
            self.mirror_scrub = self.flusher.rebuild_soon()
        if self.mirror_scrub is not None and self.flusher.rebuilt >= self.mirror_scrub:
            self.mirror_scrub = None
            try:
                store.set_meta(SCRUB_DUE, False)
            except CccWatchError as e:  # left set: the next start scrubs once more
                logger.warning("scrubbed, but could not say so in the store: {}", e)
            logger.info("scrubbed the old text of notes made private from the store and mirror")

    def _count_drift(self, drift: list[Drift]) -> None:
        self.drift_count += len(drift)
        self.drift_kinds.update(d.kind for d in drift)

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
        logger.info("rebuilding the store on request")
        try:
            report, outcome = self._rebuild_store()
        except (CccWatchError, OSError) as e:
            logger.error("rebuild failed: {}", e)
            return {"error": str(e)}
        return {"report": report.as_dict(), "mirror": outcome}

    def _rebuild_store(self) -> tuple[RebuildReport, str]:
        """Build a new store from the vault and swap it in, then the mirror: on request,
        or because the store is damaged (its file is moved aside first) or was deleted
        (the ids come from the store still open). The report and the mirror's outcome."""
        from ccc_watch.changes.rebuild import rebuild

        why, old = self._rebuild_due, self.store
        self.phase = "rebuilding"
        self._write_status_safely()
        try:
            with self.flusher.paused():
                if why != "gone" and old is not None:
                    old.close()  # its file is replaced (or moved aside, when damaged)
                    self.store = None
                try:
                    report = rebuild(
                        self.vault,
                        self.data_dir,
                        backend=self.cfg.backend,
                        batch_size=self.cfg.batch_size,
                        policy=self.policy,
                        rules=self.rules,
                        on_batch=lambda n: self.notifier.ping(),
                        source=old if why == "gone" else None,
                        seal_key=self._key_source(),
                    )
                except BaseException:
                    if why is None:  # a request: the old store is still there, whole
                        self.store = self._open_store()
                    raise  # a damaged or deleted store: the next round tries again
                if self.store is not None:
                    self.store.close()  # the deleted store the ids came from
                self.store = self._open_store()
                self._rebuild_due = None
            # The new store has a new store_id: this flush rebuilds the mirror.
            outcome = self.flusher.flush_now()
        finally:
            self.phase = "watching"
        logger.info("rebuilt: {} files in {:.2f} s", report.indexed, report.seconds)
        return report, outcome

    def _head(self) -> int | None:
        """The store's changelog head, None when the store is closed or cannot tell."""
        try:
            return None if self.store is None else self.store.head()
        except StoreError:  # damaged: the loop rebuilds it
            return None

    def _write_status_safely(self) -> None:
        """Write the status file. What keeps it from being written (the data dir gone or
        unwritable; a full disk does not, see status.write) is logged once and never ends
        the daemon; it is tried again two seconds later."""
        if self._survived(self._write_status, self.status_faults):
            self.status_faults.cleared()

    def _write_status(self) -> None:
        day_ago = time.time() - 86400
        while self.errors and self.errors[0] < day_ago:
            self.errors.popleft()
        status.write(
            self.data_dir,
            status.DaemonStatus(
                pid=os.getpid(),
                state=self.state,
                degraded_reason=self.degraded_reason(),
                vault=str(self.vault),
                started_at=self.started,
                last_event=self.coalescer.last_event(),
                last_reconcile=self.last_reconcile,
                queue_depth=self.coalescer.depth(),
                drift_since_start=self.drift_count,
                store_head=self._head(),
                mirror_watermark=self.flusher.watermark,
                last_flush=self.flusher.last_flush,
                errors=list(self.errors),
            ),
        )
