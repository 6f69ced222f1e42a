"""Print which files existed with which blake3, now (from the store) or at a past
moment (--as-of, ISO 8601 or an age such as 7d; from the history), one `BLAKE3  PATH`
line per file as `b3sum` prints them, in path order. Read-only."""

from __future__ import annotations

import argparse
import json

from ccc_watch.cli._common import add_json, read_store
from ccc_watch.config import Config
from ccc_watch.log.safe import json_shown, shown

HELP = "print each file's blake3, now or --as-of a past time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ACTION (show), --as-of and --json."""
    parser.add_argument("action", nargs="?", choices=("show",), default="show", help="show")
    parser.add_argument("--as-of", metavar="TIME", help="as the history says it was at TIME")
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the manifest; exit 0."""
    from ccc_watch.history.queries import parse_time, state_as_of

    with read_store(cfg) as store, store.snapshot() as snap:
        if args.as_of is None:
            files = {r["path"]: {"id": r["id"], "blake3": r.get("blake3")} for r in snap.records()}
        else:
            files = state_as_of(snap, parse_time(args.as_of))
    if args.json:
        rows = [{"path": p, **files[p]} for p in sorted(files)]
        print(json_shown(json.dumps(rows, indent=2, ensure_ascii=False)))
    else:
        for path in sorted(files):
            print(f"{files[path].get('blake3') or '-'}  {shown(path)}")
    return 0
