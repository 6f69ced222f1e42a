"""Reading one file of the vault: never outside it, never blocking, in bounded memory.

Everything in a vault is hostile input, and it can change between the walk that found
a file and the read. So a read:

- opens the file beneath the vault folder one name at a time, following no symlink
  (O_NOFOLLOW on every folder and on the file): a note or a folder swapped for a
  symlink after the walk is not followed out of the vault;
- follows a file symlink only as the walk's policy allows: its target is resolved
  again at read time, must lie inside the vault, and is then opened the same way;
- opens with O_NONBLOCK and checks the type on the descriptor (fstat): a FIFO or a
  device swapped in for a note neither blocks nor is read (NotContentError);
- hashes in chunks of CHUNK bytes and keeps the whole content only when it is at most
  `keep` bytes (a note small enough to parse), otherwise only its first HEAD bytes:
  at most max(keep, CHUNK) bytes of one file are in memory, whatever its size;
- compares the descriptor's stat before and after, and checks that the name still
  names the file read: a file that changed meanwhile is read again, up to ATTEMPTS.

Reads of many files in a row (a batch of a rebuild's worker, in key order) may share
their open folders (Folders): a folder opened beneath the vault as above is kept open
for the rest of the batch, so a folder swapped for a symlink meanwhile is still not
followed; a folder moved within or out of the vault meanwhile is read where it went,
at most for the batch's duration, as a file moved after its read would have been.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import blake3

from ccc_watch import _redb
from ccc_watch.log.safe import shown
from ccc_watch.vault.walk import FileStat

__all__ = ["CHUNK", "HEAD", "Content", "Folders", "NotContentError", "file_digest", "read_file"]

CHUNK = 1024 * 1024
HEAD = 256 * 1024  # kept of any file: the binary check, and the level of an unparsed note
ATTEMPTS = 3

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FLAGS = (
    os.O_RDONLY
    | _NOFOLLOW
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_DIR_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
# Where names cannot be opened relative to a folder (Windows), the whole path is opened:
# the type check on the descriptor still holds, the symlink checks are the walk's.
_BENEATH = os.open in os.supports_dir_fd and bool(_NOFOLLOW)
# _read_in's steps for a note read whole, as one call (rust/src/read.rs); not on Windows.
_compiled_read = getattr(_redb, "read_in", None)


class NotContentError(OSError):
    """The path no longer names something the walk would index: a FIFO, a device, a
    folder, a symlink leaving the vault, a folder on the way replaced by a symlink."""


class _Changed(Exception):
    """The file changed while it was being read: read it again."""


class Content(NamedTuple):
    """What one read of a file gave."""

    stat: FileStat
    blake3: str  # of the whole content
    data: bytes | None  # the whole content, when it was at most `keep` bytes
    head: bytes  # its first HEAD bytes


class Folders:
    """The folders of one vault last opened by reads (at most LIMIT of them, each
    opened beneath the vault), reused by the next reads until close(). Not shared
    between threads."""

    LIMIT = 16

    def __init__(self, root: Path | str) -> None:
        self.root = os.fspath(root)
        self._open: dict[str, int] = {}  # folder (relative, os.sep) -> descriptor

    def __enter__(self) -> Folders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def parent(self, rel: str) -> tuple[int, str]:
        """The open folder holding rel (owned by this object: not to be closed), and
        the file's name in it."""
        folder, _, name = rel.rpartition(os.sep)
        fd = self._open.get(folder)
        if fd is None:
            fd, name = _open_parent(self.root, rel)
            if len(self._open) >= self.LIMIT:  # the oldest goes
                os.close(self._open.pop(next(iter(self._open))))
            self._open[folder] = fd
        return fd, name

    def forget(self, rel: str) -> None:
        """Close the folder holding rel, if open: the next read opens it anew."""
        fd = self._open.pop(rel.rpartition(os.sep)[0], None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close every folder kept open."""
        while self._open:
            os.close(self._open.popitem()[1])


def read_file(vault: Path, path: Path | str, keep: int, folders: Folders | None = None) -> Content:
    """Read the file at path (inside vault) as the module docstring says; keep its
    bytes when it has at most `keep` of them. folders: the open folders of the vault
    to reuse (and keep open), Folders(vault) made by the caller.

    Raises FileNotFoundError when it is gone, NotContentError when it is no longer a
    regular file inside the vault, OSError when it cannot be read or kept changing."""
    root, text = os.fspath(vault), os.fspath(path)
    prefix = os.path.join(root, "")
    # A prefix is what the callers give (the walk joins names to the vault), and far
    # cheaper than relpath; the parts are checked either way.
    rel = text[len(prefix) :] if text.startswith(prefix) else os.path.relpath(text, root)
    parts = rel.split(os.sep)
    if "" in parts or os.curdir in parts or os.pardir in parts:
        raise NotContentError(errno.EINVAL, "not a plain path inside the vault", text)
    for _ in range(ATTEMPTS):
        try:
            return _read_once(root, rel, keep, folders)
        except _Changed:
            continue
    raise OSError(errno.EAGAIN, f"kept changing while being read ({ATTEMPTS} attempts)")


def file_digest(vault: Path, path: Path) -> str:
    """The blake3 of the file at path, read as read_file does and keeping nothing."""
    return read_file(vault, path, keep=-1).blake3


def _read_once(root: str, rel: str, keep: int, folders: Folders | None) -> Content:
    if not _BENEATH:
        path = os.path.join(root, rel)
        before = os.stat(path)
        fd = os.open(path, _FLAGS & ~_NOFOLLOW)  # a file symlink: the walk checked it
        try:
            return _read_fd(fd, keep, before, lambda: os.stat(path))
        finally:
            os.close(fd)
    content: Content | None
    if folders is not None and folders.root == root:
        try:
            content = _read_in(*folders.parent(rel), keep)
        except FileNotFoundError:  # or its folder went and came back since it was opened
            folders.forget(rel)
            content = _read_beneath(root, rel, keep)
    else:
        content = _read_beneath(root, rel, keep)
    if content is not None:
        return content
    content = _read_beneath(root, _symlink_target(root, rel), keep)
    if content is None:  # the target was swapped for a symlink since it was resolved
        raise _Changed
    return content


def _read_beneath(root: str, rel: str, keep: int) -> Content | None:
    """_read_in() of rel's folder, opened beneath root for this read only."""
    folder, name = _open_parent(root, rel)
    try:
        return _read_in(folder, name, keep)
    finally:
        os.close(folder)


def _read_in(folder: int, name: str, keep: int) -> Content | None:
    """Read the regular file `name` of the open folder without following a symlink;
    None when it is a symlink."""
    if keep >= 0 and _compiled_read is not None:  # a note: the same steps, compiled
        code, size, mtime_ns, ctime_ns, inode, data = _compiled_read(folder, name, keep, _FLAGS)
        if code == _redb.READ_OK:
            digest = blake3.blake3(data).hexdigest()
            return Content(FileStat(size, mtime_ns, ctime_ns, inode), digest, data, data[:HEAD])
        if code == _redb.READ_SYMLINK:
            return None
        if code == _redb.READ_NOT_REGULAR:
            raise NotContentError(errno.EINVAL, "not a regular file", name)
        if code == _redb.READ_FD_NOT_REGULAR:
            raise NotContentError(errno.EINVAL, "not a regular file")
        if code == _redb.READ_CHANGED:
            raise _Changed
        # READ_PYTHON: larger than keep (hashed in chunks), or a name with no C form
    st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NotContentError(errno.EINVAL, "not a regular file", name)
    try:
        fd = os.open(name, _FLAGS, dir_fd=folder)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):  # swapped for a symlink just now
            raise _Changed from None
        raise
    try:
        return _read_fd(fd, keep, st, lambda: os.stat(name, dir_fd=folder, follow_symlinks=False))
    finally:
        os.close(fd)


def _open_parent(root: str, rel: str) -> tuple[int, str]:
    """The folder holding rel, opened beneath root without following any symlink, and
    the file's name in it."""
    *folders, name = rel.split(os.sep)
    fd = os.open(root, _DIR_FLAGS & ~_NOFOLLOW)  # the vault itself may be a symlink
    try:
        for part in folders:
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ENOTDIR, errno.ELOOP):
                    raise NotContentError(
                        e.errno, "a folder on its path is a symlink or a file: not followed", rel
                    ) from None
                raise
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def _symlink_target(root: str, rel: str) -> str:
    """A file symlink's target as a path relative to the vault, under the walk's policy:
    it must lie inside the vault (checked now, not only when the walk saw it)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, rel))
    target = os.path.relpath(real, real_root)
    if target == os.pardir or target.startswith(os.pardir + os.sep) or os.path.isabs(target):
        raise NotContentError(errno.EXDEV, f"file symlink leaves the vault (-> {shown(real)})", rel)
    return target


def _read_fd(
    fd: int, keep: int, before: os.stat_result, name_stat: Callable[[], os.stat_result]
) -> Content:
    """Hash the open regular file in chunks; the whole content is kept only when the
    file has at most `keep` bytes. before: the name's stat taken before the open;
    name_stat() stats that name again."""
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode):
        raise NotContentError(errno.EINVAL, "not a regular file")
    size = opened.st_size
    data: bytes | None = None
    if size <= keep:  # a note to parse: read whole (one byte more sees it grow)
        data = _read_upto(fd, size + 1)
        total, digest, head = len(data), blake3.blake3(data).hexdigest(), data[:HEAD]
    else:
        total, digest, head = _hash_stream(fd, size)
    after = os.fstat(fd)
    if FileStat.of(before) != FileStat.of(after) or total != after.st_size:
        raise _Changed
    now = name_stat()  # FileNotFoundError: deleted during the read, so gone
    if (now.st_ino, now.st_dev) != (after.st_ino, after.st_dev):
        raise _Changed  # replaced under its name (an atomic save) during the read
    return Content(FileStat.of(after), digest, data, head)


def _read_upto(fd: int, limit: int) -> bytes:
    """Up to limit bytes from fd, to its end."""
    parts: list[bytes] = []
    total = 0
    while total < limit:
        chunk = os.read(fd, limit - total)
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def _hash_stream(fd: int, size: int) -> tuple[int, str, bytes]:
    """(bytes read, blake3, first HEAD bytes) of the file, read CHUNK bytes at a time
    into one buffer and kept nowhere; stops one read past `size` (the file grew)."""
    hasher = blake3.blake3()
    # No bigger than the file needs: a small attachment costs its size, a video 1 MiB.
    buffer = memoryview(bytearray(min(CHUNK, size + 1)))
    reader = io.FileIO(fd, "rb", closefd=False)
    head = b""
    total = 0
    while total <= size:
        n = reader.readinto(buffer) or 0
        if not n:
            break
        if total < HEAD:
            head += bytes(buffer[: min(n, HEAD - total)])
        total += n
        hasher.update(buffer[:n])
    return total, hasher.hexdigest(), head
