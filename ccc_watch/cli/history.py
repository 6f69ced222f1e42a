"""List the operations on one note, oldest first: creates and edits (upsert), renames
and moves (followed back to every earlier name), deletes, each with its time, cause
and blake3 before and after. --since bounds it (ISO 8601 or an age such as 7d).
Read-only: works while the daemon runs."""

from __future__ import annotations

import argparse
import json

from ccc_watch.cli._common import add_json, human_time, read_store, say
from ccc_watch.config import Config
from ccc_watch.log.safe import json_shown, shown
from ccc_watch.vault.paths import vault_key

HELP = "list one note's operations (renames followed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """PATH, --since and --json."""
    parser.add_argument("path", help="the note's vault-relative path (now, or when last seen)")
    parser.add_argument("--since", metavar="TIME", help="only entries since TIME (ISO or 7d)")
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the entries; exit 0 (an empty history is no error)."""
    from ccc_watch.history.queries import parse_time, path_history

    since = None if args.since is None else parse_time(args.since)
    with read_store(cfg) as store, store.snapshot() as snap:
        changes = path_history(snap, vault_key(args.path), since)
    if args.json:
        print(json_shown(json.dumps([vars(c) for c in changes], indent=2, ensure_ascii=False)))
        return 0
    for c in changes:
        when = human_time(c.ts)
        what = shown(c.path) if c.prev_path is None else f"{shown(c.prev_path)} -> {shown(c.path)}"
        hashes = f"{(c.blake3_before or '-')[:12]} -> {(c.blake3_after or '-')[:12]}"
        print(f"{when}  {c.op:<6}  {what}  ({c.cause}; {hashes})")
    if not changes:
        say(args, f"history: no entries for {shown(args.path)}")
    return 0
