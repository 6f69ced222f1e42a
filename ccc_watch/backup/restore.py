"""`ccc-watch restore SRC`: an archive's store and mirror put back in the data dir, then
reconciled with the vault, so the index equals a fresh rebuild of the vault as it is
now while the history (the changelog and its audit chain) goes on from the archive's.

The archive is verified whole first (into a private folder of the data dir), while
this process holds the daemon's pid lock: no daemon can start meanwhile, and one that
runs makes the restore refuse. Each file is renamed into place over the old one (a
reader sees the old file or the new one, never half of one); the old ones are kept,
hard-linked in a private folder, until the reconcile is done, and put back if the
restore fails before then.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from ccc_watch.backup.archive import unpack
from ccc_watch.backup.backup import key_source, verify_unpacked, work_dir
from ccc_watch.changes.reconcile import scan
from ccc_watch.config import Config
from ccc_watch.errors import CccWatchError, ConfigError, StoreLockedError
from ccc_watch.procs import PidLock, replace_durably
from ccc_watch.store import BACKENDS, MIRROR_FILE, open_store, store_file
from ccc_watch.store.backend import damage_note


@dataclass
class RestoreReport:
    """What a restore put back and what the reconcile after it changed."""

    path: str
    records: int
    chain_head: tuple[int, str | None]
    changes: int  # changelog entries the reconcile appended
    drift: int
    seconds: float


def _side_files(main: Path) -> list[Path]:
    """Files that belong to a database file and must not outlive it (a WAL replayed
    onto another file would damage it)."""
    names = [damage_note(main).name, main.name + "-wal", main.name + "-shm", main.name + ".wal"]
    return [main.with_name(n) for n in names]


def restore(cfg: Config, src: Path, *, relocate: bool = False) -> RestoreReport:
    """Verify the archive, put its store and mirror in place, reconcile with the vault."""
    started = time.perf_counter()
    vault = cfg.require_vault().resolve()
    data_dir = cfg.resolved_data_dir()
    src = src.expanduser().absolute()
    lock = PidLock(data_dir)  # "already running ...; stop it first", and none starts now
    try:
        with work_dir(data_dir, "restore") as work:
            unpacked = unpack(src, work, key_source(cfg))
            manifest = unpacked.manifest
            if manifest.backend != cfg.backend:
                raise ConfigError(
                    "backend",
                    f"the archive holds a {manifest.backend} store and this vault's backend is "
                    f"{cfg.backend}: restore with --backend {manifest.backend}",
                )
            verify_unpacked(unpacked, manifest.backend)
            _prepare(work, cfg.backend, vault, manifest.data.get("vault_root"), relocate)
            _refuse_other_writer(data_dir, cfg.backend)
            with work_dir(data_dir, "restore-old") as old:
                placed: list[tuple[Path, bool]] = []
                try:
                    _swap(work, data_dir, cfg.backend, old, placed)
                    result = scan(cfg)
                except BaseException:
                    _put_back(placed, old)
                    raise
    finally:
        lock.release()
    return RestoreReport(
        str(src),
        int(manifest.data["records"]),
        manifest.chain_head,
        result.changes,
        len(result.drift),
        round(time.perf_counter() - started, 3),
    )


def _prepare(work: Path, backend: str, vault: Path, archived_root: object, relocate: bool) -> None:
    """Make the unpacked store ready to be put in place: for this vault's folder (with
    relocate, when the archive names another), and with every file to be read again by
    the reconcile (no stat shortcut: the files may have changed in any way since)."""
    if archived_root not in (None, str(vault)) and not relocate:
        raise CccWatchError(
            f"the archive is of the vault at {archived_root}, not {vault}; pass --relocate "
            "to restore it for this folder (a vault moved, or a new machine)"
        )
    with open_store(work, backend=backend) as store:
        if archived_root != str(vault):
            store.set_meta("vault_root", str(vault))
        store.set_meta("last_scan_started_ns", 0)  # every file is "racy": read and hashed


def _refuse_other_writer(data_dir: Path, backend: str) -> None:
    """StoreLockedError when another process writes the current store (a `scan`, say):
    a probe, open for writing and close."""
    path = store_file(data_dir, backend)
    if not path.exists():
        return
    try:
        BACKENDS[backend][0](path).close()
    except StoreLockedError:
        raise
    except CccWatchError:  # damaged: it has no writer to fear, and is replaced anyway
        pass


def _swap(
    work: Path, data_dir: Path, backend: str, old: Path, placed: list[tuple[Path, bool]]
) -> None:
    """Rename the unpacked store, then the mirror, over the data dir's; each old file is
    hard-linked into `old` first, and its side files (WAL, damage note) moved there.
    Appends (target, had an old file) to placed as each file is touched, so a failure
    half way can be undone."""
    for name in (store_file(data_dir, backend).name, MIRROR_FILE):
        target = data_dir / name
        for side in _side_files(target):
            if side.exists():
                os.replace(side, old / side.name)
        had = target.exists()
        placed.append((target, had))
        if had:
            try:
                os.link(target, old / name)
            except OSError:  # no hard links here: a moment without the file
                os.replace(target, old / name)
        replace_durably(work / name, target)


def _put_back(placed: list[tuple[Path, bool]], old: Path) -> None:
    """Undo _swap after a failure: the old files back in place (or none, where there was
    none), so a failed restore leaves the data dir as it found it."""
    for target, had in reversed(placed):
        try:
            if had and (old / target.name).exists():
                replace_durably(old / target.name, target)
            else:
                target.unlink(missing_ok=True)
            for side in _side_files(target):
                if (old / side.name).exists():
                    os.replace(old / side.name, side)
        except OSError as e:
            logger.error("restore: could not put {} back: {}", target, e)
