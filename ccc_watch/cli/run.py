"""Watch the vault and keep the store and the mirror equal to it, until SIGTERM or
SIGINT (a second one cuts short what it waits for, still closing the store, and exits
1). SIGHUP reloads the configuration."""

from __future__ import annotations

import argparse

from ccc_watch.config import Config

HELP = "watch the vault and keep the store and the mirror up to date"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own (--metrics is a setting)."""


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Run the daemon in this process; its exit code."""
    from ccc_watch.daemon.daemon import Daemon

    return Daemon(cfg).run()
