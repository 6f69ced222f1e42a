"""Write every mirror table as a Parquet file into a folder.

A new folder is created 0700 and each file 0600; a folder inside the vault is refused,
since nothing is ever written into the vault.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ccc_watch.cli._common import mirror_of
from ccc_watch.config import Config, within
from ccc_watch.errors import UsageError

HELP = "write the mirror's tables as Parquet files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--parquet DIR (required)."""
    parser.add_argument(
        "--parquet",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder to write <table>.parquet files into (created 0700 if new)",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Export and print each file written; exit 0."""
    from ccc_watch.mirror.sql import export_parquet

    vault = cfg.require_vault()
    if within(args.parquet, vault):
        raise UsageError(
            f"--parquet {args.parquet} is inside the vault {vault}; ccc-watch never writes "
            "into the vault: name a folder outside it"
        )
    for path in export_parquet(mirror_of(cfg), args.parquet):
        print(path)
    return 0
