"""Asking the running daemon to do something: a request file plus SIGUSR1.

`ccc-watch rebuild` while a daemon runs must not swap the store under it; instead it
writes `<data_dir>/requests/<id>.json`, signals the daemon, and waits for
`<id>.answer.json`. The daemon keeps watching (events queue meanwhile), does the work
between two batches, and answers. Files rather than a socket: nothing to bind, the
same permissions as the data dir (0700), and a request survives a signal sent a moment
before the daemon installed its handler (it looks at the folder when it starts).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from ccc_watch.errors import CccWatchError
from ccc_watch.procs import pid_alive, replace_json, running_pid

REQUESTS = "requests"
# POSIX only: on Windows no daemon runs (running_pid finds none), so none is asked.
SIGNAL: int = getattr(signal, "SIGUSR1", 0)


class DaemonGoneError(CccWatchError):
    """The daemon stopped before it answered."""


def ask(data_dir: Path, pid: int, request: dict[str, Any], poll: float = 0.1) -> dict[str, Any]:
    """Send a request to the daemon with this pid and wait for its answer."""
    folder = data_dir / REQUESTS
    folder.mkdir(mode=0o700, exist_ok=True)
    rid = uuid.uuid4().hex
    replace_json(folder / f"{rid}.json", dict(request, pid=os.getpid()))
    answer = folder / f"{rid}.answer.json"
    try:
        os.kill(pid, SIGNAL)
        while not answer.exists():
            if running_pid(data_dir) != pid:
                raise DaemonGoneError(
                    f"the daemon (pid {pid}) stopped before answering; run the command again"
                )
            time.sleep(poll)
        got: dict[str, Any] = json.loads(answer.read_text())
        return got
    except ProcessLookupError:
        raise DaemonGoneError(f"the daemon (pid {pid}) is gone; run the command again") from None
    finally:
        for path in (folder / f"{rid}.json", answer):
            path.unlink(missing_ok=True)


def pending(data_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Requests waiting for the daemon, oldest first: (id, request). A request whose
    sender is gone (killed while it waited) is removed: nobody would read the answer."""
    folder = data_dir / REQUESTS
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.json"):
        if path.name.endswith(".answer.json") or path.name.startswith("."):
            continue
        answered = path.with_name(path.name.removesuffix(".json") + ".answer.json")
        if answered.exists():
            continue
        try:
            request = json.loads(path.read_text())
            mtime = path.stat().st_mtime_ns
        except (OSError, json.JSONDecodeError):  # withdrawn meanwhile
            continue
        sender = request.get("pid")
        if not isinstance(sender, int) or sender <= 0 or not pid_alive(sender):
            path.unlink(missing_ok=True)
            continue
        found.append((mtime, path.stem, request))
    return [(rid, req) for _, rid, req in sorted(found)]


def answer(data_dir: Path, rid: str, result: dict[str, Any]) -> None:
    """Answer request rid."""
    replace_json(data_dir / REQUESTS / f"{rid}.answer.json", result)
