"""Show every setting, its value and where it came from."""

from __future__ import annotations

import argparse

from ccc_watch import config
from ccc_watch.cli._common import add_json, print_fields

HELP = "show the resolved settings and where each came from"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--json."""
    add_json(parser)


def run(args: argparse.Namespace, cfg: config.Config) -> int:
    """Print the settings with their sources (and the config file); exit 0."""
    values = dict(cfg.values)
    if values.get("vault") is not None:
        values["data_dir"] = cfg.resolved_data_dir()
    if args.json:
        print_fields(
            {"config_file": cfg.config_file, "settings": values, "sources": dict(cfg.sources)},
            as_json=True,
        )
        return 0
    shown = cfg.config_file or f"{config.default_config_file()} (absent: all defaults)"
    print_fields(
        {"config_file": shown} | {k: f"{v}  [{cfg.sources[k]}]" for k, v in values.items()},
        as_json=False,
    )
    return 0
