"""Walking a vault: every content file with its stat, and every file left out with why.

The walk reads folders only (os.scandir, one lstat per file); it never opens a file.

Policy:
- Ignored paths (see ccc_watch.vault.ignore) are left out silently; an ignored folder is not
  entered. WalkReport.ignored counts them.
- A folder symlink is never followed; it is reported as "folder symlink: not followed".
- A file symlink is indexed (is_symlink=True, with its target's stat) when its resolved
  target is a regular file inside the vault that the rules do not ignore; one that
  leaves the vault, dangles, loops or points at an ignored file is reported.
- A folder that cannot be read is reported and the walk goes on. Its key is also listed
  in WalkReport.unreadable: the files under it still exist, so a scan must keep their
  records (and say they are stale) instead of deleting them.
- A name that is not valid UTF-8, or that contains a backslash (vault_key would read it
  as a folder separator), is reported and left out: it has no key.
- Keys are NFC; the real (possibly NFD) name stays in VaultFile.path. When two names in a
  folder have the same NFC key, the first in key order (then by the name as it is) is
  kept and the other reported.
- A file or folder that vanishes between listing and stat is simply gone: not reported.
- A file iCloud Drive evicted (replaced by '.<name>.icloud', an ignored dot-file) is
  gone from the walk, but not from the vault: scans and the daemon keep its record
  (see icloud_evicted).
- The vault folder itself must be readable: otherwise VaultUnreadableError, never an
  empty report that would look as if every note had been deleted.

Each skipped path is logged once per process at WARNING ("skip <path>: <reason>"), and at
DEBUG on later walks, so a periodic scan does not repeat the same warnings forever.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from loguru import logger

from ccc_watch.errors import CccWatchError
from ccc_watch.log.safe import shown
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.paths import nfc

__all__ = ["VaultFile", "VaultUnreadableError", "WalkReport", "walk", "walking"]

FOLDER_SYMLINK = "folder symlink: not followed"
NOT_UTF8 = "name is not UTF-8"

_warned: set[tuple[str, str, str]] = set()
_WARNED_LIMIT = 100_000


class VaultUnreadableError(CccWatchError):
    """The vault folder itself is missing or cannot be read."""


class FileStat(NamedTuple):
    """What a stat says about a file's content, stored in its record: when any of these
    moved, the file is read again (ctime and inode catch a rewrite whose mtime was set
    back, as sync tools do)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        """The signature of a stat result."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> tuple[object, ...]:
        """The same fields as a record stores them (None where it has none)."""
        return tuple(record.get(k) for k in cls._fields)


@dataclass(frozen=True, slots=True)
class VaultFile:
    """One content file found by a walk."""

    key: str  # vault_key: POSIX, NFC
    location: str  # the real path on disk (may be NFD), as a string: a Path object
    # weighs more, 20 MB of a rebuild's walk at 100,000 files
    stat: FileStat
    is_symlink: bool  # a file symlink whose target is inside the vault (its stat is the target's)
    target: str | None = None  # a symlink's target, as a vault key

    @property
    def path(self) -> Path:
        """The real path on disk."""
        return Path(self.location)


@dataclass
class WalkReport:
    """What a walk found: content files, and what it left out with the reason."""

    files: list[VaultFile]
    # (path as shown, reason): symlink leaving the vault, symlink loop, unreadable folder,
    # non-UTF-8 name, ...; the path is vault-relative, undecodable bytes as \\xNN.
    skipped: list[tuple[str, str]]
    # keys of folders (or files) that exist but could not be read: keep their records.
    unreadable: list[str] = field(default_factory=list)
    ignored: int = 0  # paths left out by the ignore rules (an ignored folder counts once)


def is_utf8(name: str) -> bool:
    """Whether a decoded file name came from valid UTF-8 bytes."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode left surrogate escapes for bad bytes
        return False
    return True


def icloud_evicted(vault: Path, key: str) -> bool:
    """Whether iCloud Drive evicted the file at key: before macOS 14 it replaces the
    file with a placeholder '.<name>.icloud' beside it. The note still exists (in the
    cloud), so its record is kept rather than deleted, and no scan downloads it."""
    folder, _, name = key.rpartition("/")
    return (vault / folder / f".{name}.icloud").exists()


def log_skip(root: str, rel: str, reason: str) -> str:
    """Log that rel (under root) is left out: a WARNING the first time in this process,
    DEBUG after, so scans every 30 minutes do not repeat it. Returns the shown path."""
    text = shown(rel)
    seen = (root, text, reason)
    if seen in _warned:
        logger.debug("skip {}: {}", text, reason)
        return text
    if len(_warned) >= _WARNED_LIMIT:
        _warned.clear()
    _warned.add(seen)
    logger.warning("skip {}: {}", text, reason)
    return text


class _Walk:
    def __init__(self, vault: Path, rules: IgnoreRules) -> None:
        self.root = os.fspath(vault)
        self.rules = rules
        self.report = WalkReport(files=[], skipped=[])
        try:
            self.real_root = os.path.realpath(self.root, strict=True)
        except OSError as e:
            raise VaultUnreadableError(f"cannot read the vault {vault}: {e.strerror}") from None
        self.real_prefix = os.path.join(self.real_root, "")

    def skip(self, rel: str, reason: str) -> None:
        self.report.skipped.append((log_skip(self.real_root, rel, reason), reason))

    def run(self) -> WalkReport:
        self.report.files = list(self.files())  # in key order already
        return self.report

    def files(self) -> Iterator[VaultFile]:
        """The content files in key order, found as they are asked for (the report's
        other lists filled meanwhile). Depth first, each folder's names sorted by key,
        a folder's as its key with a '/' after it: that is the order of the whole keys.
        The same vault always gives the same walk, and of two names with one NFC key
        the first in that order (then by the name as it is) is always the one kept."""
        stack = [iter(self.folder(self.root, "", ""))]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif isinstance(item, VaultFile):
                yield item
            else:
                stack.append(iter(self.folder(*item)))

    def folder(self, path: str, dkey: str, drel: str) -> list[VaultFile | tuple[str, str, str]]:
        """One folder's content files and subfolders to walk (path, key, rel), in key
        order."""
        try:
            with os.scandir(path) as it:
                listed = list(it)
        except OSError as e:
            if not dkey:
                raise VaultUnreadableError(
                    f"cannot read the vault {self.root}: {e.strerror}"
                ) from None
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return []  # gone since it was listed
            self.skip(drel, f"cannot read folder: {e.strerror}")
            self.report.unreadable.append(dkey)
            return []
        entries = []
        for entry in listed:
            try:
                is_link = entry.is_symlink()
                is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            except OSError:  # d_type unknown and the entry vanished before lstat
                continue
            nfc_name = nfc(entry.name)
            entries.append(
                (
                    nfc_name + "/" if is_dir else nfc_name,
                    entry.name,
                    nfc_name,
                    is_dir,
                    is_link,
                    entry,
                )
            )
        entries.sort(key=lambda e: (e[0], e[1]))

        found: list[VaultFile | tuple[str, str, str]] = []
        keys: set[str] = set()
        report = self.report
        for _, name, nfc_name, is_dir, is_link, entry in entries:
            rel = f"{drel}/{name}" if drel else name
            key = f"{dkey}/{nfc_name}" if dkey else nfc_name
            if self.rules.is_entry_ignored(dkey, nfc_name, is_dir=is_dir):
                report.ignored += 1
                continue
            if not is_utf8(name):
                self.skip(rel, NOT_UTF8)
                continue
            if "\\" in name:
                self.skip(rel, "name contains a backslash (read as a folder separator)")
                continue
            if key in keys:
                self.skip(rel, f"duplicate of {key} after Unicode normalization")
                continue
            keys.add(key)
            if is_dir:
                found.append((entry.path, key, rel))
            elif is_link:
                linked = self.symlink(entry.path, key, rel)
                if linked is not None:
                    found.append(linked)
            else:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    self.skip(rel, f"cannot stat: {e.strerror}")
                    report.unreadable.append(key)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self.skip(rel, "not a regular file")
                    continue
                found.append(VaultFile(key, entry.path, FileStat.of(st), False))
        return found

    def symlink(self, path: str, key: str, rel: str) -> VaultFile | None:
        reason, found = _follow(path, self.real_root, self.rules)
        if found is None:
            self.skip(rel, reason or "?")
            return None
        st, target_key = found
        return VaultFile(key, path, FileStat.of(st), True, target_key)


def _follow(
    path: str, real_root: str, rules: IgnoreRules
) -> tuple[str | None, tuple[os.stat_result, str] | None]:
    """A file symlink under the policy: (None, (target's stat, target key)) when it is
    indexed, (reason, None) when it is left out."""
    try:
        target = shown(os.readlink(path))
    except OSError:
        target = "?"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"dangling symlink (-> {target})", None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"symlink loop (-> {target})", None
        return f"cannot follow symlink (-> {target}): {e.strerror}", None
    if stat.S_ISDIR(st.st_mode):
        return FOLDER_SYMLINK, None
    real = os.path.realpath(path)
    if not real.startswith(os.path.join(real_root, "")):
        return f"file symlink leaves the vault (-> {shown(real)})", None
    if not stat.S_ISREG(st.st_mode):
        return f"symlink to something that is not a regular file (-> {target})", None
    parts = os.path.relpath(real, real_root).split(os.sep)
    target_key = "/".join(nfc(p) for p in parts)
    if rules.is_ignored(target_key):
        return f"file symlink to an ignored file ({shown(target_key)})", None
    return None, (st, target_key)


def left_out(vault: Path, rules: IgnoreRules, path: str) -> str | None:
    """Why the walk would leave out the file at path (an event's path), or None when it
    would index it: the same policy for events as for scans. A path that is gone gives
    None (the indexer finds nothing and the record, if any, is deleted)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        reason, _ = _follow(path, os.path.realpath(vault), rules)
        return reason
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def walk(vault: Path, rules: IgnoreRules) -> WalkReport:
    """Every content file of the vault, sorted by key, and every path left out with its
    reason (see the module docstring for the policy). Raises VaultUnreadableError when
    the vault folder itself cannot be read."""
    return _Walk(vault, rules).run()


def walking(vault: Path, rules: IgnoreRules) -> tuple[WalkReport, Iterator[VaultFile]]:
    """walk() as it goes: the content files in key order, found as they are asked for,
    and the report (its `files` left empty) whose other fields are complete once they
    all were. VaultUnreadableError (at the first file asked for, at the latest) when
    the vault folder itself cannot be read."""
    walker = _Walk(vault, rules)
    return walker.report, walker.files()
