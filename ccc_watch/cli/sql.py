"""Run one read-only SQL query against the mirror and print the result.

The query reaches the mirror and nothing else: no file is read or written, no other
database attached, no extension loaded, no setting changed, and only one SELECT (or
DESCRIBE, SHOW, SUMMARIZE) runs. --allow-files DIR lets it read the files in DIR too
(read_csv, read_parquet, glob, ...), and only read them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ccc_watch.cli._common import mirror_of
from ccc_watch.config import Config, within
from ccc_watch.errors import UsageError

HELP = "run a read-only SQL query against the mirror"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """QUERY, --format and --allow-files."""
    parser.add_argument("query", help='one SQL query, e.g. "SELECT * FROM tag_counts"')
    parser.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="output format (json: one array of objects)",
    )
    parser.add_argument(
        "--allow-files",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="let the query read the files in DIR (CSV, Parquet, JSON, ...); repeatable; "
        "never the vault or the data dir",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the query's result in the format asked for; exit 0."""
    from ccc_watch.mirror.sql import run_query

    folders = [_readable_folder(cfg, folder) for folder in args.allow_files]
    terminal = sys.stdout.isatty()
    print(run_query(mirror_of(cfg), args.query, args.format, folders, terminal), end="")
    return 0


def _readable_folder(cfg: Config, folder: Path) -> Path:
    """The folder, resolved, when a query may read it: a folder that overlaps neither
    the data dir (the store must stay out of reach) nor the vault (its notes reach
    the mirror only as their classification allows)."""
    if not folder.is_dir():
        raise UsageError(f"--allow-files {folder}: not a folder")
    for key, other in (("data dir", cfg.resolved_data_dir()), ("vault", cfg.require_vault())):
        if within(folder, other) or within(other, folder):
            raise UsageError(
                f"--allow-files {folder}: overlaps the {key} {other}; name a folder that "
                "holds only the files to read"
            )
    return folder.resolve()
