"""Backups of a vault's index: one archive of the store and the mirror (plain, or
encrypted with the vault's key), checked without restoring, restored and reconciled."""

from __future__ import annotations

from ccc_watch.backup.backup import (
    BackupReport,
    VerifyReport,
    archives_of,
    prune,
    take_backup,
    verify_archive,
)
from ccc_watch.backup.crypt import ArchiveError, WrongKeyError
from ccc_watch.backup.restore import RestoreReport, restore

__all__ = [
    "ArchiveError",
    "BackupReport",
    "RestoreReport",
    "VerifyReport",
    "WrongKeyError",
    "archives_of",
    "prune",
    "restore",
    "take_backup",
    "verify_archive",
]
