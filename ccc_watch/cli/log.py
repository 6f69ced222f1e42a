"""Show the daemon's log file (with --since, its rotated files from that time too,
oldest first), or follow it with -f; --drift keeps only the DRIFT lines, --ops only the
APPLIED lines (what the daemon changed in the store, a line per batch)."""

from __future__ import annotations

import argparse

from ccc_watch.config import Config
from ccc_watch.log import reader

HELP = "show or follow the daemon's log file, or only its DRIFT lines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """-f/--follow, --drift, --ops and --since."""
    parser.add_argument("-f", "--follow", action="store_true", help="follow it, like tail -F")
    parser.add_argument("--drift", action="store_true", help="only the DRIFT lines")
    parser.add_argument(
        "--ops",
        action="store_true",
        help="only the APPLIED lines: the changes the daemon applied, a line per batch",
    )
    parser.add_argument(
        "--since",
        type=reader.since_arg,
        metavar="TIME",
        help="from TIME on, rotated files included: 10m, 2h, 1d, 2026-11-27T14:30",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the lines the reader selects (flushing each when following); exit 0, also
    when Ctrl-C ends following."""
    if args.follow:
        lines = reader.follow(cfg, drift=args.drift, ops=args.ops, since=args.since)
    else:
        lines = reader.read(cfg, drift=args.drift, ops=args.ops, since=args.since)
    try:
        for line in lines:
            print(line, flush=args.follow)
    except KeyboardInterrupt:  # how one stops following
        pass
    return 0
