"""Install, remove or inspect the service that runs `ccc-watch run` at login (a
systemd user unit, a launchd agent or a Windows scheduled task), given an explicit
config file that names the vault; without an action, print what install would
write and where."""

from __future__ import annotations

import argparse
import sys

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
        help="install (and start), uninstall, status, print (default): the "
        "rendered file and where it would go, or hardening: the optional systemd "
        "sandbox drop-in",
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
    """Do the action: progress lines on stderr as they happen, the rendered file or
    the service manager's answer on stdout; its exit code."""
    outcome = service.run(
        args.action,
        cfg,
        platform=args.platform,
        name=args.name,
        explicit_config=getattr(args, "config", None),
        report=lambda line: print(line, file=sys.stderr, flush=True),
    )
    sys.stdout.write(outcome.output)
    return outcome.exit_code
