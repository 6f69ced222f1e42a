"""Asking the running daemon to do something: a request file plus SIGUSR1.

`ccc-watch rebuild` while a daemon runs must not swap the store under it; instead it
writes `<data_dir>/requests/<id>.json`, signals the daemon, and waits for
`<id>.answer.json`. The daemon keeps watching (events queue meanwhile), does the work
between two batches, and answers. Files rather than a socket: nothing to bind, the
same permissions as the data dir (0700), and a request survives a signal sent a moment
before the daemon installed its handler (it looks at the folder when it starts).

Neither side trusts the other's file: each is read only when it is a regular file of
this user, not a symlink, of bounded size, UTF-8 JSON of the expected shape. The
daemon drops any other request file (one log line, and the file is removed, so a
restart does not meet it again); `ask` turns a bad answer, or a request the daemon
dropped, into one error.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from loguru import logger

from ccc_watch.errors import CccWatchError
from ccc_watch.log.safe import shown
from ccc_watch.procs import pid_alive, replace_json, running_pid

REQUESTS = "requests"
# POSIX only: on Windows no daemon runs (running_pid finds none), so none is asked.
SIGNAL: int = getattr(signal, "SIGUSR1", 0)
REQUEST_MAX_BYTES = 64 * 1024  # a request is a few dozen bytes
# A rebuild's answer lists every file that failed or was skipped, with the reason.
ANSWER_MAX_BYTES = 64 * 1024 * 1024
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # what `ask` names its requests: uuid4().hex
_COMMAND_MAX = 64
_PID_MAX = 2**31 - 1  # pid_t: a larger number would overflow os.kill


class DaemonGoneError(CccWatchError):
    """The daemon stopped before it answered."""


class ControlFileError(CccWatchError):
    """A request or an answer file is not what ccc-watch writes."""


def ask(data_dir: Path, pid: int, request: dict[str, Any], poll: float = 0.1) -> dict[str, Any]:
    """Send a request to the daemon with this pid and wait for its answer (a JSON
    object). DaemonGoneError when it stops first; ControlFileError when the answer is
    not one, or the daemon dropped the request."""
    folder = data_dir / REQUESTS
    folder.mkdir(mode=0o700, exist_ok=True)
    rid = uuid.uuid4().hex
    sent = folder / f"{rid}.json"
    replace_json(sent, dict(request, pid=os.getpid()))
    answer = folder / f"{rid}.answer.json"
    try:
        os.kill(pid, SIGNAL)
        while not os.path.lexists(answer):
            if running_pid(data_dir) != pid:
                raise DaemonGoneError(
                    f"the daemon (pid {pid}) stopped before answering; run the command again"
                )
            if not os.path.lexists(sent):  # only a dropped request vanishes unanswered
                raise ControlFileError(
                    f"the daemon (pid {pid}) dropped the request without answering; "
                    "its log says why"
                )
            time.sleep(poll)
        try:
            got, _ = _read_json(answer, ANSWER_MAX_BYTES)
        except (ControlFileError, FileNotFoundError) as e:
            raise ControlFileError(f"the daemon's answer is unreadable: {answer}: {e}") from None
        if not isinstance(got, dict):
            raise ControlFileError(f"the daemon's answer is not a JSON object: {answer}")
        return got
    except ProcessLookupError:
        raise DaemonGoneError(f"the daemon (pid {pid}) is gone; run the command again") from None
    finally:
        for path in (sent, answer):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                path.unlink()  # a folder put there as the answer is not ours to remove


def pending(data_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Requests waiting for the daemon, oldest first: (id, request), each request
    exactly {"command": str, "pid": int}. A request whose sender is gone (killed while
    it waited) is removed: nobody would read the answer. A file that is no request
    (see the module docstring) is removed with one log line."""
    folder = data_dir / REQUESTS
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.json"):
        if path.name.endswith(".answer.json") or path.name.startswith("."):
            continue
        rid = path.name.removesuffix(".json")
        if os.path.lexists(folder / f"{rid}.answer.json"):
            continue
        try:
            if not _REQUEST_ID.fullmatch(rid):
                raise ControlFileError("its name is no request id")
            data, st = _read_json(path, REQUEST_MAX_BYTES)
            request = _request(data)
        except FileNotFoundError:  # withdrawn meanwhile
            continue
        except ControlFileError as e:
            _drop(path, str(e))
            continue
        if not pid_alive(request["pid"]):
            path.unlink(missing_ok=True)
            continue
        found.append((st.st_mtime_ns, rid, request))
    return [(rid, req) for _, rid, req in sorted(found)]


def answer(data_dir: Path, rid: str, result: dict[str, Any]) -> None:
    """Answer request rid."""
    replace_json(data_dir / REQUESTS / f"{rid}.answer.json", result)


def _read_json(path: Path, limit: int) -> tuple[object, os.stat_result]:
    """The JSON value in path and the file's stat, when path is a regular file of this
    user of at most limit bytes holding UTF-8 JSON; ControlFileError saying what it is
    instead. Never follows a symlink, never blocks (a FIFO), never reads past limit
    (a device). FileNotFoundError when there is no such file."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ControlFileError("a symlink") from None
        raise ControlFileError(f"cannot open it: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ControlFileError("not a regular file")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise ControlFileError(f"owned by uid {st.st_uid}, not by this user")
        chunks, size = [], 0
        while size <= limit:  # st_size may lie (it grows meanwhile): count what is read
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ControlFileError(f"cannot read it: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ControlFileError(f"larger than {limit} bytes")
    try:
        return json.loads(b"".join(chunks).decode("utf-8")), st
    except UnicodeDecodeError:
        raise ControlFileError("not UTF-8") from None
    except (ValueError, RecursionError) as e:  # bad JSON, an integer of 5,000 digits, [[[[...
        raise ControlFileError(f"not JSON: {e}") from None


def _request(data: object) -> dict[str, Any]:
    """The request in data, checked: exactly a short command string and a pid."""
    if not isinstance(data, dict):
        raise ControlFileError("not a JSON object")
    if data.keys() != {"command", "pid"}:
        raise ControlFileError("its keys are not exactly command and pid")
    command, pid = data["command"], data["pid"]
    if not isinstance(command, str) or not 0 < len(command) <= _COMMAND_MAX:
        raise ControlFileError("command is not a short string")
    if type(pid) is not int or not 0 < pid <= _PID_MAX:  # bool is an int, True a pid 1
        raise ControlFileError("pid is not a process id")
    return {"command": command, "pid": pid}


def _drop(path: Path, reason: str) -> None:
    """Remove a file that is no request, saying so once: left there, it would be met
    again at every start and every signal."""
    logger.warning("dropped request file {}: {}", shown(path.name), shown(reason))
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:  # a folder, or a file the data dir's owner cannot remove
        logger.warning("cannot remove {}: {}", shown(path), e.strerror or e)
