"""The operational store: redb by default, SQLite as the fallback backend."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ccc_watch.errors import ConfigError, StoreMissingError
from ccc_watch.procs import secure_dir
from ccc_watch.store.backend import Backend
from ccc_watch.store.redb_backend import RedbBackend
from ccc_watch.store.sqlite_backend import SqliteBackend
from ccc_watch.store.store import (
    SCHEMA_VERSION,
    SCRUB_DUE,
    Change,
    Delete,
    Forget,
    History,
    Move,
    Operation,
    Record,
    Store,
    Upsert,
)

BackendName = Literal["redb", "sqlite"]
BACKENDS: dict[str, tuple[type[RedbBackend] | type[SqliteBackend], str]] = {
    "redb": (RedbBackend, "index.redb"),
    "sqlite": (SqliteBackend, "index.sqlite"),
}
# The DuckDB mirror's file in the data dir, named here so that code which only needs
# the name (the daemon) does not load DuckDB.
MIRROR_FILE = "mirror.duckdb"

__all__ = [
    "BACKENDS",
    "MIRROR_FILE",
    "SCHEMA_VERSION",
    "SCRUB_DUE",
    "Change",
    "Delete",
    "Forget",
    "History",
    "Move",
    "Operation",
    "Record",
    "Reopening",
    "Store",
    "Upsert",
    "open_readonly",
    "open_store",
    "store_file",
]


def store_file(data_dir: Path, backend: str) -> Path:
    """Where the store of a data dir lives for a backend."""
    try:
        return data_dir / BACKENDS[backend][1]
    except KeyError:
        raise ConfigError("backend", f"unknown backend {backend!r} (redb or sqlite)") from None


def open_store(
    data_dir: Path,
    *,
    backend: str = "redb",
    readonly: bool = False,
    vault_root: Path | None = None,
    vault_id: str | None = None,
    cache_bytes: int | None = None,
) -> Store:
    """Open the store in data_dir.

    Writable: creates the folder (0700) and the file (0600) when missing; one process
    at a time. Read-only: any number of processes, beside the writer; raises
    StoreMissingError when there is no store yet. vault_id is used only when the
    store is created (rebuild keeps the old store's, so record ids stay the same).
    cache_bytes sizes redb's page cache (None: its default; SQLite keeps its own).
    Every failure of the engine or of the file is a StoreError subclass (locked,
    damaged, disk full, permission denied, internal error).
    """
    path = store_file(data_dir, backend)
    if not readonly:
        secure_dir(data_dir)
    impl: Backend = BACKENDS[backend][0](path, readonly=readonly, cache_bytes=cache_bytes)
    try:
        return Store(impl, vault_root=vault_root, vault_id=vault_id)
    except BaseException:
        impl.close()  # a store that cannot be used must not keep its file locked
        raise


def open_readonly(data_dir: Path, *, backend: str, vault: Path) -> Store:
    """open_store read-only, for the commands that only read; when there is no store
    yet, a StoreMissingError that names the vault, the file and how to make one."""
    try:
        return open_store(data_dir, backend=backend, readonly=True)
    except StoreMissingError:
        raise StoreMissingError(
            f"no store yet for {vault} at {store_file(data_dir, backend)}; "
            "run `ccc-watch rebuild` (or `ccc-watch init` for an empty store)"
        ) from None


class Reopening:
    """A read-only store that follows its file: reopened when the file at its path was
    replaced (a rebuild or a restore renames a new one into place), so that a
    long-lived reader (the change feed, the library's Index) reads the store there now,
    not the one it first opened. `opener` opens it (open_store read-only, or
    open_readonly for its message)."""

    def __init__(self, data_dir: Path, backend: str, opener: Callable[[], Store]) -> None:
        self.path = store_file(data_dir, backend)
        self._opener = opener
        self._store: Store | None = None
        self._file: tuple[int, int] | None = None

    def current(self) -> tuple[Store, bool]:
        """The store, and whether this call (re)opened it; StoreMissingError when there
        is none."""
        try:
            st = os.stat(self.path)
            now: tuple[int, int] | None = (st.st_ino, st.st_dev)
        except FileNotFoundError:
            now = None
        if self._store is not None and now == self._file:
            return self._store, False
        self.close()
        self._store = self._opener()
        self._file = now
        return self._store, True

    def close(self) -> None:
        """Let go of the file. Idempotent."""
        if self._store is not None:
            self._store.close()
            self._store = None
