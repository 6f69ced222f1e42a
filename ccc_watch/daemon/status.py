"""`ccc-watch status`: is a daemon keeping this vault, is it healthy, and why not.

It reads the status file the daemon rewrites atomically every two seconds
(`<data_dir>/status.json`), checks it against the daemon's pid lock, and opens the
store and the mirror read-only for what they hold. It never waits on the daemon.

Verdicts (and exit codes): Healthy (0); Degraded (1): the daemon says so (events
untrustworthy, mirror failing), the mirror lags by more than LAG_ENTRIES changes, or
errors were logged in the last hour; Unhealthy (2): no daemon, or one whose status
file is older than STALE_SECONDS (a hung main loop).
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccc_watch import __version__, config
from ccc_watch.errors import CccWatchError
from ccc_watch.procs import replace_text, running_pid
from ccc_watch.store import MIRROR_FILE, Change, open_store, store_file

STATUS_FILE = "status.json"
STALE_SECONDS = 30.0  # the daemon writes every 2 s
LAG_ENTRIES = 1000  # changelog entries the mirror may trail by before it is degraded
RECENT_CHANGES = 5  # the newest changelog entries status shows
BLOCK = 4096  # the status file is padded to whole blocks of this size
EXIT = {"Healthy": 0, "Degraded": 1, "Unhealthy": 2}


@dataclass(frozen=True)
class DaemonStatus:
    """What the daemon writes into the status file every two seconds."""

    pid: int
    state: str  # starting, reconciling, watching, rebuilding, degraded, stopping, stopped
    degraded_reason: str | None
    vault: str
    started_at: float
    last_event: float | None
    last_reconcile: float | None
    queue_depth: int
    drift_since_start: int
    store_head: int | None
    mirror_watermark: int | None
    last_flush: float | None
    errors: list[float]  # times of ERROR lines in the last 24 hours
    version: str = __version__
    updated_at: float = field(default_factory=time.time)


def write(data_dir: Path, status: DaemonStatus) -> None:
    """Replace the status file atomically (the daemon's side). On a full disk, where no
    temp file can be made, overwrite it in place instead: `status` must still be able to
    say that the daemon is degraded, and why."""
    path = data_dir / STATUS_FILE
    text = json.dumps(asdict(status), indent=1)
    # Padded (JSON allows trailing blanks) to whole blocks, so that an overwrite in place
    # never needs a block the disk does not have.
    text += " " * (-(len(text) + 1) % BLOCK) + "\n"
    try:
        replace_text(path, text)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not _overwrite(path, text):
            raise


def _overwrite(path: Path, text: str) -> bool:
    """Write text over the file's own blocks, padded to its size; False when the file is
    missing or too small. A reader may meet a half-written file (read() then shows the
    daemon as starting): rare, and better than no word at all."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        data = text.encode()
        if len(data) > size:
            return False
        os.pwrite(fd, data[:-1] + b" " * (size - len(data)) + b"\n", 0)
        return True
    finally:
        os.close(fd)


def read(data_dir: Path) -> dict[str, Any]:
    """The daemon's status file, checked against its pid lock (what `status` shows
    about the daemon itself)."""
    pid = running_pid(data_dir)
    try:
        status: dict[str, Any] = json.loads((data_dir / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        status = {}
    if pid is None:
        return {
            **{k: v for k, v in status.items() if k not in ("pid", "state")},
            "running": False,
            "pid": None,
            "state": "stopped",
        }
    return {**status, "running": True, "pid": pid, "state": status.get("state", "starting")}


def _when(epoch: object) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _mirror_facts(data_dir: Path) -> tuple[int | None, dict[str, int] | None, str | None]:
    """(watermark, records by type, why unknown) from the mirror, read-only."""
    import duckdb

    from ccc_watch.mirror.mirror import Mirror, MirrorError

    if not (data_dir / MIRROR_FILE).exists():
        return None, None, "no mirror yet"
    try:
        with Mirror(data_dir).connect(retry_seconds=1.0) as con:
            state = con.execute("SELECT watermark FROM mirror_state").fetchall()
            types = con.execute(
                "SELECT record_type, count(*) FROM notes GROUP BY 1 ORDER BY 1"
            ).fetchall()
    except (MirrorError, duckdb.Error) as e:
        return None, None, str(e)
    watermark = int(state[0][0]) if state else None
    return watermark, {str(t): int(n) for t, n in types}, None


def report(cfg: config.Config) -> dict[str, Any]:
    """Everything `ccc-watch status` shows, with the health verdict and its reason."""
    data_dir = cfg.resolved_data_dir()
    daemon = read(data_dir)
    now = time.time()
    store_path = store_file(data_dir, cfg.backend)
    head: int | None = None
    recent: list[dict[str, Any]] = []
    store_error = None
    try:
        with (
            open_store(data_dir, backend=cfg.backend, readonly=True) as store,
            store.snapshot() as snap,  # the head and its entries of one commit
        ):
            head = snap.head()
            recent = [_change(c) for c in snap.changes_after(max(head - RECENT_CHANGES, 0))]
    except CccWatchError as e:
        store_error = str(e)
    watermark, by_type, mirror_error = _mirror_facts(data_dir)
    lag = None if head is None or watermark is None else head - watermark
    started = daemon.get("started_at")
    out: dict[str, Any] = {
        "vault": str(cfg.require_vault().resolve()),
        "running": daemon["running"],
        "pid": daemon["pid"],
        "version": daemon.get("version") if daemon["running"] else __version__,
        "uptime_seconds": (
            round(now - started) if daemon["running"] and isinstance(started, float) else None
        ),
        "state": daemon["state"],
        "degraded_reason": daemon.get("degraded_reason") if daemon["running"] else None,
        "last_event": _when(daemon.get("last_event")),
        "last_reconcile": _when(daemon.get("last_reconcile")),
        "queue_depth": daemon.get("queue_depth") if daemon["running"] else 0,
        "records_by_type": by_type,
        "store": {"path": str(store_path), "bytes": _size(store_path), "head": head},
        "mirror": {
            "path": str(data_dir / MIRROR_FILE),
            "bytes": _size(data_dir / MIRROR_FILE),
            "watermark": watermark,
            "lag": lag,
        },
        "errors_24h": _recent(daemon.get("errors", []), now, 86400),
        "drift_since_start": daemon.get("drift_since_start", 0) if daemon["running"] else 0,
        "recent_changes": recent[::-1],
        "status_updated": _when(daemon.get("updated_at")),
    }
    if store_error:
        out["store"]["error"] = store_error
    if mirror_error:
        out["mirror"]["error"] = mirror_error
    out["health"], out["reason"] = _verdict(daemon, lag, now)
    return out


def _change(c: Change) -> dict[str, Any]:
    """A changelog entry as status shows it: what happened to which path, when, why."""
    return {
        "seq": c.seq,
        "op": c.op,
        "path": c.path,
        "prev_path": c.prev_path,
        "cause": c.cause,
        "at": _when(c.ts),
    }


def _recent(times: object, now: float, seconds: float) -> int:
    if not isinstance(times, list):
        return 0
    return sum(1 for t in times if isinstance(t, int | float) and now - t <= seconds)


def _verdict(daemon: dict[str, Any], lag: int | None, now: float) -> tuple[str, str]:
    if not daemon["running"]:
        return "Unhealthy", "no daemon is running for this vault"
    updated = daemon.get("updated_at")
    if isinstance(updated, int | float) and now - updated > STALE_SECONDS:
        return "Unhealthy", f"the daemon has not updated its status for {now - updated:.0f} s"
    if daemon.get("state") == "degraded":
        return "Degraded", str(daemon.get("degraded_reason") or "the daemon says degraded")
    if lag is not None and lag > LAG_ENTRIES:
        return "Degraded", f"the mirror trails the store by {lag} changes"
    errors = _recent(daemon.get("errors", []), now, 3600)
    if errors:
        return "Degraded", f"{errors} errors logged in the last hour (see `ccc-watch log`)"
    return "Healthy", f"{daemon.get('state', 'running')}"
