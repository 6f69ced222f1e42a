"""The folder carrier: one `<node>.parquet` per node in a folder the user's sync engine
shares between devices (Syncthing, iCloud, Dropbox, a git repository).

A node writes only its own file: to a hidden temp name in the same folder (created 0600,
never through a symlink), fsynced, renamed over `<node>.parquet`, the folder fsynced; a
reader, and a publisher killed mid-way, see the previous file or the new one, whole.
The header is JSON in the Parquet key-value metadata (key `ccc-watch.manifest`).

The other files are other devices' work, so hostile: a file is read only when it is a
regular file (not a symlink) of at most MAX_MANIFEST_BYTES, is Parquet with exactly
ROW_SCHEMA, has a well-formed header whose node is the file's name and a row count the
header announces. Anything else is skipped with one WARNING line, never an error; so
are sync engines' conflict copies (`laptop.sync-conflict-….parquet`,
`laptop (conflicted copy).parquet`) and temp files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from loguru import logger

from ccc_watch.errors import ConfigError
from ccc_watch.log.drift import conflict_original
from ccc_watch.log.safe import shown
from ccc_watch.nodes.carrier import ROW_SCHEMA, Manifest, ManifestHeader, PublishReport
from ccc_watch.procs import remove_stale, replace_durably

SUFFIX = ".parquet"
META_KEY = b"ccc-watch.manifest"
MAX_MANIFEST_BYTES = 512 * 1024 * 1024  # a 100,000-path manifest is a few MB
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONFLICT_WORDS = re.compile(r"conflict", re.IGNORECASE)
_HEADER_TYPES: dict[str, tuple[type, ...]] = {
    "node": (str,),
    "role": (str,),
    "vault_id": (str,),
    "written_at": (int, float),
    "head_seq": (int,),
    "head_hash": (str, type(None)),
    "records": (int,),
}


class BadManifest(Exception):
    """A file in the manifest folder that is no manifest this node can read."""


def header_json(header: ManifestHeader) -> bytes:
    """The header as the JSON kept in the Parquet metadata."""
    return json.dumps(
        {name: getattr(header, name) for name in _HEADER_TYPES}, ensure_ascii=True
    ).encode()


def parse_header(raw: bytes | None) -> ManifestHeader:
    """The header from its JSON; BadManifest when it is absent or malformed."""
    if raw is None:
        raise BadManifest("it has no ccc-watch header")
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadManifest("its header is not JSON") from None
    if not isinstance(data, dict):
        raise BadManifest("its header is not a JSON object")
    for name, types in _HEADER_TYPES.items():
        value = data.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise BadManifest(f"its header's {name} is missing or of the wrong type")
    if data["role"] not in ("outpost", "headquarters"):
        raise BadManifest("its header's role is neither outpost nor headquarters")
    if not _NODE.match(data["node"]):
        raise BadManifest("its header's node is no node name")
    if data["records"] < 0 or data["head_seq"] < 0:
        raise BadManifest("its header holds a negative count")
    if not math.isfinite(data["written_at"]):
        raise BadManifest("its header's written_at is not a time")
    return ManifestHeader(**{name: data[name] for name in _HEADER_TYPES})


class FolderCarrier:
    """Manifests as `<manifest_dir>/<node>.parquet` files (see the module docstring)."""

    def __init__(self, manifest_dir: Path) -> None:
        self.folder = Path(manifest_dir)
        self._said: set[str] = set()  # names already logged as skipped

    def __repr__(self) -> str:
        return f"FolderCarrier({str(self.folder)!r})"

    # --- writing --------------------------------------------------------------------

    def publish(self, manifest: Manifest) -> PublishReport:
        """Write `<node>.parquet` atomically and durably, 0600 (see the module docstring)."""
        start = time.perf_counter()
        node = manifest.header.node
        if not _NODE.match(node):
            raise ValueError(f"not a node name: {node!r}")
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(
                "manifest_dir", f"{shown(self.folder)} is not a folder: name a folder"
            ) from None
        remove_stale(self.folder, f".{node}{SUFFIX}.*.tmp")
        target = self.folder / f"{node}{SUFFIX}"
        changed = self._changed(target, manifest.rows)
        tmp = self.folder / f".{node}{SUFFIX}.{os.getpid()}.tmp"
        schema = ROW_SCHEMA.with_metadata({META_KEY: header_json(manifest.header)})
        table = manifest.rows.cast(ROW_SCHEMA).replace_schema_metadata(schema.metadata)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                pq.write_table(table, f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())
            replace_durably(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return PublishReport(
            node=node,
            where=str(target),
            rows=table.num_rows,
            changed=changed,
            seconds=time.perf_counter() - start,
        )

    def _changed(self, target: Path, rows: pa.Table) -> int:
        """How many rows differ from the manifest now at target (all, when none)."""
        try:
            old = self._read(target, target.name[: -len(SUFFIX)], whole=True)
        except (BadManifest, OSError):
            old = None
        if old is None:
            return int(rows.num_rows)
        before = set(zip(*(old.rows.column(n).to_pylist() for n in ROW_SCHEMA.names), strict=True))
        now = set(zip(*(rows.column(n).to_pylist() for n in ROW_SCHEMA.names), strict=True))
        return int(len(now - before) + len({r[0] for r in before} - {r[0] for r in now}))

    # --- reading --------------------------------------------------------------------

    def _skip(self, name: str, why: str) -> None:
        if name not in self._said:
            self._said.add(name)
            logger.warning("manifest folder: {} skipped: {}", shown(name), why)

    def _candidates(self) -> list[str]:
        """The node names with a file that may be a manifest; the rest skipped, logged."""
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise ConfigError(
                "manifest_dir", f"{shown(self.folder)} is not a folder: name a folder"
            ) from None
        nodes = []
        for name in names:
            if name.startswith(".") or not name.endswith(SUFFIX):
                continue
            stem = name[: -len(SUFFIX)]
            valid = bool(_NODE.match(stem))
            if conflict_original(name) is not None or (not valid and _CONFLICT_WORDS.search(name)):
                self._skip(name, "a sync engine's conflict copy (delete it once resolved)")
            elif not valid:
                self._skip(name, "its name is no node name")
            else:
                nodes.append(stem)
        return nodes

    def _read(self, path: Path, node: str, whole: bool) -> Manifest | None:
        """The manifest in path (only its header when not whole: rows empty)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as e:
            if os.path.islink(path):
                raise BadManifest("it is a symlink") from None
            raise BadManifest(f"it cannot be opened ({e.strerror})") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
            os.close(fd)
            if not stat.S_ISREG(st.st_mode):
                raise BadManifest("it is not a regular file")
            raise BadManifest(f"it is larger than {MAX_MANIFEST_BYTES} bytes")
        with os.fdopen(fd, "rb") as f:
            try:
                pf = pq.ParquetFile(f)
                schema = pf.schema_arrow
                header = parse_header((schema.metadata or {}).get(META_KEY))
                if not schema.remove_metadata().equals(ROW_SCHEMA):
                    raise BadManifest("its columns are not a manifest's")
                if header.node != node:
                    raise BadManifest(f"its header names node {shown(header.node)}, not its name")
                if pf.metadata.num_rows != header.records:
                    raise BadManifest("it holds another number of rows than its header says")
                # Small (MAX_MANIFEST_BYTES): one thread, no pool left running at exit.
                rows = pf.read(use_threads=False) if whole else ROW_SCHEMA.empty_table()
                if whole and rows.num_rows:
                    keys = rows.column("key")
                    if keys.null_count:
                        raise BadManifest("a row has no key")
                    if pc.count_distinct(keys).as_py() != rows.num_rows:
                        raise BadManifest("a key is in more than one row")
            except BadManifest:
                raise
            except (pa.ArrowException, OSError, ValueError) as e:
                raise BadManifest(
                    f"it is not a readable Parquet file ({type(e).__name__})"
                ) from None
        return Manifest(header, rows.replace_schema_metadata(None))

    def _safe_read(self, node: str, whole: bool) -> Manifest | None:
        name = f"{node}{SUFFIX}"
        try:
            return self._read(self.folder / name, node, whole)
        except BadManifest as e:
            self._skip(name, str(e))
            return None

    def headers(self) -> list[ManifestHeader]:
        """Every readable manifest's header, by node name."""
        out = []
        for node in self._candidates():
            m = self._safe_read(node, whole=False)
            if m is not None:
                out.append(m.header)
        return out

    def load(self, node: str) -> Manifest | None:
        """One node's manifest; None when it has none, or none that can be read (logged)."""
        if not _NODE.match(node):
            return None
        return self._safe_read(node, whole=True)

    def describe(self) -> dict[str, Any]:
        """Where this carrier keeps manifests, for `nodes --json`."""
        return {"carrier": "folder", "where": str(self.folder)}
