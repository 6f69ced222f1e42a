"""`ccc-watch verify`: the files, the store and the mirror, compared in full.

Every file is read and hashed (no stat shortcut), so this is the independent check the
tests and users rely on. It only reads: the store and the mirror are opened read-only,
so it works while the daemon runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ccc_watch.errors import StoreMissingError
from ccc_watch.mirror.mirror import Mirror, MirrorError
from ccc_watch.store import open_store
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.read import file_digest
from ccc_watch.vault.walk import icloud_evicted, walk


@dataclass(frozen=True)
class Difference:
    """One disagreement between the vault, the store and the mirror."""

    where: str  # "store" or "mirror"
    kind: str  # missing-record, orphan-record, checksum-mismatch, mirror-lag, ...
    path: str
    detail: str

    def line(self) -> str:
        """One human-readable line."""
        return f"{self.where}: {self.kind}: {self.path}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for --json."""
        return asdict(self)


def _hash(vault: Path, path: Path) -> str | None:
    # The indexer's read: beneath the vault, never blocking, in bounded memory.
    try:
        return file_digest(vault, path)
    except OSError:
        return None


def verify(
    vault: Path,
    data_dir: Path,
    rules: IgnoreRules,
    *,
    backend: str = "redb",
    mirror: Mirror | None = None,
) -> list[Difference]:
    """Every difference between the files, the store and (when given) the mirror."""
    diffs: list[Difference] = []
    report = walk(vault, rules)
    files = {f.key: f for f in report.files}
    try:
        store = open_store(data_dir, backend=backend, readonly=True)
    except StoreMissingError:
        return [Difference("store", "missing-store", str(data_dir), "no store: run rebuild")]
    with store, store.snapshot() as snap:
        records = {r["path"]: r for r in snap.records()}
        head = snap.head()
    unreadable = [u.rstrip("/") + "/" for u in report.unreadable]
    for key, f in sorted(files.items()):
        rec = records.get(key)
        if rec is None:
            diffs.append(Difference("store", "missing-record", key, "file has no record"))
            continue
        digest = _hash(vault, f.path)
        if digest is not None and digest != rec.get("blake3"):
            diffs.append(
                Difference(
                    "store",
                    "checksum-mismatch",
                    key,
                    f"file {digest[:12]} != record {str(rec.get('blake3'))[:12]}",
                )
            )
    for path in sorted(records.keys() - files.keys()):
        if not any(path.startswith(u) for u in unreadable) and not icloud_evicted(vault, path):
            diffs.append(Difference("store", "orphan-record", path, "record has no file"))
    if mirror is not None:
        diffs += _verify_mirror(mirror, records, head)
    return diffs


def _verify_mirror(mirror: Mirror, records: dict[str, Any], head: int) -> list[Difference]:
    diffs: list[Difference] = []
    try:
        with mirror.connect() as con:
            rows = dict(con.execute("SELECT path, blake3 FROM notes").fetchall())
            state = con.execute("SELECT watermark FROM mirror_state").fetchall()
    except MirrorError as e:
        return [Difference("mirror", "unavailable", str(mirror.path), str(e))]
    watermark = int(state[0][0]) if state else -1
    if watermark != head:
        diffs.append(
            Difference(
                "mirror",
                "mirror-lag",
                str(mirror.path),
                f"watermark {watermark}, store head {head}",
            )
        )
    for path in sorted(records.keys() - rows.keys()):
        diffs.append(Difference("mirror", "missing-row", path, "record has no notes row"))
    for path in sorted(rows.keys() - records.keys()):
        diffs.append(Difference("mirror", "orphan-row", path, "notes row has no record"))
    for path in sorted(records.keys() & rows.keys()):
        if rows[path] != records[path].get("blake3"):
            diffs.append(Difference("mirror", "checksum-mismatch", path, "row != record"))
    return diffs
