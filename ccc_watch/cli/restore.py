"""Put an archive's store and mirror back in the data dir, then reconcile with the vault.
The archive is verified whole first; a daemon running for the vault makes the restore
refuse (stop it first). The store and the mirror are each renamed into place, then every
file of the vault is read again, so the index equals a fresh rebuild of the vault as it
is now, while the history from the archive is kept and goes on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ccc_watch.cli._common import add_json, print_fields
from ccc_watch.config import Config

HELP = "put an archive's store and mirror back, then reconcile with the vault"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """SRC, --relocate, --json."""
    parser.add_argument("src", type=Path, metavar="SRC", help="the archive to restore")
    parser.add_argument(
        "--relocate",
        action="store_true",
        help="the archive is of this vault at another path (moved, or a new machine)",
    )
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Restore and print what was restored and what the reconcile changed; exit 0."""
    from ccc_watch.backup.restore import restore

    report = restore(cfg, args.src, relocate=args.relocate)
    fields = {
        "restored": report.path,
        "records": report.records,
        "chain_head": f"{report.chain_head[0]}:{report.chain_head[1]}",
        "reconciled_changes": report.changes,
        "drift": report.drift,
        "seconds": report.seconds,
    }
    print_fields(fields, args.json)
    return 0
