"""What a manifest is, and what every carrier of manifests offers.

A manifest is one node's view of its vault: one row per record, and a header (the node,
its role, the vault id, when it was written, its history's head, how many rows). The
folder carrier keeps one `<node>.parquet` per node in a folder a sync engine shares;
the database carrier keeps every node's rows in PostgreSQL. Both answer the same three
questions, so `nodes` and `drift` do not care which one is in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

# One row per record. `key` is what nodes are compared by: the path, or for a SECRET
# record under manifest_paths = "private" "secret:" + a keyed digest of the path (then
# `path` is null), so that nobody can confirm a guessed name from a manifest.
ROW_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("path", pa.string()),
        ("id", pa.string()),
        ("blake3", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("record_type", pa.string()),
        ("classification", pa.string()),
    ]
)


@dataclass(frozen=True)
class ManifestHeader:
    """Who wrote a manifest, when, and of what."""

    node: str
    role: str  # "outpost" or "headquarters"
    vault_id: str
    written_at: float  # seconds since the epoch
    head_seq: int  # the newest changelog entry it reflects
    head_hash: str | None
    records: int


@dataclass(frozen=True)
class Manifest:
    """A header and its rows (ROW_SCHEMA, sorted by key)."""

    header: ManifestHeader
    rows: pa.Table


@dataclass(frozen=True)
class PublishReport:
    """What one publication did."""

    node: str
    where: str  # the file or database written
    rows: int  # rows in the manifest
    changed: int  # rows written (the database carrier writes only what changed)
    seconds: float


class Carrier(Protocol):
    """Where manifests are published and read."""

    def publish(self, manifest: Manifest) -> PublishReport:
        """Publish this node's manifest whole, atomically: a reader sees the previous
        one or this one, never a part (a publisher killed mid-way leaves the previous)."""

    def headers(self) -> list[ManifestHeader]:
        """Every node's header, this one's included."""

    def load(self, node: str) -> Manifest | None:
        """One node's manifest, or None when it never published."""
