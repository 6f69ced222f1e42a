"""The `ccc-watch` command line: a thin layer over the library.

One module per command, each of the same shape: its docstring is the command's
description (`ccc-watch CMD --help`), HELP its line in `ccc-watch --help`,
add_arguments(parser) adds its own options, and run(args, cfg) calls the library,
prints, and returns the exit code. The library raises; main() turns every
CccWatchError into one line on stderr and the error's exit code (78 for a bad
setting).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from ccc_watch import __version__
from ccc_watch.cli import (
    audit,
    backup,
    check,
    drift,
    dump,
    events,
    export,
    get,
    history,
    info,
    init,
    key,
    log,
    manifest,
    mirror,
    nodes,
    rebuild,
    restore,
    run,
    scan,
    service,
    sql,
    status,
    verify,
)
from ccc_watch.cli import config as config_command
from ccc_watch.config import SETTINGS, Config, load
from ccc_watch.errors import CccWatchError, os_exit_code
from ccc_watch.log.safe import shown
from ccc_watch.procs import private_umask

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


class CommandModule(Protocol):
    """What every command module provides."""

    __name__: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, cfg: Config) -> int: ...


class Command(NamedTuple):
    """A registered command: its module, and its line in `ccc-watch --help`."""

    module: CommandModule
    help: str


# In the order of README.md's command table; a test holds the two together.
MODULES: tuple[CommandModule, ...] = (
    config_command,
    init,
    info,
    check,
    rebuild,
    dump,
    get,
    run,
    status,
    scan,
    verify,
    mirror,
    sql,
    export,
    service,
    log,
    audit,
    history,
    events,
    manifest,
    nodes,
    drift,
    backup,
    restore,
    key,
)
# The command's name is its module's.
COMMANDS: dict[str, Command] = {m.__name__.rpartition(".")[2]: Command(m, m.HELP) for m in MODULES}


def _settings_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a flag not given sets nothing, so the same flags can stand before or
    # after the command without one side's default overwriting the other's value.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML config file (env CCC_WATCH_CONFIG)"
    )
    for s in SETTINGS:
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
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
        )
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ccc-watch` console script: parse, load the settings, set up
    logging, run the command; every CccWatchError becomes one line and its exit code."""
    args = build_parser().parse_args(argv)
    # Everything a command creates (data dir, databases, spill and log files, exports)
    # is private from the moment it exists; children (workers, the flusher) inherit it.
    with private_umask():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        flags = {s.key: getattr(args, s.key, None) for s in SETTINGS}
        cfg = load(
            flags,
            config_file=getattr(args, "config", None),
            must_exist=args.command != "service",  # `service install` may create it
        )
        from ccc_watch.log import sinks

        sinks.setup(cfg, command=args.command)  # stderr; for `run` also the log file
        handler: Callable[[argparse.Namespace, Config], int] = args.handler
        code = handler(args, cfg)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except CccWatchError as e:  # a message may quote a file name or a daemon's answer
        print(f"ccc-watch: {shown(e)}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `ccc-watch dump | head -1`: the reader has had enough
        _drop_stdout()
        return 0
    except OSError as e:  # a file no library call wrapped (full disk, permission): one line
        print(f"ccc-watch: {shown(e)}", file=sys.stderr)
        return os_exit_code(e)
    except KeyboardInterrupt:
        print("ccc-watch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what is left in
    its buffer finds no closed pipe to complain about."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (tests capture it)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
