"""Make the key that encrypts backups: `ccc-watch key new FILE` writes 32 random bytes as
64 hexadecimal digits to a new file, 0600, never over an existing one. Where ccc-watch
looks for the key, in this order: the OS keyring (service ccc-watch, user the vault id,
as `ccc-watch info` shows it), the systemd credential ccc-watch.key, the key file named
by --key-file / CCC_WATCH_KEY_FILE / key_file. Keep a copy of the key away from the
machine: without it, an encrypted archive cannot be restored (the vault itself never
depends on it). The same key seals CONFIDENTIAL text under confidential_text = seal.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ccc_watch.config import Config

HELP = "make a new backup key file (key new FILE)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The action (new) and FILE."""
    parser.add_argument("action", choices=["new"], help="new: write a fresh key to FILE")
    parser.add_argument("file", type=Path, metavar="FILE", help="the key file to create")


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Write the key file and say where; the key itself is never printed."""
    from ccc_watch.keys import forbidden_folders, new_key_file

    path = args.file.expanduser().absolute()
    new_key_file(path, forbidden_folders(cfg))
    print(
        f"wrote a new key to {path} (0600); use it with --key-file or key_file, and keep "
        "a copy elsewhere: encrypted backups cannot be restored without it"
    )
    return 0
