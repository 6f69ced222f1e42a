"""Write one archive of the vault's store and mirror (safe while the daemon runs: one read
snapshot, the watcher never paused), or check one with --verify SRC. The archive is a
tar of manifest.json (vault id, store id, backend, time, the audit chain's head, record
count, each member's size and blake3), the store file and mirror.duckdb, created 0600 in
a folder created 0700: DEST, else `backup_dir`, else `<user data dir>/ccc-
watch/backups/<data dir name>`. With --encrypt it is encrypted with AES-256-GCM under
the vault's key (see the `key` command). --keep N then removes the oldest archives of
this vault in that folder beyond N.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ccc_watch.cli._common import add_json, human_size, human_time, print_fields
from ccc_watch.config import Config
from ccc_watch.errors import UsageError

HELP = "write an archive of the store and the mirror, or check one with --verify"


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """DEST, --keep N, --encrypt, --verify SRC, --json."""
    parser.add_argument(
        "dest", nargs="?", type=Path, metavar="DEST", help="folder to write the archive into"
    )
    parser.add_argument(
        "--keep", type=_count, metavar="N", help="keep the N newest archives of this vault"
    )
    parser.add_argument(
        "--encrypt", action="store_true", help="encrypt the archive with the vault's key"
    )
    parser.add_argument(
        "--verify", type=Path, metavar="SRC", help="check the archive SRC; write nothing"
    )
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Back up (or verify) and print what was written (or checked); exit 0, or 1 with one
    line naming what is wrong with an archive."""
    from ccc_watch.backup.backup import take_backup, verify_archive

    if args.verify is not None:
        if args.dest is not None or args.keep is not None or args.encrypt:
            raise UsageError("--verify SRC takes no DEST, --keep or --encrypt")
        checked = verify_archive(cfg, args.verify)
        m = checked.manifest
        fields = {
            "archive": checked.path,
            "encrypted": checked.encrypted,
            "vault_id": m["vault_id"],
            "created": m["created"] if args.json else human_time(m["created"]),
            "records": m["records"],
            "chain_head": f"{m['chain_head']['seq']}:{m['chain_head']['hash']}",
            "verify": "ok",
        }
        print_fields(fields, args.json)
        return 0
    keep = args.keep if args.keep is not None else cfg.backup_keep
    report = take_backup(cfg, args.dest, keep=keep, encrypt=args.encrypt or cfg.backup_encrypt)
    fields = {
        "archive": report.path,
        "encrypted": report.encrypted,
        **({"bytes": report.bytes} if args.json else {"size": human_size(report.bytes)}),
        "records": report.records,
        "chain_head": f"{report.chain_head[0]}:{report.chain_head[1]}",
        "seconds": report.seconds,
        "phases": ", ".join(f"{k} {v:.2f} s" for k, v in report.phases.items()),
        "removed": ", ".join(report.removed) or None,
    }
    print_fields(fields, args.json)
    return 0
