"""Reading the daemon's log back: the lines `ccc-watch log` shows.

`read` returns the selected lines of the log file (with `since`, of its rotated files
from that time first, oldest first); `follow` does the same, then keeps returning each
new line across rotations, like `tail -F`. Both are generators of lines without their
newline: the caller prints them. The file's shape is sinks.FILE_FORMAT.

A log file may hold what this version never writes: one written by an older version,
or edited by hand. So lines are split at "\n" only (never at a carriage return), each
line is given back escaped (log.safe.shown: no control character reaches the
terminal), and a drift or APPLIED entry is a line of printable text in the documented
shape, never a line that merely starts like one.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import IO

from ccc_watch import config
from ccc_watch.errors import CccWatchError
from ccc_watch.log.applied import APPLIED_MESSAGE
from ccc_watch.log.safe import shown
from ccc_watch.log.sinks import log_path

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
# An APPLIED entry (log.applied), as documented in the README ("Logs").
APPLIED_ENTRY = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}) \| INFO     \| "
    + APPLIED_MESSAGE.pattern
)
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# --- which files --------------------------------------------------------------------


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


# --- which lines --------------------------------------------------------------------


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
    """Which lines to keep: entries from `since` on (with their continuation lines);
    with `drift` and/or `ops` only drift entries and/or APPLIED entries."""

    def __init__(self, since: datetime | None, drift: bool, ops: bool = False) -> None:
        self.since, self.drift, self.ops = since, drift, ops
        self.cutoff = 0.0 if since is None else since.timestamp()
        self.keep = since is None  # for continuation lines: whether their entry was kept

    def __call__(self, line: str) -> bool:
        m = ENTRY.match(line)
        if m is None:
            return self.keep and not (self.drift or self.ops)
        self.keep = self.since is None or _stamp(m["time"]) >= self.since
        if not self.keep or not (self.drift or self.ops):
            return self.keep
        if not line.isprintable():  # neither kind holds anything else
            return False
        return bool(
            (self.drift and DRIFT_ENTRY.match(line)) or (self.ops and APPLIED_ENTRY.match(line))
        )


# --- reading ------------------------------------------------------------------------


def read(
    cfg: config.Config,
    *,
    drift: bool = False,
    since: datetime | None = None,
    ops: bool = False,
) -> Iterator[str]:
    """The selected lines of the log file: with `since`, those of the rotated files from
    that time first (oldest first); with `drift`, only drift entries; with `ops`, only
    the APPLIED entries (both: both). CccWatchError at once when there is no log yet,
    and while reading when a file cannot be read."""
    return _read(cfg, drift=drift, ops=ops, since=since, follow=False)


def follow(
    cfg: config.Config,
    *,
    drift: bool = False,
    since: datetime | None = None,
    poll: float = 0.2,
    ops: bool = False,
) -> Iterator[str]:
    """Like `read`, but without `since` only the last TAIL_LINES lines of the file, then
    each new line as it is written, across rotations (like `tail -F`); never ends."""
    return _read(cfg, drift=drift, ops=ops, since=since, follow=True, poll=poll)


def _read(
    cfg: config.Config,
    *,
    drift: bool,
    since: datetime | None,
    follow: bool,
    poll: float = 0.2,
    ops: bool = False,
) -> Iterator[str]:
    path = log_path(cfg)
    older = rotated_files(path)
    if not path.exists() and not older:  # said now, not at the first line
        raise CccWatchError(
            f"no log yet for {cfg.require_vault()}: {path} (`ccc-watch run` writes it)"
        )
    select = _Select(since, drift, ops)
    return _selected(path, older if since is not None else [], select, follow, poll)


def _selected(
    path: Path, older: list[Path], select: _Select, follow: bool, poll: float
) -> Iterator[str]:
    try:
        for old in older:
            # A file last written before `since` holds nothing newer: skip reading it.
            if _mtime(old) >= select.cutoff:
                yield from (shown(line) for line in _lines(old) if select(line))
        if follow:
            yield from map(shown, _follow(path, select, tail=select.since is None, poll=poll))
        else:
            yield from (shown(line) for line in _lines(path) if select(line))
    except (OSError, EOFError, gzip.BadGzipFile) as e:  # unreadable, or a damaged .gz
        raise CccWatchError(f"cannot read the log: {e}") from None


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        f = opener(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    except FileNotFoundError:  # rotated or deleted since it was listed
        return
    with f:
        for line in f:
            yield line.removesuffix("\n")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _follow(path: Path, select: Callable[[str], bool], *, tail: bool, poll: float) -> Iterator[str]:
    """Path's selected lines (only the last TAIL_LINES with tail), then each new one:
    when the name points at a new file (rotation) the old one is read to its end first,
    then the new one from its start; a truncated file is read again from its start."""
    f: IO[str] | None = None
    ident: tuple[int, int] | None = None
    pending = ""
    first = True
    try:
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
                yield from deque(chosen, maxlen=TAIL_LINES) if first and tail else chosen
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
                    yield pending
                pending = ""
                f.close()
                f = None
            elif st.st_size < f.tell():  # truncated
                f.seek(0)
                pending = ""
            else:
                time.sleep(poll)
    finally:
        if f is not None:
            f.close()
