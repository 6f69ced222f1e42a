"""Index every file of the vault into a new store and swap it in atomically.

Exit code 0 when every file got a clean record, 1 when some could not be read
(they still got a record with the reason, and the rest landed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ccc_watch.cli._common import add_json, say
from ccc_watch.config import Config
from ccc_watch.daemon import control
from ccc_watch.log.safe import shown
from ccc_watch.store import MIRROR_FILE

HELP = "index every file into a new store, swapped in atomically"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--json and --dry-run."""
    add_json(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would change without writing"
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Rebuild (through the daemon when one runs) and print the report; with --quiet,
    only the files that failed."""
    from ccc_watch.changes.rebuild import rebuild_vault

    def ask_daemon(data_dir: Path, pid: int, request: dict[str, Any]) -> dict[str, Any]:
        say(args, f"asking the running daemon (pid {pid}) to rebuild...", err=True)
        return control.ask(data_dir, pid, request)

    report = rebuild_vault(cfg, dry_run=args.dry_run, ask_daemon=ask_daemon)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 1 if report.failed else 0
    verb = "would index" if report.dry_run else "indexed"
    say(
        args,
        f"{verb} {report.indexed} of {report.seen} files in {report.seconds:.2f} s: "
        f"{report.added} new, {report.changed} changed, {report.unchanged} unchanged, "
        f"{report.removed} removed, {len(report.failed)} failed, "
        f"{len(report.skipped)} skipped",
    )
    for item in report.failed:
        print(f"failed: {shown(item['path'])}: {shown(item['reason'])}")
    for item in report.warnings + report.skipped:
        say(args, f"note: {shown(item['path'])}: {shown(item['reason'])}")
    if not report.dry_run:
        say(args, f"store: {report.store}")
        say(args, f"mirror: {cfg.resolved_data_dir() / MIRROR_FILE}")
    return 1 if report.failed else 0
