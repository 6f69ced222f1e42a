"""Describe the vault's store without writing to it (safe while the daemon runs)."""

from __future__ import annotations

import argparse
from typing import Any

from ccc_watch.cli._common import add_json, human_size, human_time, print_fields, read_store
from ccc_watch.config import Config

HELP = "describe the vault's store, read-only"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--json."""
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the store's path, backend, size, meta, record count and changelog head (text:
    the size in KiB/MiB and times as local time and age; --json: bytes and epochs)."""
    with read_store(cfg) as store:
        data = {
            "store": str(store.path),
            "backend": store.backend.name,
            "size_bytes": store.path.stat().st_size,
            **{f"meta.{k}": v for k, v in sorted(store.meta.items())},
            "records": len(store),
            "changelog_head": store.head(),
        }
    if not args.json:  # for people: a size, and times with their age
        data = {("size" if k == "size_bytes" else k): _shown(k, v) for k, v in data.items()}
    print_fields(data, args.json)
    return 0


def _shown(key: str, value: Any) -> Any:
    if key == "size_bytes":
        return human_size(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if key.endswith("_ns"):
            return human_time(value / 1e9)
        if key.endswith("_at"):
            return human_time(value)
    return value
