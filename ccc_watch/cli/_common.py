"""What several commands share: printing fields, the --json flag, opening the store
and the mirror the settings name."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ccc_watch.config import Config
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.log.safe import shown
from ccc_watch.store import Store, open_readonly

if TYPE_CHECKING:  # DuckDB and Arrow load only for the commands that use the mirror
    from ccc_watch.mirror.mirror import Mirror


def add_json(parser: argparse.ArgumentParser) -> None:
    """Add --json, for a command that can print JSON instead of aligned fields."""
    parser.add_argument("--json", action="store_true", help="print JSON")


def print_fields(data: dict[str, Any], as_json: bool) -> None:
    """Print data as indented JSON, or as `key  value` lines with the values aligned."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        width = max(map(len, data), default=0)
        for key, value in data.items():
            print(f"{key:<{width}}  {'-' if value is None else shown(value)}")


def read_store(cfg: Config) -> Store:
    """The vault's store, read-only (safe while the daemon writes)."""
    return open_readonly(cfg.resolved_data_dir(), backend=cfg.backend, vault=cfg.require_vault())


def mirror_of(cfg: Config) -> Mirror:
    """The vault's DuckDB mirror."""
    from ccc_watch.mirror.mirror import Mirror

    return Mirror(cfg.resolved_data_dir(), IndexPolicy.from_settings(cfg))
