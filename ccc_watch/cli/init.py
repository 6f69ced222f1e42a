"""Create the store for the vault (idempotent) and say where it is. While a daemon (or
another writer) holds the store, there is nothing to create: it says what exists,
read-only, and exits 0."""

from __future__ import annotations

import argparse

from ccc_watch.config import Config
from ccc_watch.errors import StoreLockedError
from ccc_watch.procs import running_pid
from ccc_watch.store import Store, open_readonly, open_store

HELP = "create the vault's store (idempotent)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Open the store writable (which creates it) and print where it is; when another
    process writes it, read it instead and say who; exit 0 either way."""
    vault = cfg.require_vault().resolve()
    data_dir = cfg.resolved_data_dir()
    try:
        with open_store(data_dir, backend=cfg.backend, vault_root=vault) as store:
            print(f"store ready: {_described(store)}")
    except StoreLockedError:
        # The writer made it: a store exists. Read it without waiting on the writer.
        with open_readonly(data_dir, backend=cfg.backend, vault=vault) as store:
            pid = running_pid(data_dir)
            holder = f"the daemon (pid {pid})" if pid and pid > 0 else "another process"
            print(f"store ready: {_described(store)}; in use by {holder}, nothing changed")
    return 0


def _described(store: Store) -> str:
    return f"{store.path} ({store.backend.name}, {len(store)} records)"
