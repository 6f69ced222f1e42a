"""What several commands share: printing fields, summary lines (--quiet), dates and
sizes for people, the --json flag, opening the store and the mirror the settings name.

Text output is for people: sizes in KiB/MiB, times as local ISO time and how long ago.
--json output keeps the plain numbers and UTC times, for programs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ccc_watch.config import Config
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.log.safe import shown
from ccc_watch.store import Store, open_readonly

if TYPE_CHECKING:  # DuckDB and Arrow load only for the commands that use the mirror
    from ccc_watch.mirror.mirror import Mirror


def add_json(parser: argparse.ArgumentParser) -> None:
    """Add --json, for a command that can print JSON instead of aligned fields."""
    parser.add_argument("--json", action="store_true", help="print JSON")


def say(args: argparse.Namespace, line: str, *, err: bool = False) -> None:
    """Print a summary line or a note about the work (on stderr when err), unless the
    command was given --quiet: then only its results and its errors are printed."""
    if not getattr(args, "quiet", False):
        print(line, file=sys.stderr if err else sys.stdout, flush=err)


def human_size(size: int | None) -> str | None:
    """A byte count as people read it: 512 B, 108.0 KiB, 2.5 MiB (None stays None)."""
    if size is None:
        return None
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{size} B" if size < 1024 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """A span of time in its two largest units: 45 s, 3 min 20 s, 2 h 5 min, 3 d 4 h."""
    s = round(abs(seconds))
    if s < 60:
        return f"{s} s"
    for big, size, small, rest in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if s >= size:
            return f"{s // size} {big} {s % size // rest} {small}"
    return f"{s // 60} min {s % 60} s"


def human_time(when: float | str | None, now: float | None = None) -> str | None:
    """A moment (epoch seconds, or an ISO 8601 time) as local ISO time and how long
    ago it was: `2026-11-27 14:03:07+01:00 (2 min 5 s ago)`. None stays None; text
    that is no time is returned as it is."""
    if when is None:
        return None
    try:
        epoch = datetime.fromisoformat(when).timestamp() if isinstance(when, str) else when
        local = datetime.fromtimestamp(epoch).astimezone().isoformat(" ", "seconds")
    except (ValueError, OverflowError, OSError):  # no time, or out of the calendar's range
        return str(when)
    ago = (time.time() if now is None else now) - epoch
    if abs(ago) < 1:
        return f"{local} (now)"
    return f"{local} ({human_duration(ago)} {'ago' if ago > 0 else 'from now'})"


def print_fields(data: dict[str, Any], as_json: bool) -> None:
    """Print data as indented JSON, or as `key  value` lines with the values aligned."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        width = max(map(len, data), default=0)
        for key, value in data.items():
            print(f"{key:<{width}}  {'-' if value is None else shown(value)}")


def read_store(cfg: Config) -> Store:
    """The vault's store, read-only (safe while the daemon writes)."""
    return open_readonly(cfg.resolved_data_dir(), backend=cfg.backend, vault=cfg.require_vault())


def mirror_of(cfg: Config) -> Mirror:
    """The vault's DuckDB mirror."""
    from ccc_watch.mirror.mirror import Mirror

    return Mirror(cfg.resolved_data_dir(), IndexPolicy.from_settings(cfg))
