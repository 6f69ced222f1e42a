"""Small process helpers shared by rebuild, the mirror and (later) the daemon."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_pid(name: str) -> int | None:
    """The pid in a temp name like '.rebuild-1234' or '.mirror.duckdb.1234.tmp'."""
    for part in reversed(name.replace("-", ".").split(".")):
        if part.isdigit():
            return int(part)
    return None
