"""Run one read-only SQL query against the mirror and print the result."""

from __future__ import annotations

import argparse

from ccc_watch.cli._common import mirror_of
from ccc_watch.config import Config

HELP = "run a read-only SQL query against the mirror"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """QUERY and --format."""
    parser.add_argument("query", help='one SQL query, e.g. "SELECT * FROM tag_counts"')
    parser.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="output format (json: one array of objects)",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the query's result in the format asked for; exit 0."""
    from ccc_watch.mirror.sql import run_query

    print(run_query(mirror_of(cfg), args.query, args.format), end="")
    return 0
