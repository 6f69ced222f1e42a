"""Show every setting, its value and where it came from."""

from __future__ import annotations

import argparse

from ccc_watch import config
from ccc_watch.cli._common import add_json, print_fields

HELP = "show the resolved settings and where each came from"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--json."""
    add_json(parser)


# How the text output names where the config file's name came from.
FROM = {"flag": "--config", "env": config.CONFIG_ENV, "default": "the default path"}


def run(args: argparse.Namespace, cfg: config.Config) -> int:
    """Print the settings with their sources, the config file and where its name came
    from, the data dir and the log file as resolved; exit 0."""
    values = dict(cfg.values)
    if values.get("vault") is not None:
        values["data_dir"] = cfg.resolved_data_dir()
        values["log_file"] = cfg.resolved_log_file()
    # none: no file was read (the default one is absent; `service` may name a new one)
    source = "none" if cfg.config_file is None else cfg.config_from
    if args.json:
        print_fields(
            {
                "config_file": cfg.config_file,
                "config_from": source,
                "settings": values,
                "sources": dict(cfg.sources),
            },
            as_json=True,
        )
        return 0
    if cfg.config_file is None:
        shown = f"none: all defaults ({config.default_config_file()} is absent)"
    else:
        shown = f"{cfg.config_file}  [{FROM[cfg.config_from]}]"
    print_fields(
        {"config_file": shown} | {k: f"{v}  [{cfg.sources[k]}]" for k, v in values.items()},
        as_json=False,
    )
    return 0
