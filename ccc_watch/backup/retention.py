"""Which archives in a folder are this vault's, and retention: `--keep N` removes the
oldest beyond N. Light to import (no DuckDB): the daemon uses it to schedule backups."""

from __future__ import annotations

import os
from pathlib import Path

from loguru import logger

from ccc_watch.backup.archive import archive_header

PREFIX = "ccc-watch-"
SUFFIXES = (".tar", ".tar.enc")


def archives_of(folder: Path, vault_id: str) -> list[tuple[float, Path]]:
    """(created, path) of every ccc-watch archive of this vault in folder, oldest first:
    regular files (no symlinks) named like one whose header or manifest names the vault."""
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(PREFIX) or not entry.name.endswith(SUFFIXES):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        header = archive_header(Path(entry.path))
        if header is None or header.get("vault_id") != vault_id:
            continue
        created = header.get("created_ts")
        found.append((float(created) if isinstance(created, int | float) else 0.0, entry.name))
    return [(t, folder / n) for t, n in sorted(found)]


def prune(folder: Path, vault_id: str, keep: int) -> list[Path]:
    """Remove the oldest archives of this vault in folder beyond `keep`; the removed."""
    archives = archives_of(folder, vault_id)
    removed = []
    for _, path in archives[: max(0, len(archives) - keep)]:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        logger.info("backup retention: removed {}", path)
        removed.append(path)
    return removed
