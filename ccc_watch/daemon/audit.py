"""Is every folder watched? Running out of inotify watches is silent in watchdog:
folders beyond the limit simply never report. The daemon counts the watches it holds
against the folders on disk, and falls back to periodic full reconciles when short.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path


def shortfall(held: Callable[[], int | None], vault: Path) -> tuple[str | None, int | None]:
    """(why file events cannot be trusted, or None; the watches held). Looks twice
    before it says so: folders come and go while they are counted."""
    watches = held()
    if watches is None:
        return None, None
    folders = watched_folders(vault)
    if watches < folders:
        time.sleep(0.5)
        watches, folders = held() or 0, watched_folders(vault)
    if watches >= folders:
        return None, watches
    limit = inotify_limit("max_user_watches")
    return (
        f"only {watches} of {folders} folders are watched: out of inotify watches "
        f"(fs.inotify.max_user_watches = {limit}); raise it, e.g. "
        f"`sudo sysctl fs.inotify.max_user_watches=524288`"
    ), watches


def refused(error: OSError) -> str:
    """Why the vault cannot be watched at all, and what to do about it."""
    limit = inotify_limit("max_user_instances")
    return (
        f"cannot watch the vault ({error.strerror or error}; fs.inotify.max_user_instances "
        f"= {limit}): raise the limit (sysctl), or close other watchers"
    )


def inotify_watches() -> int | None:
    """The inotify watches held by this process, from /proc/self/fdinfo (Linux only).

    Running out of watches is silent in watchdog: folders beyond the limit simply never
    report. Comparing this count with the folders on disk is how the daemon notices.
    """
    if not sys.platform.startswith("linux"):
        return None
    total = 0
    try:
        fds = os.listdir("/proc/self/fdinfo")
    except OSError:
        return None
    for fd in fds:
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                total += f.read().count("inotify wd:")
        except OSError:  # closed meanwhile
            continue
    return total


def watched_folders(vault: Path) -> int:
    """Folders a recursive inotify observer watches: the root and every readable folder
    below it, ignored ones included (watchdog knows nothing of our rules), symlinks not
    followed."""
    count = 1
    for parent, dirnames, _ in os.walk(vault):
        dirnames[:] = [
            d
            for d in dirnames
            if not os.path.islink(full := os.path.join(parent, d))
            # inotify_add_watch needs read access; watchdog passes over EACCES quietly
            and os.access(full, os.R_OK)
        ]
        count += len(dirnames)
    return count


def inotify_limit(name: str) -> int | None:
    """/proc/sys/fs/inotify/<name> (max_user_watches, max_user_instances), if readable."""
    try:
        return int(Path(f"/proc/sys/fs/inotify/{name}").read_text())
    except (OSError, ValueError):
        return None
