"""Bring the DuckDB mirror up to date with the store (or recreate it with --rebuild)."""

from __future__ import annotations

import argparse

from ccc_watch.cli._common import mirror_of, read_store, say
from ccc_watch.config import Config

HELP = "apply the store's changes to the DuckDB mirror"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--rebuild."""
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="recreate the mirror from the store (new file, atomic swap)",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Flush (or rebuild) the mirror and print what was applied; exit 0."""
    mirror = mirror_of(cfg)
    with read_store(cfg) as store:
        result = mirror.rebuild(store) if args.rebuild else mirror.flush(store)
    verb = "rebuilt" if result.rebuilt else "applied"
    say(
        args,
        f"mirror {verb}: {result.applied} changes, watermark {result.watermark}, "
        f"{result.held_seconds:.3f} s: {mirror.path}",
    )
    return 0
