"""Logging: where the daemon's log goes, in what shape, and `ccc-watch log` to read it.

`setup(cfg, command=...)` is called once per process by the CLI. For `run` it adds a
file sink, `log_path(cfg)`, rotated at `log_max_bytes` into gzip-compressed files of
which `log_retention` are kept, at INFO; every command gets a stderr sink at loguru's
usual level and format, or, when stderr is the systemd journal, lines prefixed with
their syslog priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug; see
sd-daemon(3)). No sink prints variable values in a traceback (diagnose off).

A line of the file (continuation lines, e.g. a traceback, follow their entry as is):

    2026-11-27 14:03:07.412+0100 | WARNING  | DRIFT kind=created-offline path=a.md detail=""
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import platformdirs
from loguru import logger

from ccc_watch import config
from ccc_watch.errors import CccWatchError

if TYPE_CHECKING:
    from loguru import Message

FILE_LEVEL = "INFO"  # DEBUG lines are many: they go to stderr only
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSSZZ} | {level: <8} | {message}"
# loguru's own default, for stderr outside the journal (as before this module existed).
STDERR_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | "
    "<level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"
)
TAIL_LINES = 10  # what `log -f` shows before following, like tail

# The head of every entry in the file; continuation lines do not match it.
ENTRY = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}) \| (?P<level>[A-Z]+) *\| "
    r"(?P<message>.*)$"
)
# A drift entry, as documented in the README ("Logs").
DRIFT_ENTRY = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}) \| (?P<level>[A-Z]+) *\| "
    r'DRIFT kind=(?P<kind>[a-z-]+) path=(?P<path>"(?:[^"\\]|\\.)*"|\S+) '
    r'detail=(?P<detail>"(?:[^"\\]|\\.)*"|\S+)$'
)
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_handlers: list[int] = []  # the sinks setup added (the daemon may add its own)
_default_removed = False


# --- where ----------------------------------------------------------------------


def log_path(cfg: config.Config) -> Path:
    """The daemon's log file: the `log_file` setting, else `<user log dir>/<name>.log`
    where name is the data dir's folder name (other characters than letters, digits,
    `_` and `-` become `_`, so no two vaults' rotated files share a glob)."""
    if cfg.log_file is not None:
        return Path(cfg.log_file)
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", cfg.resolved_data_dir().name).strip("_") or "vault"
    return platformdirs.user_log_path(config.APP) / f"{name}.log"


def rotated_files(path: Path) -> list[Path]:
    """The files loguru rotated path into (`<stem>.<date>[.<n>]<suffix>[.gz]`), oldest
    first."""
    stamp = r"\.\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d{6}(?:\.\d+)?"
    pattern = re.compile(re.escape(path.stem) + stamp + re.escape(path.suffix) + r"(?:\.gz)?")
    found: list[tuple[int, str, Path]] = []
    try:
        for p in path.parent.iterdir():
            if pattern.fullmatch(p.name):
                with contextlib.suppress(FileNotFoundError):  # retention may delete it now
                    found.append((p.stat().st_mtime_ns, p.name, p))
    except FileNotFoundError:
        return []
    # While loguru compresses X.log into X.log.gz both exist, the .gz half written.
    names = {name for _, name, _ in found}
    return [p for _, name, p in sorted(found) if name.removesuffix(".gz") not in names - {name}]


# --- setup ------------------------------------------------------------------------


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
    sys.stderr.write("".join(f"{prefix}{line}\n" for line in str(message).splitlines()))
    sys.stderr.flush()


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def child_setup() -> None:
    """Logging for a helper process the daemon starts (mirror flusher, index workers):
    stderr only, which the daemon's service manager collects; no variable values."""
    logger.remove()
    level = os.environ.get("LOGURU_LEVEL", "INFO")
    logger.add(sys.stderr, level=level, format=STDERR_FORMAT, backtrace=False, diagnose=False)


def setup(cfg: config.Config, *, command: str) -> None:
    """Configure loguru for this process: stderr for every command, plus the rotating
    log file for `run`. Calling it again replaces what an earlier call added."""
    global _default_removed
    for handler in _handlers:
        logger.remove(handler)
    _handlers.clear()
    if not _default_removed:
        with contextlib.suppress(ValueError):  # loguru's own stderr sink: shows variables
            logger.remove(0)
        _default_removed = True
    level = os.environ.get("LOGURU_LEVEL", "DEBUG")
    if journald_stderr():
        _handlers.append(
            logger.add(
                _journal_sink, level=level, format="{message}", backtrace=False, diagnose=False
            )
        )
    else:
        _handlers.append(
            logger.add(
                _Stderr(), level=level, format=STDERR_FORMAT, backtrace=False, diagnose=False
            )
        )
    if command != "run":
        return
    path = log_path(cfg)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Braces are loguru's placeholders in a file name: keep the name literal.
    literal = str(path).replace("{", "{{").replace("}", "}}")
    _handlers.append(
        logger.add(
            literal,
            level=FILE_LEVEL,
            format=FILE_FORMAT,
            rotation=int(cfg.log_max_bytes),
            retention=int(cfg.log_retention),
            compression="gz",
            enqueue=True,  # one writer thread: threads and rotation never interleave
            backtrace=False,
            diagnose=False,
            encoding="utf-8",
            opener=_private_opener,
        )
    )


# --- `ccc-watch log` --------------------------------------------------------------


def parse_since(text: str) -> datetime:
    """An aware datetime from `10m`, `2h`, `1d`, `1w`, `30s` (ago), an ISO date
    (midnight), an ISO time (today) or an ISO date and time; local time unless the
    text gives an offset. ValueError when it is none of these."""
    m = _RELATIVE.match(text)
    if m:
        return datetime.now().astimezone() - timedelta(seconds=float(m[1]) * _UNITS[m[2]])
    value = text.strip()
    try:
        return datetime.fromisoformat(value).astimezone()
    except ValueError:
        pass
    try:
        at = dtime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (try 10m, 2h, 1d, 2026-11-27, 14:30 or 2026-11-27T14:30)"
        ) from None
    return datetime.combine(date.today(), at).astimezone()


def since_arg(text: str) -> datetime:
    """parse_since for argparse: a bad value is a usage error saying what would do."""
    try:
        return parse_since(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f%z")


class _Select:
    """Which lines to print: entries from `since` on (with their continuation lines),
    and with `drift` only drift entries."""

    def __init__(self, since: datetime | None, drift: bool) -> None:
        self.since, self.drift = since, drift
        self.cutoff = 0.0 if since is None else since.timestamp()
        self.keep = since is None  # for continuation lines: whether their entry was kept

    def __call__(self, line: str) -> bool:
        m = ENTRY.match(line)
        if m is None:
            return self.keep and not self.drift
        self.keep = self.since is None or _stamp(m["time"]) >= self.since
        return self.keep and (not self.drift or m["message"].startswith("DRIFT kind="))


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        f = opener(path, "rt", encoding="utf-8", errors="replace")
    except FileNotFoundError:  # rotated or deleted since it was listed
        return
    with f:
        for line in f:
            yield line.rstrip("\n")


def show(
    cfg: config.Config,
    *,
    follow: bool = False,
    drift: bool = False,
    since: datetime | None = None,
    out: IO[str] | None = None,
) -> int:
    """`ccc-watch log`: print the log file (with `since`, the rotated files from that
    time first, oldest first), only drift lines with `drift`; with `follow`, the last
    lines, then each new one, across rotations (like `tail -F`) until interrupted."""
    out = sys.stdout if out is None else out
    path = log_path(cfg)
    older = rotated_files(path)
    if not path.exists() and not older:
        raise CccWatchError(
            f"no log yet for {cfg.require_vault()}: {path} (`ccc-watch run` writes it)"
        )
    select = _Select(since, drift)
    try:
        for old in older if since is not None else []:
            # A file last written before `since` holds nothing newer: skip reading it.
            if _mtime(old) >= select.cutoff:
                _write(out, (line for line in _lines(old) if select(line)))
        if not follow:
            _write(out, (line for line in _lines(path) if select(line)))
            return 0
        _follow(path, select, out, tail=since is None)
    except BrokenPipeError:  # `ccc-watch log | head`: the reader has had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
    except KeyboardInterrupt:
        pass
    except (OSError, EOFError, gzip.BadGzipFile) as e:  # unreadable, or a damaged .gz
        raise CccWatchError(f"cannot read the log: {e}") from None
    return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _write(out: IO[str], lines: Iterable[str]) -> None:
    for line in lines:
        out.write(line + "\n")
    out.flush()


def _follow(
    path: Path, select: Callable[[str], bool], out: IO[str], *, tail: bool, poll: float = 0.2
) -> None:
    """Print path's selected lines (only the last TAIL_LINES with tail), then follow it:
    when the name points at a new file (rotation) the old one is read to its end first,
    then the new one from its start; a truncated file is read again from its start."""
    f: IO[str] | None = None
    ident: tuple[int, int] | None = None
    pending = ""
    first = True
    while True:
        if f is None:
            try:
                f = open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
            except FileNotFoundError:
                time.sleep(poll)
                continue
            st = os.fstat(f.fileno())
            ident = (st.st_dev, st.st_ino)
        chunk = f.read()
        if chunk:
            pending += chunk
            *lines, pending = pending.split("\n")
            chosen = (line for line in lines if select(line))
            if first and tail:
                _write(out, deque(chosen, maxlen=TAIL_LINES))
            else:
                _write(out, chosen)
            first = False
            continue
        first = False
        try:
            st = os.stat(path)
        except FileNotFoundError:
            time.sleep(poll)  # between loguru's rename and its new file
            continue
        if (st.st_dev, st.st_ino) != ident:  # rotated: the old file is read to its end
            if pending and select(pending):
                _write(out, [pending])
            pending = ""
            f.close()
            f = None
        elif st.st_size < f.tell():  # truncated
            f.seek(0)
            pending = ""
        else:
            time.sleep(poll)
