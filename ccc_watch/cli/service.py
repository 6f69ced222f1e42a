"""Install, remove or inspect the service that runs `ccc-watch run` at login (a
systemd user unit, a launchd agent or a Windows scheduled task), given an explicit
config file that names the vault; without an action, print what install would
write and where."""

from __future__ import annotations

import argparse

from ccc_watch import service
from ccc_watch.config import Config

HELP = "install or remove the login service (systemd, launchd, Windows)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ACTION, --platform and --name."""
    parser.add_argument(
        "action",
        nargs="?",
        choices=service.ACTIONS,
        default="print",
        help="install (and start), uninstall, status, or print (default): the "
        "rendered file and where it would go",
    )
    parser.add_argument(
        "--platform",
        choices=service.PLATFORMS,
        help="the service manager (default: this OS's)",
    )
    parser.add_argument(
        "--name",
        help="one of several vaults: its own unit (ccc-watch@NAME.service), label "
        "or task, and config file NAME.toml beside config.toml",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Do the action; its exit code."""
    return service.run(
        args.action,
        cfg,
        platform=args.platform,
        name=args.name,
        explicit_config=getattr(args, "config", None),
    )
