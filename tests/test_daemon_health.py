"""The daemon noticing that it cannot trust its file events (SCENARIOS.md C5, C6, D6)
and a mirror that keeps failing: it says so loudly, status says degraded, and full
reconciles / retries keep the store and the mirror equal to the vault meanwhile.

C5 and C6 run the daemon in a user namespace (`unshare -Ur`), where the inotify limits
of /proc/sys/user can be lowered for it alone; they skip where that is not allowed.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from daemon_harness import Daemon, wait_until

from ccc_watch import config
from ccc_watch.daemon.daemon import Daemon as InProcessDaemon


def _vault(root: Path, folders: int) -> Path:
    vault = root / "vault"
    for i in range(folders):
        (vault / f"d{i:03d}").mkdir(parents=True)
        (vault / f"d{i:03d}" / "n.md").write_text(f"note {i}\n")
    return vault


def _can_limit(name: str) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Ur", "sh", "-c", f"echo 7 > /proc/sys/user/{name}"],
        capture_output=True,
    )
    return probe.returncode == 0


def _limited(tmp_path: Path, vault: Path, name: str, value: int) -> Iterator[Daemon]:
    if not _can_limit(name):
        pytest.skip(f"cannot lower /proc/sys/user/{name} in a user namespace here")
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.prefix = ["unshare", "-Ur", "sh", "-c",
                f'echo {value} > /proc/sys/user/{name} && exec "$@"', "sh"]  # fmt: skip
    d.run_args = ["--fallback-interval", "1"]
    d.ready_states = ("watching", "degraded")
    d.start()
    yield d
    if d.proc is not None:
        d.proc.kill()
        d.proc.wait()


@pytest.fixture
def few_watches(tmp_path: Path) -> Iterator[Daemon]:
    yield from _limited(tmp_path, _vault(tmp_path, 60), "max_inotify_watches", 20)


@pytest.fixture
def no_instances(tmp_path: Path) -> Iterator[Daemon]:
    yield from _limited(tmp_path, _vault(tmp_path, 3), "max_inotify_instances", 0)


def test_c5_out_of_watches_is_loud_and_reconciles_instead(few_watches: Daemon) -> None:
    """C5: 61 folders, 20 watches. watchdog starts without a word; the daemon counts
    its watches against the folders, logs an error naming the limit, reports degraded,
    and a change in an unwatched folder still lands through the frequent reconcile."""
    d = few_watches
    d.settle()
    wait_until(lambda: d.status().get("state") == "degraded", "degraded")
    status = d.status()
    assert "of 61 folders are watched" in status["degraded_reason"]
    log = d.log.read_text()
    assert "out of inotify watches (fs.inotify.max_user_watches" in log
    assert "ERROR" in log
    last = d.vault / "d059" / "late.md"  # os.walk order: the last folders get no watch
    last.write_text("written where no watch reaches\n")
    for i in range(60):
        (d.vault / f"d{i:03d}" / "n.md").write_text(f"note {i}, edited\n")
    d.settle(timeout=20)
    assert d.records()["d059/late.md"]["body"] == "written where no watch reaches\n"
    assert d.records()["d042/n.md"]["body"] == "note 42, edited\n"
    assert d.proc is not None and d.proc.poll() is None


def test_c6_no_inotify_instance_gives_a_clear_error_and_scans(no_instances: Daemon) -> None:
    """C6: inotify_init fails at start (max_user_instances reached): a clear error,
    status degraded with the reason, and the vault is still kept by reconciles."""
    d = no_instances
    status = d.status()
    assert status["state"] == "degraded"
    assert "cannot watch the vault" in status["degraded_reason"]
    assert "max_user_instances" in d.log.read_text()
    (d.vault / "d000" / "new.md").write_text("found by a scan\n")
    (d.vault / "d001" / "n.md").unlink()
    d.settle(timeout=20)
    records = d.records()
    assert "d000/new.md" in records and "d001/n.md" not in records


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_d6_a_dead_emitter_is_restarted_and_reconciled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D6: an exception ends watchdog's emitter thread while its observer thread lives
    on (so observer.is_alive() says nothing). The daemon notices, restarts the observer
    and reconciles: a file written while no emitter ran is indexed. In-process, so the
    fault can be injected into the real emitter."""
    vault = _vault(tmp_path, 2)
    (tmp_path / "empty.toml").write_text("")
    cfg = config.load(
        {"vault": str(vault), "data_dir": str(tmp_path / "data"), "settle": "0.1"},
        environ={},
        config_file=tmp_path / "empty.toml",
    )
    daemon = InProcessDaemon(cfg)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(daemon.run()))
    runner.start()
    try:
        wait_until(lambda: daemon.state == "watching", "watching")
        observer = daemon.watcher.observer
        assert observer is not None
        (emitter,) = observer.emitters

        def crash(timeout: float, **kwargs: object) -> None:
            raise RuntimeError("injected emitter failure")

        monkeypatch.setattr(emitter, "queue_events", crash)
        # The emitter is blocked reading inotify: one more event, and its next call fails.
        (vault / "trigger.md").write_text("wakes the emitter\n")
        wait_until(lambda: not emitter.is_alive(), "the emitter to die")
        (vault / "written-while-blind.md").write_text("no emitter saw this\n")
        wait_until(lambda: daemon.watcher.observer is not observer, "observer restarted")

        def indexed() -> bool:
            assert daemon.store is not None
            return daemon.store.get("written-while-blind.md") is not None

        wait_until(indexed, "the file written while blind")
        (vault / "after.md").write_text("seen by the new observer\n")

        def seen() -> bool:
            assert daemon.store is not None
            return daemon.store.get("after.md") is not None

        wait_until(seen, "an event through the restarted observer")
    finally:
        daemon.signals.stop.set()
        daemon.coalescer.wake.set()
        runner.join(timeout=20)
    assert codes == [0]


def test_a_locked_mirror_degrades_then_catches_up(tmp_path: Path) -> None:
    """A process holding the mirror file open read-write makes every flush fail; the
    store stays current, status turns degraded naming the mirror, and once the file
    is free the mirror catches up from the changelog and the state is watching."""
    vault = _vault(tmp_path, 2)
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.run_args = ["--flush-interval", "0.2"]
    d.start()
    try:
        d.settle()
        holder = duckdb.connect(str(d.data / "mirror.duckdb"))  # takes the file lock
        try:
            for i in range(5):
                (vault / f"held{i}.md").write_text(f"while the mirror is held {i}\n")
                time.sleep(0.3)
            wait_until(lambda: "held4.md" in d.records(), "the store to move on")
            wait_until(lambda: d.status().get("state") == "degraded", "degraded", 30)
            assert "mirror" in d.status()["degraded_reason"]
        finally:
            holder.close()
        d.settle(timeout=30)
        wait_until(lambda: d.status().get("state") == "watching", "watching again", 30)
        assert "mirror flushes work again" in d.log.read_text()
    finally:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()
