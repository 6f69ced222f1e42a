"""Run one read-only SQL query against the mirror and print the result.

The query reaches the mirror and nothing else: no file is read or written, no other
database attached, no extension loaded, no setting changed, and only one SELECT (or
DESCRIBE, SHOW, SUMMARIZE) runs. --allow-files DIR lets it read the files in DIR too
(read_csv, read_parquet, glob, ...), and only read them.

The result comes as an aligned table (on a terminal, fitted to its width: long values
shortened in the middle, whole with --wide), JSON, JSON lines or CSV. When the mirror
trails the store, a line on stderr says by how many changes; the exit code stays 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from ccc_watch.cli._common import mirror_of
from ccc_watch.config import Config, within
from ccc_watch.errors import CccWatchError, UsageError
from ccc_watch.store import open_store

HELP = "run a read-only SQL query against the mirror"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """QUERY, --format (--json), --wide and --allow-files."""
    parser.add_argument("query", help='one SQL query, e.g. "SELECT * FROM tag_counts"')
    parser.add_argument(
        "--format",
        choices=("table", "json", "nl", "csv"),
        default="table",
        help="output format (json: one array of objects; nl: one JSON object per line, "
        "as `dump` prints records)",
    )
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="--format json"
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="a table shows every value whole, however wide the terminal (on a pipe it "
        "always does)",
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
    """Print the query's result in the format asked for, and on stderr how far the
    mirror trails the store; exit 0."""
    from ccc_watch.mirror.output import render
    from ccc_watch.mirror.sql import ask

    folders = [_readable_folder(cfg, folder) for folder in args.allow_files]
    terminal = sys.stdout.isatty()
    answer = ask(mirror_of(cfg), args.query, folders)
    width = _table_width(terminal) if not args.wide else None
    print(render(answer.result, args.format, terminal=terminal, width=width), end="")
    sys.stdout.flush()  # the result before the notice, when both go to one terminal
    notice = _trailing(cfg, answer.state)
    if notice:
        print(f"ccc-watch: {notice}", file=sys.stderr)
    return 0


def _table_width(terminal: bool) -> int | None:
    """The width a table fits in: the terminal's (COLUMNS wins, as everywhere), or
    COLUMNS on a pipe; else none, every value whole."""
    if terminal or os.environ.get("COLUMNS", "").strip().isdigit():
        return shutil.get_terminal_size().columns
    return None


def _trailing(cfg: Config, state: tuple[int, str | None, int | None] | None) -> str | None:
    """What is wrong with the mirror the query read, seen from the store (opened
    read-only: its head and id, no record), or None when it is current or there is no
    store to compare with."""
    from ccc_watch.mirror.schema import MIRROR_SCHEMA_VERSION

    if state is None:
        return None
    try:
        with open_store(cfg.resolved_data_dir(), backend=cfg.backend, readonly=True) as store:
            head, store_id = store.head(), store.meta.get("store_id")
    except (CccWatchError, OSError):  # no store (yet), or one busy or damaged: no notice
        return None
    watermark, mirror_store, version = state
    catch_up = "a running daemon catches up within seconds; `ccc-watch mirror` does it now"
    if version != MIRROR_SCHEMA_VERSION:
        return (
            f"the mirror was written with schema version {version}, this ccc-watch's is "
            f"{MIRROR_SCHEMA_VERSION}; `ccc-watch mirror` rebuilds it (a running daemon "
            "does at its next flush)"
        )
    if mirror_store != store_id or watermark > head:
        return (
            "the mirror is of another store than this vault's; `ccc-watch mirror` rebuilds "
            "it (a running daemon does at its next flush)"
        )
    if watermark < head:
        behind = head - watermark
        return (
            f"the mirror is {behind:,} change{'s' if behind != 1 else ''} behind the store "
            f"({catch_up})"
        )
    return None


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
