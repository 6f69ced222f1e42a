"""A raw copy of a store: every table, keys and bytes as they are, from one snapshot.

What a backup archives. Nothing is decoded or re-encoded on the way, so the copy holds
the same records, the same changelog (whose audit chain hashes then still link) and
the same meta (vault id, store id) as the source at the moment of its snapshot; and,
being a new file, none of the source's free pages.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from ccc_watch.store import BACKENDS, store_file
from ccc_watch.store.backend import TABLES, Backend, Reader, iter_scan
from ccc_watch.store.store import Snapshot, Store

_BATCH = 5000  # rows per write transaction of the copy


@dataclass(frozen=True)
class CopyReport:
    """What a copy holds: the file, and the source snapshot's figures."""

    path: Path
    backend: str
    rows: dict[str, int]  # table -> rows copied
    chain_head: tuple[int, str | None]  # (seq, hash) of the newest changelog entry
    records: int


def copy_store(source: Store, dest_dir: Path) -> CopyReport:
    """Copy every table of source, from ONE read snapshot, into a new store file of the
    same backend in dest_dir (which must not hold one yet). Safe while another process
    writes the source: a reader never blocks the writer."""
    backend = source.backend.name
    target = store_file(dest_dir, backend)
    if target.exists():
        raise FileExistsError(target)
    copy: Backend = BACKENDS[backend][0](target)
    try:
        with source.backend.reading() as tx:
            snap = Snapshot(tx, source.path)
            head = snap.chain_head()
            records = snap.count()
            rows = _copy_tables(tx, copy)
    finally:
        copy.close()
    return CopyReport(target, backend, rows, head, records)


def _copy_tables(source: Reader, copy: Backend) -> dict[str, int]:
    rows: dict[str, int] = {}
    for table in TABLES:
        pairs = iter_scan(source, table)
        rows[table] = 0
        while batch := list(itertools.islice(pairs, _BATCH)):
            with copy.writing() as tx:
                tx.put_many(table, batch)
            rows[table] += len(batch)
    return rows
