"""The change feed: the history's operations (upsert, delete, move) in order, from the
beginning or from a cursor: `--since SEQ:HASH` (the `cursor` of the last event a
consumer saw; SEQ alone is accepted) or `--since TIME` (ISO 8601 or an age such as
90m). With `--follow`, after the history so far it waits for the daemon's next commits
and prints each new operation as it lands (no busy polling), until interrupted. With
`--json`, one JSON object per line: seq, op, path, prev_path, id, blake3_before,
blake3_after, cause, ts, hash, and the cursor to resume after it. A consumer that
resumes from its last cursor misses nothing and sees nothing twice, across a daemon
restart and a rebuild. When the cursor's place in the history is gone (pruned, or the
store was restored from an older backup or replaced) it exits 3 with one line: take a
full listing (`ccc-watch dump`) and follow from the head. Read-only: works while the
daemon runs."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import datetime
from types import FrameType
from typing import TextIO

from ccc_watch.cli._common import add_json
from ccc_watch.config import Config
from ccc_watch.history.feed import Cursor
from ccc_watch.log.safe import json_shown, shown
from ccc_watch.store import Change

HELP = "print the history's operations from a cursor on (--follow: as they happen)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--since, --follow, --json."""
    parser.add_argument(
        "--since",
        metavar="CURSOR|TIME",
        help="after this cursor (SEQ:HASH or SEQ, from a previous event) or time (ISO, 90m)",
    )
    parser.add_argument(
        "--follow", action="store_true", help="then keep printing new operations as they land"
    )
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the operations; exit 0 (3 when the cursor must be resynced)."""
    from ccc_watch.api import open_index

    out = sys.stdout
    with open_index(config=cfg) as index:
        text: str = "0" if args.since is None else args.since
        # SEQ or SEQ:HASH (a bad HASH is a usage error); anything else is a time
        since: str | Cursor = text if text.partition(":")[0].isdigit() else index.cursor_at(text)
        stop = threading.Event()
        if args.follow:

            def stopping(signum: int, frame: FrameType | None) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, stopping)
        try:
            for change in index.events(since, follow=args.follow, stop=stop):
                _print(change, args.json, out)
                if args.follow:
                    out.flush()  # a follower's reader wants each line as it lands
        except KeyboardInterrupt:
            if not args.follow:
                raise
    return 0


def _print(change: Change, as_json: bool, out: TextIO) -> None:
    from ccc_watch.history.feed import as_event

    if as_json:
        out.write(json_shown(json.dumps(as_event(change), ensure_ascii=False)) + "\n")
        return
    when = datetime.fromtimestamp(change.ts).astimezone().isoformat(" ", "seconds")
    what = (
        shown(change.path)
        if change.prev_path is None
        else f"{shown(change.prev_path)} -> {shown(change.path)}"
    )
    out.write(f"{change.seq:>8}  {when}  {change.op:<6}  {what}  ({change.cause})\n")
