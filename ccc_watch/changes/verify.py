"""`ccc-watch verify`: the files, the store and the mirror, compared in full.

Every file is read and hashed (no stat shortcut), so this is the independent check the
tests and users rely on. It only reads: the store and the mirror are opened read-only,
so it works while the daemon runs.

`deep` checks invariants I1 and I2 whole: each record equals what a fresh indexer makes
of the file now (every parsed field; the id it keeps across renames excepted), ids are
unique, a frontmatter id wins, and each record's id is the one its last changelog
entry gave; the walk's file list equals an independent os.walk under the same rules;
and every row of every per-note mirror table equals what the store's records give,
nothing missing, stale or doubled.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ccc_watch.errors import StoreMissingError
from ccc_watch.index.indexer import Indexer
from ccc_watch.index.policy import IndexPolicy, KeySource
from ccc_watch.index.seal import SEALED, Sealer, SealError
from ccc_watch.log.progress import Progress
from ccc_watch.log.safe import shown
from ccc_watch.mirror.mirror import Mirror, MirrorError
from ccc_watch.store import Record, open_store
from ccc_watch.store.store import VOLATILE_FIELDS
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.paths import nfc
from ccc_watch.vault.read import file_digest
from ccc_watch.vault.walk import VaultFile, icloud_evicted, is_utf8, walk

_SHOWN = 3  # differing rows named per mirror table


@dataclass(frozen=True)
class Difference:
    """One disagreement between the vault, the store and the mirror."""

    where: str  # "store" or "mirror"
    kind: str  # missing-record, orphan-record, checksum-mismatch, mirror-lag, ...
    path: str
    detail: str

    def line(self) -> str:
        """One human-readable line (of printable text, whatever the path holds)."""
        return f"{self.where}: {self.kind}: {shown(self.path)}: {shown(self.detail)}"

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
    deep: bool = False,
    policy: IndexPolicy | None = None,
    seal_key: KeySource | None = None,
) -> list[Difference]:
    """Every difference between the files, the store and (when given) the mirror; with
    deep, also every parsed field, the ids, the walk and every mirror row (policy: the
    one the records were made under, from the settings; seal_key: the vault's key, for
    a policy that seals: sealed text is opened and compared with the file's)."""
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
        vault_id = str(store.meta.get("vault_id", ""))
        last_ids = _last_ids(snap.changes_after(0)) if deep else {}
    unreadable = [u.rstrip("/") + "/" for u in report.unreadable]
    # deep: each file is read once, by a fresh indexer, whose blake3 is the checksum
    indexer = None
    if deep:  # under "seal" without a key: NoKeyError, as the indexer itself
        indexer = Indexer(vault, vault_id, (policy or IndexPolicy()).keyed_for(vault_id, seal_key))
    with Progress(len(files), "verify") as bar:  # a terminal's, for `ccc-watch verify`
        for key, f in sorted(files.items()):
            bar.advance()
            rec = records.get(key)
            if rec is None:
                diffs.append(Difference("store", "missing-record", key, "file has no record"))
                continue
            fresh = None if indexer is None else indexer.index(key, f.path, rec.get("id")).record
            if indexer is not None and fresh is None:
                continue  # gone meanwhile: the next verify sees it
            digest = _hash(vault, f.path) if fresh is None else fresh.get("blake3")
            if digest is not None and digest != rec.get("blake3"):
                diffs.append(
                    Difference(
                        "store",
                        "checksum-mismatch",
                        key,
                        f"file {digest[:12]} != record {str(rec.get('blake3'))[:12]}",
                    )
                )
            if fresh is not None:
                diffs += _record_differences(key, fresh, rec, last_ids.get(key))
                assert indexer is not None
                diffs += _sealed_differences(key, fresh, rec, indexer.policy.sealer)
    for path in sorted(records.keys() - files.keys()):
        if not any(path.startswith(u) for u in unreadable) and not icloud_evicted(vault, path):
            diffs.append(Difference("store", "orphan-record", path, "record has no file"))
    if mirror is not None:
        diffs += _verify_mirror(mirror, records, head)
    if deep:
        diffs += _duplicate_ids(records)
        diffs += _walk_differences(vault, rules, files)
        if mirror is not None and not any(d.where == "mirror" for d in diffs):
            diffs += _mirror_row_differences(mirror, records, policy or IndexPolicy())
    return diffs


def _last_ids(changes: Iterable[Any]) -> dict[str, str]:
    """Each path's id as its last changelog entry left it."""
    ids: dict[str, str] = {}
    for change in changes:
        if change.op == "prune":  # about the history, not a path
            continue
        if change.op == "delete":
            ids.pop(change.path, None)
        else:
            if change.op == "move" and change.prev_path is not None:
                ids.pop(change.prev_path, None)
            ids[change.path] = change.id
    return ids


def _record_differences(
    key: str, fresh: Record, rec: Record, last_id: str | None
) -> list[Difference]:
    """I1 in full for one file: its record is what the indexer makes of it now, with
    the id its last changelog entry gave it."""
    diffs: list[Difference] = []
    changed = sorted(
        k
        for k in (fresh.keys() | rec.keys()) - VOLATILE_FIELDS - {SEALED}
        if fresh.get(k) != rec.get(k)
    )
    if changed:
        listed = ", ".join(f"{k}: {rec.get(k)!r:.40} != {fresh.get(k)!r:.40}" for k in changed)
        diffs.append(Difference("store", "stale-record", key, f"stored != file: {listed}"))
    if last_id is not None and rec.get("id") != last_id:
        diffs.append(
            Difference("store", "id-mismatch", key, f"id {rec.get('id')} != changelog {last_id}")
        )
    return diffs


def _sealed_differences(
    key: str, fresh: Record, rec: Record, sealer: Sealer | None
) -> list[Difference]:
    """The sealed text of a record against the file's: opened with the vault's key (a
    fresh sealing differs in its nonce, never in its text), compared field by field.
    A sealed field that does not open (altered, another key) is a difference of its
    own. Only field names are shown, never the text."""
    stored, wanted = rec.get(SEALED), fresh.get(SEALED)
    if stored is None and wanted is None:
        return []
    if stored is None or wanted is None or sealer is None:
        why = "the record has sealed text the policy does not keep"
        if stored is None:
            why = "the policy seals it, the record has no sealed text"
        return [Difference("store", "stale-record", key, f"sealed: {why}")]
    try:
        opened = sealer.open(stored, rec.get("id"), rec.get("blake3"), key)
    except SealError as e:
        return [Difference("store", "sealed-unreadable", key, str(e).removeprefix(f"{key}: "))]
    text = sealer.open(wanted, fresh.get("id"), fresh.get("blake3"), key)
    differ = sorted(k for k in opened.keys() | text.keys() if opened.get(k) != text.get(k))
    if not differ:
        return []
    return [Difference("store", "stale-record", key, f"sealed text differs in {', '.join(differ)}")]


def _duplicate_ids(records: Mapping[str, Record]) -> list[Difference]:
    """Two records with one id."""
    diffs: list[Difference] = []
    seen: dict[object, str] = {}
    for key, rec in sorted(records.items()):
        other = seen.setdefault(rec.get("id"), key)
        if other != key:
            diffs.append(Difference("store", "duplicate-id", key, f"same id as {other}"))
    return diffs


def _independent_keys(vault: Path, rules: IgnoreRules) -> set[str]:
    """The files the README says are indexed, found by os.walk (which never follows a
    folder symlink), not by the daemon's own walk: a second opinion on the walk."""
    keys: set[str] = set()
    doubled: set[str] = set()
    real_vault = os.path.realpath(vault)
    for parent, dirs, names in os.walk(vault):
        rel = os.path.relpath(parent, vault)
        prefix = "" if rel == "." else nfc(rel).replace(os.sep, "/") + "/"
        dirs[:] = [
            d
            for d in dirs
            if is_utf8(d)
            and not os.path.islink(os.path.join(parent, d))
            and not rules.is_ignored(prefix + nfc(d), is_dir=True)
        ]
        for name in names:
            key = prefix + nfc(name)
            if not is_utf8(name) or "\\" in name or rules.is_ignored(key):
                continue
            path = os.path.join(parent, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                inside = target.startswith(real_vault + os.sep)
                rel_target = nfc(os.path.relpath(target, real_vault)).replace(os.sep, "/")
                if not inside or not os.path.isfile(target) or rules.is_ignored(rel_target):
                    continue
            else:
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                except OSError:
                    continue
            (doubled if key in keys else keys).add(key)
    return keys - doubled


def _walk_differences(
    vault: Path, rules: IgnoreRules, files: Mapping[str, VaultFile]
) -> list[Difference]:
    expected = _independent_keys(vault, rules)
    diffs = [
        Difference("store", "walk-missed", k, "os.walk finds this file, the walk does not")
        for k in sorted(expected - files.keys())
    ]
    diffs += [
        Difference("store", "walk-extra", k, "the walk lists a file os.walk does not")
        for k in sorted(files.keys() - expected)
    ]
    return diffs


def _comparable(value: Any) -> Any:
    """A row value in a hashable form that compares the same way."""
    if isinstance(value, list | tuple):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _comparable(v)) for k, v in value.items()))
    return value


def _mirror_row_differences(
    mirror: Mirror, records: Mapping[str, Record], policy: IndexPolicy
) -> list[Difference]:
    """I2 in full: each per-note table holds exactly the rows the records give."""
    from ccc_watch.mirror.rows import Rows
    from ccc_watch.mirror.schema import PER_NOTE

    expected = Rows.of(records.values(), policy)
    diffs: list[Difference] = []
    try:
        with mirror.connect() as con:
            for table in PER_NOTE:
                want = getattr(expected, table.name).to_pylist()
                got = con.sql(f"SELECT * FROM {table.name}").to_arrow_table().to_pylist()
                want_rows = Counter(_comparable(r) for r in want)
                got_rows = Counter(_comparable(r) for r in got)
                key = table.key
                assert key is not None
                for kind, rows in (("stale-row", got_rows - want_rows),
                                   ("missing-row", want_rows - got_rows)):  # fmt: skip
                    paths = sorted({dict(r)[key] for r in rows.elements()})
                    for path in paths[:_SHOWN]:
                        diffs.append(Difference("mirror", kind, path, f"{table.name}: rows differ"))
                    if len(paths) > _SHOWN:
                        diffs.append(
                            Difference(
                                "mirror",
                                kind,
                                table.name,
                                f"{len(paths) - _SHOWN} more paths with differing rows",
                            )
                        )
    except MirrorError as e:
        return [Difference("mirror", "unavailable", str(mirror.path), str(e))]
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
