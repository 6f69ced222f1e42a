"""Describe the vault's store without writing to it (safe while the daemon runs)."""

from __future__ import annotations

import argparse

from ccc_watch.cli._common import add_json, print_fields, read_store
from ccc_watch.config import Config

HELP = "describe the vault's store, read-only"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--json."""
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the store's path, backend, size, meta, record count and changelog head."""
    with read_store(cfg) as store:
        data = {
            "store": str(store.path),
            "backend": store.backend.name,
            "size_bytes": store.path.stat().st_size,
            **{f"meta.{k}": v for k, v in sorted(store.meta.items())},
            "records": len(store),
            "changelog_head": store.head(),
        }
    print_fields(data, args.json)
    return 0
