"""Small process helpers shared by rebuild, the mirror and the daemon: private files
and folders, atomic JSON files, the daemon's pid lock, and giving memory back."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ccc_watch.errors import CccWatchError, store_os_error

PID_FILE = "daemon.pid"  # in the data dir, locked by the running daemon

try:  # POSIX file locks; on Windows the commands that need none still work
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _posix_locks() -> Any:
    if fcntl is None:  # pragma: no cover - Windows
        raise CccWatchError(
            "this needs POSIX file locks, which Windows lacks: the daemon and the stores' "
            "writer locks run on Linux and macOS only for now"
        )
    return fcntl


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Inside the block, every file and folder this process creates is private to its
    user (0600, 0700) from the moment it exists, whoever creates it: DuckDB and loguru
    take no file mode. The umask belongs to the whole process, so use it where one
    thread creates files (a command, the mirror flusher), not around threads that race.
    """
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def secure_dir(path: Path) -> None:
    """Create path private to this user (0700), and the parents it lacks too (`mkdir -p`
    would leave those to the umask, 0755 or worse); an existing path is made 0700, its
    existing parents are left alone."""
    missing = []
    for folder in path.parents:
        if os.path.lexists(folder):
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            folder.mkdir(mode=0o700)
    path.mkdir(mode=0o700, exist_ok=True)  # FileExistsError when path is a file
    os.chmod(path, 0o700)


def replace_json(path: Path, data: object) -> None:
    """Write data as JSON to path atomically and durably: a temp file created 0600 (never
    readable by others, not even for a moment), fsynced, then renamed over path, so
    readers and a crash see the old file or the new one, never half of one."""
    replace_text(path, json.dumps(data, indent=1))


def replace_text(path: Path, text: str) -> None:
    """Write text to path as replace_json does: atomically, durably, 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        locks = _posix_locks()
        locks.flock(fd, locks.LOCK_EX | locks.LOCK_NB)
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


def remove_stale(folder: Path, pattern: str) -> None:
    """Remove the files (and folders) in folder matching a glob pattern whose name holds
    the pid of a process that no longer runs (temp files of a killed process)."""
    for stale in folder.glob(pattern):
        pid = owner_pid(stale.name)
        if pid is not None and not pid_alive(pid):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()


def replace_durably(new: Path, old: Path) -> None:
    """Rename new over old, then fsync the folder so that the rename itself survives a
    crash: readers see one file or the other, whole."""
    os.replace(new, old)
    fd = os.open(old.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def running_pid(data_dir: Path) -> int | None:
    """The pid of the daemon holding data_dir's lock, or None."""
    path = data_dir / PID_FILE
    if fcntl is None:  # pragma: no cover - Windows: no daemon runs there
        return None
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


class AlreadyRunningError(CccWatchError):
    """Another daemon watches this vault."""


class PidLock:
    """An exclusive lock on <data_dir>/daemon.pid holding this process's pid: one
    daemon per vault, and `running_pid` finds it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / PID_FILE
        try:
            secure_dir(data_dir)
            self.fd, other = try_lock(self.path)
        except OSError as e:
            raise store_os_error(self.path, e, what="daemon's pid file") from e
        if self.fd < 0:
            raise AlreadyRunningError(
                f"ccc-watch is already running for this vault (pid {other or '?'}); "
                f"stop it first: {self.path}"
            )
        try:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())
        except OSError as e:  # a full disk: one line naming the file, not a traceback
            os.close(self.fd)
            raise store_os_error(self.path, e, what="daemon's pid file") from e

    def release(self) -> None:
        """Let go of the lock."""
        os.close(self.fd)


def release_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise, and an idle
    daemon would look as big as its largest scan)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)
