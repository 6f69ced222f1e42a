"""The `ccc-watch` command line: a thin layer over the library.

Each command parses its options and calls one library function; every CccWatchError
becomes one line on stderr and the error's exit code (78 for a bad setting).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ccc_watch import __version__, config
from ccc_watch.errors import CccWatchError, StoreMissingError
from ccc_watch.store import open_store, store_file

Handler = Callable[[argparse.Namespace, config.Config], int]


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        width = max(map(len, data), default=0)
        for key, value in data.items():
            print(f"{key:<{width}}  {'-' if value is None else value}")


def cmd_config(args: argparse.Namespace, cfg: config.Config) -> int:
    """Show every setting, its value and where it came from."""
    values = dict(cfg.values)
    if values.get("vault") is not None:
        values["data_dir"] = cfg.resolved_data_dir()
    if args.json:
        _print(
            {"config_file": cfg.config_file, "settings": values, "sources": dict(cfg.sources)},
            as_json=True,
        )
        return 0
    shown = cfg.config_file or f"{config.default_config_file()} (absent: all defaults)"
    _print(
        {"config_file": shown} | {k: f"{v}  [{cfg.sources[k]}]" for k, v in values.items()},
        as_json=False,
    )
    return 0


def cmd_init(args: argparse.Namespace, cfg: config.Config) -> int:
    """Create the store for the vault (idempotent) and say where it is."""
    vault = cfg.require_vault().resolve()
    with open_store(cfg.resolved_data_dir(), backend=cfg.backend, vault_root=vault) as store:
        print(f"store ready: {store.path} ({store.backend.name}, {len(store)} records)")
    return 0


def cmd_info(args: argparse.Namespace, cfg: config.Config) -> int:
    """Describe the vault's store without writing to it (safe while the daemon runs)."""
    data_dir = cfg.resolved_data_dir()
    try:
        store = open_store(data_dir, backend=cfg.backend, readonly=True)
    except StoreMissingError:
        raise StoreMissingError(
            f"no store yet for {cfg.require_vault()} at {store_file(data_dir, cfg.backend)}; "
            "run `ccc-watch init`"
        ) from None
    with store:
        data = {
            "store": str(store.path),
            "backend": store.backend.name,
            "size_bytes": store.path.stat().st_size,
            **{f"meta.{k}": v for k, v in sorted(store.meta.items())},
            "records": len(store),
            "changelog_head": store.head(),
        }
    _print(data, args.json)
    return 0


def cmd_check(args: argparse.Namespace, cfg: config.Config) -> int:
    """Verify the store file's checksums (needs the daemon stopped)."""
    data_dir = cfg.resolved_data_dir()
    if not store_file(data_dir, cfg.backend).exists():
        raise StoreMissingError(f"no store yet for {cfg.require_vault()}; run `ccc-watch init`")
    with open_store(
        cfg.resolved_data_dir(), backend=cfg.backend, vault_root=cfg.require_vault().resolve()
    ) as store:
        ok = store.check_integrity()
        print(f"{'ok' if ok else 'DAMAGED (repaired what it could)'}: {store.path}")
    return 0 if ok else 1


COMMANDS: dict[str, tuple[Handler, str]] = {
    "config": (cmd_config, "show the resolved settings and where each came from"),
    "init": (cmd_init, "create the vault's store (idempotent)"),
    "info": (cmd_info, "describe the vault's store, read-only"),
    "check": (cmd_check, "verify the store's checksums (daemon stopped)"),
}


def _settings_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a flag not given sets nothing, so the same flags can stand before or
    # after the command without one side's default overwriting the other's value.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML config file (env CCC_WATCH_CONFIG)"
    )
    for s in config.SETTINGS:
        common.add_argument(
            s.flag, dest=s.key, metavar=s.key.upper(), help=f"{s.help} (env {s.env})"
        )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per entry of COMMANDS."""
    common = _settings_parser()
    parser = argparse.ArgumentParser(
        prog="ccc-watch",
        description="Keep a redb index and a DuckDB mirror of an Obsidian vault.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"ccc-watch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (handler, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=(handler.__doc__ or help_text).strip(),
        )
        if name in ("config", "info"):
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ccc-watch` console script."""
    args = build_parser().parse_args(argv)
    try:
        flags = {s.key: getattr(args, s.key, None) for s in config.SETTINGS}
        cfg = config.load(flags, config_file=getattr(args, "config", None))
        handler: Handler = args.handler
        return handler(args, cfg)
    except CccWatchError as e:
        print(f"ccc-watch: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
