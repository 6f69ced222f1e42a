"""Small process helpers shared by rebuild, the mirror and (later) the daemon."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

PID_FILE = "daemon.pid"  # in the data dir, locked by the running daemon


def replace_json(path: Path, data: object) -> None:
    """Write data as JSON to path atomically (a temp file renamed over it), mode 0600:
    readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def try_lock(path: Path) -> tuple[int, str | None]:
    """Open path (0600) and take an exclusive, non-blocking lock on it.

    Returns (fd, None) when this process now holds it, or (-1, what the file says)
    when another process does; the lock lasts until the fd is closed.
    """
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip()
        os.close(fd)
        return -1, holder
    return fd, None


def owner_pid(name: str) -> int | None:
    """The pid in a temp name like '.rebuild-1234' or '.mirror.duckdb.1234.tmp'."""
    for part in reversed(name.replace("-", ".").split(".")):
        if part.isdigit():
            return int(part)
    return None


def running_pid(data_dir: Path) -> int | None:
    """The pid of the daemon holding data_dir's lock, or None."""
    path = data_dir / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
