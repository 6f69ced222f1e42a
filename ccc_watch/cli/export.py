"""Write every mirror table as a Parquet file into a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ccc_watch.cli._common import mirror_of
from ccc_watch.config import Config

HELP = "write the mirror's tables as Parquet files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--parquet DIR (required)."""
    parser.add_argument(
        "--parquet",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder to write <table>.parquet files into",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Export and print each file written; exit 0."""
    from ccc_watch.mirror.sql import export_parquet

    for path in export_parquet(mirror_of(cfg), args.parquet):
        print(path)
    return 0
