"""Record factories shared by the tests and their worker processes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def searchable(blob: bytes) -> bytes:
    """blob, then what every zstd frame inside it decodes to (as far as it decodes): the
    store compresses large values, so a search of a file for a note's text must look
    into them too, or it would find nothing whether the text is there or not."""
    from ccc_watch import _redb

    return b"\n".join([blob, *_redb.frames_in(blob)])


def stored_value(path: Path, key: str) -> bytes:
    """The bytes a store file (redb or SQLite, told by its name) holds for the record at
    key, read through its backend: a large value is compressed, so a test that damages
    a record finds it by these bytes, not by the note's text."""
    from ccc_watch import _redb
    from ccc_watch.store import BACKENDS

    backend = next(impl for impl, name in BACKENDS.values() if name == path.name)
    store = backend(path, readonly=True)
    try:
        with store.reading() as tx:
            blob = tx.get("records", key)
    finally:
        store.close()
    assert blob is not None and blob[:4] == _redb.ZSTD_MAGIC, blob
    return blob


def fake_blake3(content: str) -> str:
    """A 64-hex-digit stand-in for a blake3 digest (the store treats it as opaque)."""
    return hashlib.sha256(content.encode()).hexdigest()


def make_record(i: int, content: str | None = None, **fields: Any) -> dict[str, Any]:
    """A note record shaped like the indexer's, for note number i."""
    content = f"note {i}" if content is None else content
    record: dict[str, Any] = {
        "path": f"Folder {i % 7}/Note {i}.md",
        "id": f"00000000-0000-4000-8000-{i:012d}",
        "record_type": "Metadata",
        "size": len(content),
        "mtime_ns": 1_700_000_000_000_000_000 + i,
        "blake3": fake_blake3(content),
        "frontmatter": {"title": f"Note {i}", "tags": ["a", "b/c"]},
        "frontmatter_status": "valid",
        "tags": ["a", "b/c"],
        "links": [{"target": f"Note {i + 1}", "kind": "wikilink"}],
        "tasks": [{"line": 3, "done": False, "text": "do it"}],
        "body": content,
        "indexed_at": 1_700_000_000.0,
    }
    record.update(fields)
    return record
