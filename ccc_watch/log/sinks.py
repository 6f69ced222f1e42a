"""Logging: where the daemon's log goes and in what shape (log.reader reads it back).

`setup(cfg, command=..., quiet=...)` is called once per process by the CLI. For `run`
it adds a file sink, `log_path(cfg)`, rotated at `log_max_bytes` into gzip-compressed
files of which `log_retention` are kept, at INFO, and a stderr sink at loguru's usual
level and format. Every other command's stderr gets the entries a person wants beside
the command's results, in the file's own shape (no source locations): INFO and up on a
terminal (in colour), WARNING and up otherwise (a pipe, a file, cron), ERROR only with
--quiet; $LOGURU_LEVEL, for debugging, brings back loguru's usual format from that
level. When stderr is the systemd journal, lines are prefixed with their syslog
priority instead (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug; see
sd-daemon(3)). No sink prints variable values in a traceback (diagnose off).

Every sink writes each message as one line of printable text (log.safe.shown), and a
traceback as Python prints it with each exception's message on one escaped line, so
that nothing a message quotes (a file name, say) can start a line of its own, forge
an entry or reach a terminal as a control sequence.

A line of the file (a traceback's lines follow their entry; none looks like an entry):

    2026-11-27 14:03:07.412+0100 | WARNING  | DRIFT kind=created-offline path=a.md detail=""
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from ccc_watch import config
from ccc_watch.log.safe import shown, traceback_lines

if TYPE_CHECKING:
    from loguru import Message, Record

FILE_LEVEL = "INFO"  # DEBUG lines are many: they go to stderr only
# The message and the traceback, made safe by _formatter, are read from these fields.
_LINE, _TRACEBACK = "{extra[ccc_line]}", "{extra[ccc_traceback]}"
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSSZZ} | {level: <8} | " + _LINE + "\n" + _TRACEBACK
# loguru's own default, for stderr outside the journal (as before this module existed).
STDERR_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | "
    "<level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - "
    f"<level>{_LINE}</level>\n{_TRACEBACK}"
)
JOURNAL_FORMAT = _LINE + "\n" + _TRACEBACK
# A command's stderr (not `run`'s): the file's shape, coloured on a terminal.
COMMAND_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSSZZ}</green> | <level>{level: <8}</level> | "
    f"<level>{_LINE}</level>\n{_TRACEBACK}"
)

_handlers: list[int] = []  # the sinks setup added (the daemon may add its own)
_default_removed = False


# --- where ----------------------------------------------------------------------


def log_path(cfg: config.Config) -> Path:
    """The daemon's log file: the `log_file` setting, else `<user log dir>/<name>.log`
    where name is the data dir's folder name; ConfigError when it is inside the vault
    (see Config.resolved_log_file)."""
    return cfg.resolved_log_file()


# --- setup ------------------------------------------------------------------------


def _formatter(form: str) -> Callable[[Record], str]:
    """A loguru format function: it puts the record's message and traceback, made safe,
    where `form` reads them, and returns `form`."""

    def format_record(record: Record) -> str:
        extra = record["extra"]
        extra["ccc_line"] = shown(record["message"])
        exc = record["exception"]
        lines = [] if exc is None else traceback_lines(exc.type, exc.value, exc.traceback)
        extra["ccc_traceback"] = "".join(f"{line}\n" for line in lines)
        return form

    return format_record


class _Stderr:
    """sys.stderr as it is when a line is written (tests and embedders replace it)."""

    def write(self, text: str) -> None:
        sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def journald_stderr() -> bool:
    """Whether stderr is connected to the systemd journal: $JOURNAL_STREAM ("DEV:INO",
    set by systemd for its services) names the file behind file descriptor 2."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def priority(level_no: int) -> int:
    """The syslog priority of a loguru level number."""
    for floor, prio in ((50, 2), (40, 3), (30, 4), (25, 5), (20, 6)):
        if level_no >= floor:
            return prio
    return 7


def _journal_sink(message: Message) -> None:
    # Every line, a traceback's too, gets the prefix: journald reads each as one entry.
    prefix = f"<{priority(message.record['level'].no)}>"
    lines = str(message).removesuffix("\n").split("\n")  # only the sink's own breaks
    sys.stderr.write("".join(f"{prefix}{line}\n" for line in lines))
    sys.stderr.flush()


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def child_setup() -> None:
    """Logging for a helper process the daemon starts (mirror flusher, index workers):
    stderr only, which the daemon's service manager collects; no variable values."""
    logger.remove()
    level = os.environ.get("LOGURU_LEVEL", "INFO")
    logger.add(
        sys.stderr,
        level=level,
        format=_formatter(STDERR_FORMAT),
        backtrace=False,
        diagnose=False,
    )


def stderr_level(command: str, *, quiet: bool = False) -> tuple[str, bool]:
    """The lowest level a command's stderr shows, and whether in loguru's usual format
    (with source locations): `run` and $LOGURU_LEVEL keep that; otherwise INFO on a
    terminal, WARNING off one, ERROR when quiet."""
    explicit = os.environ.get("LOGURU_LEVEL")
    if quiet:
        return "ERROR", False
    if command == "run" or explicit:
        return explicit or "DEBUG", True
    return ("INFO" if sys.stderr.isatty() else "WARNING"), False


def setup(cfg: config.Config, *, command: str, quiet: bool = False) -> None:
    """Configure loguru for this process: stderr for every command (see stderr_level),
    plus the rotating log file for `run`. Calling it again replaces what an earlier
    call added."""
    global _default_removed
    for handler in _handlers:
        logger.remove(handler)
    _handlers.clear()
    if not _default_removed:
        with contextlib.suppress(ValueError):  # loguru's own stderr sink: shows variables
            logger.remove(0)
        _default_removed = True
    level, usual = stderr_level(command, quiet=quiet)
    if journald_stderr():
        _handlers.append(
            logger.add(
                _journal_sink,
                level=level,
                format=_formatter(JOURNAL_FORMAT),
                backtrace=False,
                diagnose=False,
            )
        )
    else:
        _handlers.append(
            logger.add(
                _Stderr(),
                level=level,
                format=_formatter(STDERR_FORMAT if usual else COMMAND_FORMAT),
                backtrace=False,
                diagnose=False,
            )
        )
    if command != "run":
        return
    path = log_path(cfg)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_file = LogFile(
            path,
            rotation=int(cfg.log_max_bytes),
            retention=int(cfg.log_retention),
            compression="gz",
            encoding="utf-8",
            opener=_private_opener,
        )
    except OSError as e:  # an unwritable or full log folder must not stop the daemon
        logger.warning(
            "cannot write the log file {}: {}; logging to stderr only (make its folder "
            "writable, or choose another log_file)",
            shown(path),
            shown(e.strerror or e),
        )
        return
    _handlers.append(
        logger.add(
            log_file,
            level=FILE_LEVEL,
            format=_formatter(FILE_FORMAT),
            enqueue=True,  # one writer thread: threads and rotation never interleave
            backtrace=False,
            diagnose=False,
            colorize=False,
        )
    )


class LogFile:
    """loguru's own rotating, compressing file sink (what `logger.add(path, ...)` makes),
    kept from failing loudly: loguru reports a sink's error with a traceback on stderr for
    every entry. A write that fails (a full disk, the folder deleted or made unwritable)
    is said once, in one line; the file skips entries (stderr still has them) until a
    write works again, which is said too."""

    encoding = "utf-8"

    def __init__(self, path: Path, **options: Any) -> None:
        # Private to loguru, but the class it writes every file sink with (0.7).
        from loguru import _file_sink

        self.path = path
        make: Any = _file_sink.FileSink
        # Braces are loguru's placeholders in a file name: keep the name literal.
        literal = str(path).replace("{", "{{").replace("}", "}}")
        self._sink: Any = make(literal, **options)
        self._failing = False

    def write(self, message: str) -> None:
        """Write one entry (from loguru's writer thread)."""
        try:
            self._sink.write(message)
        except OSError as e:
            if not self._failing:
                self._failing = True
                logger.warning(
                    "cannot write the log file {}: {}; logging to stderr only until it can",
                    self.path,
                    e.strerror or e,
                )
            return
        if self._failing:
            self._failing = False
            logger.info("writing the log file {} again", self.path)

    def stop(self) -> None:
        """Close the file (when the handler is removed)."""
        with contextlib.suppress(OSError):
            self._sink.stop()
