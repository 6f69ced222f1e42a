"""Create the store for the vault (idempotent) and say where it is."""

from __future__ import annotations

import argparse

from ccc_watch.config import Config
from ccc_watch.store import open_store

HELP = "create the vault's store (idempotent)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Open the store writable (which creates it) and print where it is; exit 0."""
    vault = cfg.require_vault().resolve()
    with open_store(cfg.resolved_data_dir(), backend=cfg.backend, vault_root=vault) as store:
        print(f"store ready: {store.path} ({store.backend.name}, {len(store)} records)")
    return 0
