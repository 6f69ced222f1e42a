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
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

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
from ccc_watch.config import CONFIG_ENV, SETTINGS, Config, default_config_file, load
from ccc_watch.errors import EXIT_CODES, EXIT_INTERRUPTED, CccWatchError, os_exit_code
from ccc_watch.log.safe import shown
from ccc_watch.procs import private_umask


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


SHOWN_SETTINGS = 3  # settings flags named in a command's one line about the shared ones
# The exit codes every command's --help names (errors.EXIT_CODES has them all).
SHORT_EXIT_CODES = {0: "success", 1: "failure or differences", 2: "usage error", 78: "bad setting"}


class _Formatter(argparse.HelpFormatter):
    """argparse's own, except that a paragraph with indented lines under its first (the
    exit codes) is kept as written rather than reflowed."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n\n".join(
            textwrap.indent(part, indent) if "\n  " in part else fill(part, width, indent)
            for part in text.split("\n\n")
        )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that answers a mistyped command or choice with the closest
    one ("did you mean"), and knows its commands' parsers."""

    commands: dict[str, argparse.ArgumentParser]

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        what = "command" if isinstance(action, argparse._SubParsersAction) else "choice"
        name = "" if what == "command" else f"{action.metavar or action.dest}: "
        raise argparse.ArgumentError(None, name + did_you_mean(what, str(value), choices))


def did_you_mean(what: str, given: str, known: Iterable[str], where: str = "") -> str:
    """One line naming an unknown command, choice or option and the closest known one
    (difflib), or what to read when none is close (`ccc-watch{where} --help`)."""
    import difflib  # only for a mistake: ~7 ms of start-up otherwise

    known = [str(k) for k in known]
    close = difflib.get_close_matches(given, known, n=1)
    if close:
        return f"unknown {what} '{shown(given)}'; did you mean {close[0]!r}?"
    if what == "choice":
        return f"unknown choice '{shown(given)}' (choose from {', '.join(map(repr, known))})"
    return f"unknown {what} '{shown(given)}' (`ccc-watch{where} --help` lists them)"


def _add_settings(parser: argparse.ArgumentParser, *, hidden: bool) -> None:
    """The settings flags, on the main parser (listed) or on a command's (hidden: the
    command's own options come first, and one line of its epilog names these).

    SUPPRESS: a flag not given sets nothing, so the same flags can stand before or after
    the command without one side's default overwriting the other's value."""
    group: argparse._ActionsContainer = parser
    if not hidden:
        group = parser.add_argument_group(
            "settings",
            "Each setting is taken from its flag, else its environment variable, else the "
            'config file, else its default (README "Configuration"); the flags work '
            "before or after COMMAND.",
        )

    def about(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS
        if hidden
        else f"TOML config file (env {CONFIG_ENV}; default: {default_config_file()})",
    )
    for s in SETTINGS:
        group.add_argument(
            s.flag,
            dest=s.key,
            metavar=s.key.upper(),
            default=argparse.SUPPRESS,
            help=about(f"{s.help} (env {s.env})"),
        )


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print only results and errors: no progress, notes or warnings",
    )


def _exit_codes(short: bool) -> str:
    if short:
        codes = ", ".join(f"{code} {text}" for code, text in SHORT_EXIT_CODES.items())
        return f"exit codes: {codes}; `ccc-watch --help` lists the others"
    width = max(len(str(c)) for c in EXIT_CODES)
    rows = "\n".join(f"  {c:>{width}}  {text}" for c, text in EXIT_CODES.items())
    return f"exit codes:\n{rows}"


def _shared_line() -> str:
    flags = ["--config FILE", *(s.flag for s in SETTINGS[:SHOWN_SETTINGS])]
    more = len(SETTINGS) - SHOWN_SETTINGS
    return (
        f"shared settings: {', '.join(flags)} and {more} more, before or after the "
        'command: `ccc-watch --help` lists them, README "Configuration" explains them'
    )


def build_parser() -> _Parser:
    """The argument parser, one subcommand per entry of COMMANDS."""
    parser = _Parser(
        prog="ccc-watch",
        usage="ccc-watch [-h] [--version] [-q] [SETTINGS] COMMAND [ARGS]",
        description="Keep a redb index and a DuckDB mirror of an Obsidian vault.",
        epilog="`ccc-watch COMMAND --help` shows a command's own options.\n\n"
        + _exit_codes(short=False),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"ccc-watch {__version__}")
    _add_quiet(parser)
    sub = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True, prog="ccc-watch"
    )
    _add_settings(parser, hidden=False)  # after the commands: a long list
    parser.commands = {}
    epilog = _shared_line() + "\n\n" + _exit_codes(short=True)
    # Made once and copied into each command (as `parents`): adding 33 arguments to
    # each of 24 parsers one by one costs ~13 ms of every start-up.
    hidden = _Parser(add_help=False)
    _add_settings(hidden, hidden=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            epilog=epilog,
            formatter_class=_Formatter,
            parents=[hidden],  # not listed: the epilog names them in one line
        )
        module.add_arguments(p)  # its own options first
        _add_quiet(p)
        p.set_defaults(handler=module.run)
        parser.commands[name] = p
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line parsed; a mistake (exit 2) is named in one line after the
    usage of the command it was given to, with the closest option when one is close."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    _unknown_before_the_command(parser, argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = parser.commands[args.command]
        first = extra[0]
        if first.startswith("-"):
            options = [o for action in command._actions for o in action.option_strings]
            given = first.partition("=")[0]
            command.error(did_you_mean("option", given, options, f" {args.command}"))
        command.error(f"unexpected argument '{shown(first)}'")
    return args


def _unknown_before_the_command(parser: _Parser, argv: list[str]) -> None:
    """A usage error for an unknown option before the command, which argparse would
    pass over, taking its value for the command (`--vualt V status`: command 'V')."""
    # nargs 0: a flag (--quiet, --help, --version); any other takes the next argument
    takes_value = {o for a in parser._actions if a.nargs != 0 for o in a.option_strings}
    known = {o for a in parser._actions for o in a.option_strings}
    args = iter(argv)
    for arg in args:
        if arg == "--" or not arg.startswith("-"):
            return  # the command
        name = arg.partition("=")[0]
        abbreviated = name.startswith("--") and any(k.startswith(name) for k in known)
        if name not in known and not abbreviated:  # argparse takes a unique abbreviation
            parser.error(did_you_mean("option", name, known))
        if arg in takes_value:
            next(args, None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ccc-watch` console script: parse, load the settings, set up
    logging, run the command; every CccWatchError becomes one line and its exit code."""
    args = parse(argv)
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
        from ccc_watch.log import progress, sinks

        args.quiet = getattr(args, "quiet", False)  # SUPPRESS: absent unless given
        # stderr: warnings off a terminal, errors only when quiet; `run` also the log file
        sinks.setup(cfg, command=args.command, quiet=args.quiet)
        progress.enable(args.command != "run" and not args.quiet)  # on a terminal only
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
