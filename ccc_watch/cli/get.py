"""Print the record of one vault path as JSON (read-only)."""

from __future__ import annotations

import argparse
import json

from ccc_watch.cli._common import read_store
from ccc_watch.config import Config
from ccc_watch.errors import CccWatchError
from ccc_watch.log.safe import json_shown, shown

HELP = "print one record as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """PATH."""
    parser.add_argument("path", help="the note's vault-relative path")


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the record; an error when the path has none."""
    with read_store(cfg) as store:
        record = store.get(args.path)
    if record is None:
        raise CccWatchError(f"no record for {shown(args.path)}")
    print(json_shown(json.dumps(record, indent=2, ensure_ascii=False)))
    return 0
