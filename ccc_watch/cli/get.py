"""Print the record of one vault path as JSON (read-only)."""

from __future__ import annotations

import argparse
import json

from ccc_watch.cli._common import read_store
from ccc_watch.config import Config
from ccc_watch.errors import CccWatchError

HELP = "print one record as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """PATH."""
    parser.add_argument("path", help="the note's vault-relative path")


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the record; an error when the path has none."""
    with read_store(cfg) as store:
        record = store.get(args.path)
    if record is None:
        raise CccWatchError(f"no record for {args.path!r}")
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0
