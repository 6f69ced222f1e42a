"""Reconcile the store with the vault once (what the daemon does at start-up), then
bring the mirror up to date. Prints one DRIFT line per difference found."""

from __future__ import annotations

import argparse

from ccc_watch.cli._common import say
from ccc_watch.config import Config

HELP = "reconcile the store with the vault once, then the mirror"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Scan, then print the drift found and a summary line (not with --quiet); exit 0."""
    from ccc_watch.changes.reconcile import scan

    result = scan(cfg)
    for drift in result.drift:
        print(drift.line())
    say(
        args,
        f"scanned {result.seen} files ({result.hashed} read) in {result.seconds:.2f} s: "
        f"{result.changes} changes",
    )
    return 0
