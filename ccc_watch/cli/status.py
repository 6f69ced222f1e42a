"""Whether a daemon runs for this vault, what it is doing, what the store and the
mirror hold, and a verdict: exit 0 Healthy, 1 Degraded, 2 Unhealthy or not running."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ccc_watch.cli._common import add_json, human_duration, human_size, human_time, print_fields
from ccc_watch.config import Config
from ccc_watch.log.safe import shown

HELP = "is a daemon running for this vault, and in what state"
TIMES = ("last_event", "last_reconcile", "status_updated")  # shown as local time and age


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--json."""
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the status report (text: sizes, times and the uptime for people; --json:
    bytes, UTC times and seconds); the exit code of its verdict."""
    from ccc_watch.daemon import status

    report = status.report(cfg)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        flat: dict[str, Any] = {}
        for key, value in report.items():
            if key == "uptime_seconds":
                flat["uptime"] = None if value is None else human_duration(value)
            elif key in TIMES:
                flat[key] = human_time(value)
            elif not isinstance(value, dict | list):
                flat[key] = value
        for part in ("store", "mirror"):
            for key, value in report[part].items():
                if key == "bytes":
                    flat[f"{part} size"] = human_size(value)
                else:
                    flat[f"{part} {key}"] = value
        types = report["records_by_type"] or {}
        flat["records"] = ", ".join(f"{t} {n}" for t, n in types.items()) or None
        flat["recent changes"] = "newest first:" if report["recent_changes"] else "none"
        print_fields(flat, as_json=False)
        for change in report["recent_changes"]:
            print(f"  {_change_line(change)}")
    return status.EXIT[report["health"]]


def _change_line(change: dict[str, Any]) -> str:
    """One changelog entry, newest first: `TIME  OP  PATH  (CAUSE)`, a move as
    `OLD -> NEW`."""
    path = shown(change["path"])
    if change["op"] == "move" and change["prev_path"] is not None:
        path = f"{shown(change['prev_path'])} -> {path}"
    elif change["op"] == "prune":
        path = "(older history pruned)"
    return f"{change['at']}  {change['op']:<6}  {path}  ({change['cause']})"
