"""Check the audit chain, or prune the history. `verify` walks the hash chain of the
store's changelog and of the mirror's `events` (every entry hashes the one before it)
and names the first entry that does not match: exit 0 when both are intact, 1 when
not. Read-only: works while the daemon runs. `prune` lets go of the entries the
retention settings (history_keep_days, history_keep_entries, or the flags given here)
no longer keep, as one audited entry; the daemon does the same once a day."""

from __future__ import annotations

import argparse
import json

from ccc_watch.cli._common import add_json, mirror_of, read_store
from ccc_watch.config import Config
from ccc_watch.errors import UsageError
from ccc_watch.log.safe import json_shown

HELP = "verify the history's hash chain (exit 1 when broken), or prune it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ACTION, --json, and prune's limits."""
    parser.add_argument("action", choices=("verify", "prune"), help="verify or prune")
    add_json(parser)
    parser.add_argument(
        "--keep-days", type=int, metavar="N", help="prune: keep N days (default: the setting)"
    )
    parser.add_argument(
        "--keep-entries",
        type=int,
        metavar="N",
        help="prune: keep the newest N entries (default: the setting)",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """verify: one line per chain and exit 1 when one is broken; prune: what it did."""
    if args.action == "prune":
        return _prune(args, cfg)
    from ccc_watch.history.chain import verify_mirror, verify_store

    mirror = mirror_of(cfg)
    with read_store(cfg) as store, store.snapshot() as snap:
        reports = [verify_store(snap)]
        if mirror.path.exists():
            con = mirror.connect()
            try:
                reports.append(verify_mirror(con, snap))
            finally:
                con.close()
    if args.json:
        print(json_shown(json.dumps([r.as_dict() for r in reports], indent=2, ensure_ascii=False)))
    else:
        for report in reports:
            print(report.line())
    return 0 if all(r.intact for r in reports) else 1


def _prune(args: argparse.Namespace, cfg: Config) -> int:
    from ccc_watch.history.queries import prune_point
    from ccc_watch.store import open_store

    days = cfg.history_keep_days if args.keep_days is None else args.keep_days
    entries = cfg.history_keep_entries if args.keep_entries is None else args.keep_entries
    if days < 0 or entries < 0:
        raise UsageError("--keep-days and --keep-entries take 0 (no limit) or more")
    if not days and not entries:
        print("audit: nothing to prune: the history is kept whole (history_keep_days and "
              "history_keep_entries are 0)")  # fmt: skip
        return 0
    with open_store(cfg.resolved_data_dir(), backend=cfg.backend) as store:
        with store.snapshot() as snap:
            through = prune_point(snap, days, entries)
        change = store.prune(through) if through else None
    if change is None:
        print("audit: nothing to prune: no entry is that old")
    else:
        print(f"audit: {change.cause} (entry {change.seq})")
    return 0
