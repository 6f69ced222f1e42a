"""The Indexer: one file's bytes become one record.

Reads the file (stat before and after, re-reading when it changed underneath),
hashes the raw bytes with blake3, and for notes parses frontmatter, tags, links and
tasks. A file that cannot be read still gets a record carrying the reason; a file
that vanished gets none. The indexer never writes anywhere.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import blake3
from loguru import logger

from ccc_watch.index.classify import Classified, classify
from ccc_watch.index.note import ParsedNote, parse_note
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.log.safe import shown
from ccc_watch.store import Record
from ccc_watch.vault.walk import FileStat

NOTE_EXTENSIONS = frozenset({".md"})
DATA_EXTENSIONS = frozenset({".json", ".yaml", ".yml", ".csv", ".canvas", ".base"})
_READ_ATTEMPTS = 3


@dataclass
class Snapshot:
    """A file's bytes and the stat they were read under."""

    data: bytes
    stat: FileStat


@dataclass
class IndexResult:
    """What indexing one file gave: a record, or None when the file is gone."""

    record: Record | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    unsure: str | None = None  # why the note's level is not certain (a drift line)


def read_stable(path: Path) -> Snapshot:
    """Read a file whose stat is the same before and after the read.

    Retries when the file changed while being read (an editor saving, a sync tool
    writing); raises OSError when it cannot be read, FileNotFoundError when it is gone.
    """
    for _ in range(_READ_ATTEMPTS):
        before = os.stat(path)
        with open(path, "rb") as f:
            data = f.read()
        after = FileStat.of(os.stat(path))
        if FileStat.of(before) == after and len(data) == after.size:
            return Snapshot(data, after)
        time.sleep(0.01)
    raise OSError(f"kept changing while being read ({_READ_ATTEMPTS} attempts)")


def record_id(vault_id: str, key: str, inode: int | None = None) -> str:
    """The deterministic id of a new file in a vault when nothing else gives one: from
    its path and inode, so that a new note made where another was just renamed away
    from (whose record keeps the id it had) does not get the same id."""
    name = key if inode is None else f"{key}\0{inode}"
    return str(uuid.uuid5(uuid.UUID(vault_id), name))


@functools.lru_cache(maxsize=512)
def _mime(extension: str) -> str | None:
    return mimetypes.guess_type("x" + extension)[0]


def _warn(key: str, reason: str) -> None:
    logger.warning("index {}: {}", shown(key), shown(reason))


def _looks_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


# How much of a note too big to parse is read for its frontmatter (and so its level).
_HEAD_BYTES = 256 * 1024


class Indexer:
    """Turns files of one vault into records."""

    def __init__(self, vault: Path, vault_id: str, policy: IndexPolicy | None = None) -> None:
        self.vault = vault
        self.vault_id = vault_id
        self.policy = policy or IndexPolicy()
        self._markers = {r.marker for r in self.policy.type_rules if r.marker}

    def index(
        self, key: str, path: Path | None = None, previous_id: str | None = None
    ) -> IndexResult:
        """Index the file at vault key `key` (read from `path`, its real name, if given)."""
        path = path or self.vault / key
        try:
            snap = read_stable(path)
        except FileNotFoundError:
            return IndexResult(None)
        except OSError as e:
            reason = f"cannot read: {e.strerror or e}"
            _warn(key, reason)
            return IndexResult(self._base(key, None, previous_id, error=reason), error=reason)
        return self.index_bytes(key, snap, previous_id)

    def _base(
        self, key: str, snap: Snapshot | None, previous_id: str | None, error: str | None = None
    ) -> Record:
        ext = os.path.splitext(key)[1].lower()
        kind = (
            "note" if ext in NOTE_EXTENSIONS else "data" if ext in DATA_EXTENSIONS else "attachment"
        )
        return {
            "path": key,
            "id": previous_id
            or record_id(self.vault_id, key, None if snap is None else snap.stat.inode),
            "name": key.rsplit("/", 1)[-1],
            "extension": ext,
            "kind": kind,
            "mime": _mime(ext),
            "record_type": self.policy.record_type(key, ext, {}),
            **(dict.fromkeys(FileStat._fields) if snap is None else snap.stat._asdict()),
            "blake3": None if snap is None else blake3.blake3(snap.data).hexdigest(),
            "frontmatter": {},
            "frontmatter_status": "absent",
            "frontmatter_error": None,
            "classification": self.policy.default_classification,
            "title": None,
            "aliases": [],
            "tags": [],
            "links": [],
            "tasks": [],
            "word_count": 0,
            "body": None,
            "error": error,
            "indexed_at": time.time(),
        }

    def index_bytes(self, key: str, snap: Snapshot, previous_id: str | None = None) -> IndexResult:
        """Build the record of a file from bytes already read."""
        rec = self._base(key, snap, previous_id)
        if rec["kind"] != "note":
            return IndexResult(rec)
        warnings: list[str] = []
        if _looks_binary(snap.data):
            rec.update(kind="attachment", error="binary content in a note (.md) file")
            warnings.append(rec["error"])
            _warn(key, rec["error"])
            return IndexResult(rec, warnings=warnings)
        if snap.stat.size > self.policy.max_note_bytes:
            rec["error"] = (
                f"note is {snap.stat.size} bytes, over the {self.policy.max_note_bytes}"
                "-byte limit: checksummed, not parsed"
            )
            _warn(key, rec["error"])
            # Not parsed, but its level still counts (a manifest says what leaves a device).
            head = parse_note(snap.data[:_HEAD_BYTES].decode("utf-8", errors="replace"))
            level = self._level(head)
            rec["classification"] = level.level
            redacted = self.policy.redact(rec)
            return IndexResult(redacted, warnings=[rec["error"]], unsure=level.unsure)
        try:
            text = snap.data.decode("utf-8")
        except UnicodeDecodeError as e:
            text = snap.data.decode("utf-8", errors="replace")
            msg = f"not UTF-8 (byte {e.start}): decoded with replacement characters"
            rec["error"] = msg
            warnings.append(msg)
            _warn(key, msg)
        parsed = parse_note(text)
        fm = parsed.frontmatter
        level = self._level(parsed)
        own_id = fm.get("id") or fm.get("uuid")
        rec.update(
            id=str(own_id) if isinstance(own_id, str | int) and str(own_id) else rec["id"],
            # Only a frontmatter marker can change what the path already decided.
            record_type=self.policy.record_type(key, rec["extension"], fm)
            if self._markers & fm.keys()
            else rec["record_type"],
            frontmatter=fm,
            frontmatter_status=parsed.frontmatter_status,
            frontmatter_error=parsed.frontmatter_error,
            classification=level.level,
            title=parsed.title,
            aliases=parsed.aliases,
            tags=parsed.tags,
            links=parsed.links,
            tasks=parsed.tasks,
            word_count=parsed.word_count,
            body=parsed.body,
        )
        return IndexResult(self.policy.redact(rec), warnings=warnings, unsure=level.unsure)

    def _level(self, parsed: ParsedNote) -> Classified:
        return classify(
            parsed.frontmatter,
            parsed.frontmatter_status,
            parsed.raw_frontmatter,
            self.policy.default_classification,
            unclosed=parsed.unclosed,
        )
