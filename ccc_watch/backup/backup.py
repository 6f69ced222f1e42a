"""`ccc-watch backup`: one archive of the store and the mirror, taken while the daemon
may run; `backup --verify`: an archive checked without restoring it; retention.

A backup reads the store through ONE read snapshot (the daemon goes on writing: a
reader never blocks it), copies every table raw into a new store file (store/copy.py),
builds the mirror from that copy, so the two agree by construction, and writes both,
with a manifest, as one archive: to a hidden temp name first, renamed when whole, so
a backup cut short leaves nothing that looks like one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ccc_watch import __version__
from ccc_watch.backup.archive import (
    FORMAT,
    MIRROR_MEMBER,
    VERSION,
    KeySource,
    Manifest,
    Unpacked,
    file_digest,
    unpack,
)
from ccc_watch.backup.crypt import ArchiveError
from ccc_watch.backup.retention import PREFIX, SUFFIXES, prune
from ccc_watch.config import Config, within
from ccc_watch.errors import CccWatchError, UsageError, os_exit_code
from ccc_watch.history.chain import verify_store
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.keys import key_for
from ccc_watch.mirror.mirror import Mirror, MirrorError
from ccc_watch.procs import remove_stale, secure_dir
from ccc_watch.store import open_readonly, open_store
from ccc_watch.store.copy import copy_store
from ccc_watch.store.store import Store

_STAMP = "%Y%m%dT%H%M%S%fZ"


@dataclass
class BackupReport:
    """What one backup wrote."""

    path: str
    encrypted: bool
    bytes: int
    records: int
    chain_head: tuple[int, str | None]
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)  # copy, mirror, archive: seconds
    removed: list[str] = field(default_factory=list)  # by retention


@dataclass
class VerifyReport:
    """What `backup --verify` checked."""

    path: str
    encrypted: bool
    manifest: dict[str, Any]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40] or "vault"


@contextlib.contextmanager
def work_dir(data_dir: Path, kind: str) -> Iterator[Path]:
    """A private folder `<data_dir>/.<kind>.<pid>` for the plaintext copies a backup,
    verify or restore works on (the data dir already holds the same text), removed at
    the end; those left by a killed process are removed first."""
    secure_dir(data_dir)
    remove_stale(data_dir, f".{kind}.*")
    folder = data_dir / f".{kind}.{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _destination(cfg: Config, dest: Path | None) -> Path:
    """The folder archives go to: DEST, or the configured/default backup_dir; never in
    the vault or the data dir."""
    if dest is None:
        return cfg.resolved_backup_dir()
    dest = dest.expanduser().resolve()
    vault, data_dir = cfg.require_vault(), cfg.resolved_data_dir()
    if within(dest, vault):
        raise UsageError(
            f"{dest} is inside the vault {vault}; ccc-watch never writes into the vault: "
            "name a folder outside it"
        )
    if within(dest, data_dir):
        raise UsageError(
            f"{dest} is inside the data dir {data_dir}; a backup must outlive it: name a "
            "folder outside it"
        )
    return dest


def take_backup(
    cfg: Config, dest: Path | None = None, *, keep: int | None = None, encrypt: bool = False
) -> BackupReport:
    """Write one archive of the vault's store and mirror into dest (or the backup dir),
    then apply retention (keep: archives of this vault kept)."""
    started = time.perf_counter()
    vault = cfg.require_vault()
    data_dir = cfg.resolved_data_dir()
    folder = _destination(cfg, dest)
    policy = IndexPolicy.from_settings(cfg)
    with open_readonly(data_dir, backend=cfg.backend, vault=vault) as source:
        vault_id = str(source.meta["vault_id"])
        key = key_for(cfg, vault_id) if encrypt else None  # before any work: fail fast
        with work_dir(data_dir, "backup") as work:
            phases: dict[str, float] = {}
            mark = time.perf_counter()
            copied = copy_store(source, work)
            source.close()
            phases["copy"], mark = round(time.perf_counter() - mark, 3), time.perf_counter()
            with open_store(work, backend=cfg.backend, readonly=True) as copy:
                if _chain_head(copy) != copied.chain_head:  # the copy is the snapshot
                    raise CccWatchError(f"internal error: the copy of {source.path} differs")
                Mirror(work, policy).rebuild(copy)
                meta = dict(copy.meta)
            phases["mirror"], mark = round(time.perf_counter() - mark, 3), time.perf_counter()
            now = datetime.now(UTC)
            members = []
            for path in (copied.path, work / MIRROR_MEMBER):
                size, digest = file_digest(path)
                members.append({"name": path.name, "size": size, "blake3": digest})
            manifest = Manifest(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "ccc_watch": __version__,
                    "vault_id": vault_id,
                    "vault_root": meta.get("vault_root"),
                    "store_id": meta.get("store_id"),
                    "schema_version": meta.get("schema_version"),
                    "backend": cfg.backend,
                    "created": now.isoformat().replace("+00:00", "Z"),
                    "created_ts": now.timestamp(),
                    "chain_head": {"seq": copied.chain_head[0], "hash": copied.chain_head[1]},
                    "records": copied.records,
                    "changelog": copied.rows["changelog"],
                    "members": members,
                }
            )
            name = f"{PREFIX}{_safe_name(vault.name)}-{now.strftime(_STAMP)}"
            name += SUFFIXES[1] if key is not None else SUFFIXES[0]
            target = _write(folder, name, manifest, work, key)
            phases["archive"] = round(time.perf_counter() - mark, 3)
    report = BackupReport(
        str(target),
        key is not None,
        target.stat().st_size,
        copied.records,
        copied.chain_head,
        round(time.perf_counter() - started, 3),
        phases,
    )
    if keep is not None:
        report.removed = [str(p) for p in prune(folder, vault_id, keep)]
    return report


def _chain_head(store: Store) -> tuple[int, str | None]:
    with store.snapshot() as snap:
        return snap.chain_head()


def _write(folder: Path, name: str, manifest: Manifest, work: Path, key: bytes | None) -> Path:
    """The archive written to a hidden temp name in folder, fsynced, then renamed."""
    from ccc_watch.backup.archive import write_archive

    if not folder.exists():
        secure_dir(folder)
    elif not folder.is_dir():
        raise UsageError(f"cannot write backups into {folder}: not a folder")
    remove_stale(folder, f".{PREFIX}*.tmp")
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    target = folder / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            header = {"vault_id": manifest.vault_id, "created": manifest.data["created"]}
            header["created_ts"] = manifest.data["created_ts"]
            write_archive(out, manifest, work, key=key, header=header)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ArchiveWriteError(target, e) from e
        raise
    return target


class ArchiveWriteError(CccWatchError):
    """The archive could not be written (a full disk, a folder not writable): nothing is
    left behind, and the exit code says which (74, 77)."""

    def __init__(self, target: Path, err: OSError) -> None:
        super().__init__(
            f"cannot write the backup {target}: {err.strerror or err}; nothing was left "
            "behind: free space there or name another folder, then try again"
        )
        self.exit_code = os_exit_code(err)


def verify_unpacked(unpacked: Unpacked, backend: str) -> None:
    """Check the unpacked store (opens; its chain head, record count, and every link of
    its audit chain) and mirror (same store, same watermark) against the manifest."""
    manifest = unpacked.manifest
    folder = unpacked.folder
    want_seq, want_hash = manifest.chain_head
    try:
        with open_store(folder, backend=backend, readonly=True) as store:
            with store.snapshot() as snap:
                head = snap.chain_head()
                count = snap.count()
                chain = verify_store(snap)  # what `audit verify` walks
                if not chain.intact:
                    raise ArchiveError(
                        f"the archived changelog's audit chain breaks at entry "
                        f"{chain.broken_at}: {chain.reason}"
                    )
            store_id = store.meta.get("store_id")
    except CccWatchError as e:
        if isinstance(e, ArchiveError):
            raise
        raise ArchiveError(f"the archived store does not open: {e}") from None
    if head != (want_seq, want_hash):
        raise ArchiveError(
            f"the archived store's chain head is {head[0]}:{head[1]}, the manifest says "
            f"{want_seq}:{want_hash}"
        )
    if count != manifest.data.get("records"):
        raise ArchiveError(
            f"the archived store holds {count} records, the manifest says "
            f"{manifest.data.get('records')}"
        )
    try:
        with Mirror(folder).connect(retry_seconds=0) as con:
            rows = con.execute("SELECT watermark, store_id FROM mirror_state").fetchall()
    except (MirrorError, duckdb.Error) as e:  # a damaged file
        raise ArchiveError(f"the archived mirror does not open: {str(e).splitlines()[0]}") from None
    if rows != [(want_seq, store_id)]:
        raise ArchiveError("the archived mirror is not of the archived store (watermark or id)")


def key_source(cfg: Config) -> KeySource:
    """vault id -> key, from the settings' key sources."""
    return lambda vault_id: key_for(cfg, vault_id)


def verify_archive(cfg: Config, src: Path, folder: Path | None = None) -> VerifyReport:
    """Check an archive without restoring it: members present, sizes and blake3 as the
    manifest says, the store opens, its chain links and its head is the manifest's, the
    mirror is of that store. ArchiveError naming the first fault."""
    with _verify_folder(cfg, folder) as work:
        unpacked = unpack(src, work, key_source(cfg))
        verify_unpacked(unpacked, unpacked.manifest.backend)
    return VerifyReport(str(src), unpacked.encrypted, unpacked.manifest.data)


@contextlib.contextmanager
def _verify_folder(cfg: Config, folder: Path | None) -> Iterator[Path]:
    """Where a verify unpacks: the folder given, else the vault's data dir (which holds
    the same text already), else a private temp folder (no vault configured, or no
    data dir yet: a verify creates none)."""
    if folder is not None:
        yield folder
        return
    if cfg.vault is not None and cfg.resolved_data_dir().is_dir():
        with work_dir(cfg.resolved_data_dir(), "verify") as work:
            yield work
        return
    work = Path(tempfile.mkdtemp(prefix="ccc-watch-verify-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
