"""The Indexer: one file's bytes become one record.

Reads the file with ccc_watch.vault.read (beneath the vault, never blocking, stat
before and after, re-reading when it changed underneath), hashes the raw bytes with
blake3 in chunks, and for notes up to max_note_bytes parses frontmatter, tags, links
and tasks. A file that cannot be read still gets a record carrying the reason; a file
that vanished gets none. The indexer never writes anywhere.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from ccc_watch.index.classify import Classified, classify
from ccc_watch.index.note import ParsedNote, parse_note
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.keys import NoKeyError
from ccc_watch.log.safe import shown
from ccc_watch.store import Record
from ccc_watch.vault.read import Content, Folders, NotContentError, read_file
from ccc_watch.vault.walk import FileStat, log_skip

NOTE_EXTENSIONS = frozenset({".md"})
DATA_EXTENSIONS = frozenset({".json", ".yaml", ".yml", ".csv", ".canvas", ".base"})


@dataclass
class IndexResult:
    """What indexing one file gave: a record, or None when the file is gone."""

    record: Record | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    unsure: str | None = None  # why the note's level is not certain (a drift line)


def record_id(vault_id: str, key: str, inode: int | None = None) -> str:
    """The deterministic id of a new file in a vault when nothing else gives one: from
    its path and inode, so that a new note made where another was just renamed away
    from (whose record keeps the id it had) does not get the same id.

    It is uuid.uuid5(UUID(vault_id), name), written out: uuid's objects cost a third of
    the time it takes to index a small file."""
    name = key if inode is None else f"{key}\0{inode}"
    digest = bytearray(hashlib.sha1(_namespace(vault_id) + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=16)
def _namespace(vault_id: str) -> bytes:
    return uuid.UUID(vault_id).bytes


_KINDS = dict.fromkeys(NOTE_EXTENSIONS, "note") | dict.fromkeys(DATA_EXTENSIONS, "data")


def _kind(key: str) -> str:
    return _KINDS.get(os.path.splitext(key)[1].lower(), "attachment")


@functools.lru_cache(maxsize=512)
def _mime(extension: str) -> str | None:
    return mimetypes.guess_type("x" + extension)[0]


def _warn(key: str, reason: str) -> None:
    logger.warning("index {}: {}", shown(key), shown(reason))


def _looks_binary(head: bytes) -> bool:
    return b"\x00" in head


_BINARY_CHECK = 8192  # bytes of a note looked at for a NUL
_NO_STAT = FileStat(None, None, None, None)  # type: ignore[arg-type]  # a file not read


class Indexer:
    """Turns files of one vault into records."""

    def __init__(self, vault: Path, vault_id: str, policy: IndexPolicy | None = None) -> None:
        self.vault = vault
        self.vault_id = vault_id
        self.policy = policy or IndexPolicy()
        if self.policy.seals and self.policy.sealer is None:
            # Fail closed: indexing under "seal" without the key would have to store
            # the text, or drop it while the settings promise to keep it.
            raise NoKeyError(vault_id)
        self._markers = {r.marker for r in self.policy.type_rules if r.marker}
        self._folders: Folders | None = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Index many files in a row (in key order, best): their reads share the
        folders they open (vault.read.Folders)."""
        with Folders(self.vault) as folders:
            self._folders = folders
            try:
                yield
            finally:
                self._folders = None

    def index(
        self, key: str, path: Path | str | None = None, previous_id: str | None = None
    ) -> IndexResult:
        """Index the file at vault key `key` (read from `path`, its real name, if given)."""
        path = path or self.vault / key
        # Only a note's bytes are parsed, and only up to max_note_bytes: anything else
        # is hashed in chunks and never held whole.
        keep = self.policy.max_note_bytes if _kind(key) == "note" else -1
        try:
            content = read_file(self.vault, path, keep, self._folders)
        except FileNotFoundError:
            return IndexResult(None)
        except NotContentError as e:
            # Swapped for a FIFO, a device or a symlink out of the vault since the walk:
            # left out, as the next walk will leave it out.
            log_skip(os.fspath(self.vault), key, e.strerror or str(e))
            return IndexResult(None)
        except OSError as e:
            reason = f"cannot read: {e.strerror or e}"
            _warn(key, reason)
            return IndexResult(self._base(key, None, previous_id, error=reason), error=reason)
        return self.index_content(key, content, previous_id)

    def _base(
        self,
        key: str,
        content: Content | None,
        previous_id: str | None,
        error: str | None = None,
    ) -> Record:
        ext = os.path.splitext(key)[1].lower()
        size, mtime_ns, ctime_ns, inode = _NO_STAT if content is None else content.stat
        return {
            "path": key,
            "id": previous_id or record_id(self.vault_id, key, inode),
            "name": key.rsplit("/", 1)[-1],
            "extension": ext,
            "kind": _KINDS.get(ext, "attachment"),
            "mime": _mime(ext),
            "record_type": self.policy.record_type(key, ext, {}),
            # FileStat's fields (the unpacking above fails should it gain one)
            "size": size,
            "mtime_ns": mtime_ns,
            "ctime_ns": ctime_ns,
            "inode": inode,
            "blake3": None if content is None else content.blake3,
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
            "headings": [],
            "blocks": [],
            "fields": [],
            "body": None,
            "error": error,
            "indexed_at": time.time(),
        }

    def index_content(
        self, key: str, content: Content, previous_id: str | None = None
    ) -> IndexResult:
        """Build the record of a file from what a read of it gave."""
        rec = self._base(key, content, previous_id)
        if rec["kind"] != "note":
            return IndexResult(rec)
        warnings: list[str] = []
        if _looks_binary(content.head[:_BINARY_CHECK]):
            rec.update(kind="attachment", error="binary content in a note (.md) file")
            warnings.append(rec["error"])
            _warn(key, rec["error"])
            return IndexResult(rec, warnings=warnings)
        if content.data is None:
            rec["error"] = (
                f"note is {content.stat.size} bytes, over the {self.policy.max_note_bytes}"
                "-byte limit: checksummed, not parsed"
            )
            _warn(key, rec["error"])
            # Not parsed, but its level still counts (a manifest says what leaves a device).
            head = parse_note(content.head.decode("utf-8", errors="replace"))
            level = self._level(head)
            rec["classification"] = level.level
            redacted = self.policy.stored(rec)
            return IndexResult(redacted, warnings=[rec["error"]], unsure=level.unsure)
        try:
            text = content.data.decode("utf-8")
        except UnicodeDecodeError as e:
            text = content.data.decode("utf-8", errors="replace")
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
            headings=parsed.headings,
            blocks=parsed.blocks,
            fields=parsed.fields,
            body=parsed.body,
        )
        return IndexResult(self.policy.stored(rec), warnings=warnings, unsure=level.unsure)

    def _level(self, parsed: ParsedNote) -> Classified:
        return classify(
            parsed.frontmatter,
            parsed.frontmatter_status,
            parsed.raw_frontmatter,
            self.policy.default_classification,
            unclosed=parsed.unclosed,
        )
