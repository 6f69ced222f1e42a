"""Verify the store file's checksums (needs the daemon stopped)."""

from __future__ import annotations

import argparse

from ccc_watch.config import Config
from ccc_watch.errors import StoreMissingError
from ccc_watch.store import open_store, store_file

HELP = "verify the store's checksums (daemon stopped)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Check the store's integrity; exit 0 when sound, 1 when damaged."""
    data_dir = cfg.resolved_data_dir()
    if not store_file(data_dir, cfg.backend).exists():  # a writable open would create it
        raise StoreMissingError(f"no store yet for {cfg.require_vault()}; run `ccc-watch init`")
    vault = cfg.require_vault().resolve()
    with open_store(data_dir, backend=cfg.backend, vault_root=vault) as store:
        ok = store.check_integrity()
        print(f"{'ok' if ok else 'DAMAGED (repaired what it could)'}: {store.path}")
    return 0 if ok else 1
