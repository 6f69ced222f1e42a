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
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
from loguru import logger

from ccc_watch.index.markdown import parse_note
from ccc_watch.store import Record

NOTE_EXTENSIONS = frozenset({".md"})
DATA_EXTENSIONS = frozenset({".json", ".yaml", ".yml", ".csv", ".canvas", ".base"})
CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET")
RECORD_TYPES = ("Log", "Template", "AgentPrompt", "StructuredData", "Metadata", "Index")
_READ_ATTEMPTS = 3


@dataclass(frozen=True)
class TypeRule:
    """A record type given to files whose path matches, or whose frontmatter has a key."""

    record_type: str
    path_pattern: str | None = None  # a regex searched in the lower-cased vault path
    marker: str | None = None  # a frontmatter key whose presence decides
    extensions: frozenset[str] = frozenset()

    def matches(self, key: str, extension: str, frontmatter: Mapping[str, Any]) -> bool:
        """Whether this rule applies to the file."""
        if self.extensions and extension in self.extensions:
            return True
        if self.path_pattern and re.search(self.path_pattern, key.lower()):
            return True
        return bool(self.marker and self.marker in frontmatter)


# The original design's heuristics, first match wins. Words are matched whole-ish so
# that "catalog" or "blog" is not a Log.
DEFAULT_TYPE_RULES: tuple[TypeRule, ...] = (
    TypeRule("Template", path_pattern=r"templates?"),
    TypeRule("Log", path_pattern=r"(?<![a-z])logs?(?![a-z])", marker="timestamp"),
    TypeRule("AgentPrompt", path_pattern=r"prompts?", marker="system_prompt"),
    TypeRule("StructuredData", extensions=frozenset({".json", ".yaml", ".yml"})),
    TypeRule("Index", path_pattern=r"(^|/)(index|_index|moc)\.md$"),
)


@dataclass(frozen=True)
class IndexPolicy:
    """What the indexer parses and keeps; one object shared by the store and the mirror."""

    max_note_bytes: int = 8 * 1024 * 1024
    default_classification: str = "INTERNAL"
    private_classifications: frozenset[str] = frozenset({"CONFIDENTIAL", "SECRET"})
    type_rules: tuple[TypeRule, ...] = DEFAULT_TYPE_RULES
    fallback_type: str = "Metadata"

    def keeps_body(self, classification: str) -> bool:
        """Whether a note's body may be written to any database."""
        return classification not in self.private_classifications


@dataclass
class Snapshot:
    """A file's bytes and the stat they were read under."""

    data: bytes
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


@dataclass
class IndexResult:
    """What indexing one file gave: a record, or None when the file is gone."""

    record: Record | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def _stat_sig(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def read_stable(path: Path) -> Snapshot:
    """Read a file whose stat is the same before and after the read.

    Retries when the file changed while being read (an editor saving, a sync tool
    writing); raises OSError when it cannot be read, FileNotFoundError when it is gone.
    """
    for _ in range(_READ_ATTEMPTS):
        before = os.stat(path)
        with open(path, "rb") as f:
            data = f.read()
        after = os.stat(path)
        if _stat_sig(before) == _stat_sig(after) and len(data) == after.st_size:
            return Snapshot(data, after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino)
        time.sleep(0.01)
    raise OSError(f"kept changing while being read ({_READ_ATTEMPTS} attempts)")


def record_id(vault_id: str, key: str, inode: int | None = None) -> str:
    """The deterministic id of a new file in a vault when nothing else gives one: from
    its path and inode, so that a new note made where another was just renamed away
    from (whose record keeps the id it had) does not get the same id."""
    name = key if inode is None else f"{key}\0{inode}"
    return str(uuid.uuid5(uuid.UUID(vault_id), name))


def _classification(frontmatter: Mapping[str, Any], policy: IndexPolicy) -> str:
    value = frontmatter.get("classification")
    if isinstance(value, str) and value.strip().upper() in CLASSIFICATIONS:
        return value.strip().upper()
    return policy.default_classification


def _record_type(key: str, ext: str, frontmatter: Mapping[str, Any], policy: IndexPolicy) -> str:
    for rule in policy.type_rules:
        if rule.matches(key, ext, frontmatter):
            return rule.record_type
    return policy.fallback_type


@functools.lru_cache(maxsize=512)
def _mime(extension: str) -> str | None:
    return mimetypes.guess_type("x" + extension)[0]


def _looks_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


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
            logger.warning("index {}: {}", key, reason)
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
            or record_id(self.vault_id, key, None if snap is None else snap.inode),
            "name": key.rsplit("/", 1)[-1],
            "extension": ext,
            "kind": kind,
            "mime": _mime(ext),
            "record_type": _record_type(key, ext, {}, self.policy),
            "size": None if snap is None else snap.size,
            "mtime_ns": None if snap is None else snap.mtime_ns,
            # ctime and inode catch a rewrite whose mtime was set back (sync tools do).
            "ctime_ns": None if snap is None else snap.ctime_ns,
            "inode": None if snap is None else snap.inode,
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
            logger.warning("index {}: {}", key, rec["error"])
            return IndexResult(rec, warnings=warnings)
        if snap.size > self.policy.max_note_bytes:
            rec["error"] = (
                f"note is {snap.size} bytes, over the {self.policy.max_note_bytes}"
                "-byte limit: checksummed, not parsed"
            )
            logger.warning("index {}: {}", key, rec["error"])
            return IndexResult(rec, warnings=[rec["error"]])
        try:
            text = snap.data.decode("utf-8")
        except UnicodeDecodeError as e:
            text = snap.data.decode("utf-8", errors="replace")
            msg = f"not UTF-8 (byte {e.start}): decoded with replacement characters"
            rec["error"] = msg
            warnings.append(msg)
            logger.warning("index {}: {}", key, msg)
        parsed = parse_note(text)
        fm = parsed.frontmatter
        classification = _classification(fm, self.policy)
        own_id = fm.get("id") or fm.get("uuid")
        rec.update(
            id=str(own_id) if isinstance(own_id, str | int) and str(own_id) else rec["id"],
            # Only a frontmatter marker can change what the path already decided.
            record_type=_record_type(key, rec["extension"], fm, self.policy)
            if self._markers & fm.keys()
            else rec["record_type"],
            frontmatter=fm,
            frontmatter_status=parsed.frontmatter_status,
            frontmatter_error=parsed.frontmatter_error,
            classification=classification,
            title=parsed.title,
            aliases=parsed.aliases,
            tags=parsed.tags,
            links=parsed.links,
            tasks=parsed.tasks,
            word_count=parsed.word_count,
            body=parsed.body if self.policy.keeps_body(classification) else None,
        )
        return IndexResult(rec, warnings=warnings)
