"""The Mirror: the store's records as DuckDB tables, for SQL analytics.

The store's changelog is applied exactly once: the rows of every path a batch of
changes touched are replaced by the store's current records, the changes are added to
`events`, and the watermark moves, all in ONE DuckDB transaction. A crash anywhere
leaves the old or the new state; re-applying is harmless because rows are replaced by
path, and the watermark check keeps `events` free of duplicates.

The file is held only while a batch is applied: an in-memory connection ATTACHes it
read-write, applies, and DETACHes (see the README for the measurement behind this).
Between flushes any process may open it, read-only, with DuckDB itself.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from ccc_watch.errors import CccWatchError
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.procs import owner_pid, pid_alive
from ccc_watch.store import MIRROR_FILE, Change, Record, Store

MIRROR_SCHEMA_VERSION = 1
# DuckDB 2.0 writes a format 1.4 cannot read unless told otherwise; 1.4 is the LTS
# many notebooks and DBeaver still run.
STORAGE_VERSION = "v1.4.0"
ALIAS = "mirror"


class MirrorError(CccWatchError):
    """The mirror cannot be read or written."""


class MirrorBusyError(MirrorError):
    """Another process holds the DuckDB file (a reader, or another writer)."""


_TABLES: dict[str, str] = {
    "notes": """
        path VARCHAR, id VARCHAR, name VARCHAR, folder VARCHAR, extension VARCHAR,
        kind VARCHAR, mime VARCHAR, record_type VARCHAR, size BIGINT, mtime TIMESTAMP,
        mtime_ns BIGINT, blake3 VARCHAR, frontmatter JSON, frontmatter_status VARCHAR,
        frontmatter_error VARCHAR, classification VARCHAR, title VARCHAR,
        aliases VARCHAR[], tags VARCHAR[], word_count BIGINT, body VARCHAR,
        error VARCHAR, indexed_at TIMESTAMP""",
    "links": """
        source VARCHAR, link_no INTEGER, target VARCHAR, kind VARCHAR, alias VARCHAR,
        heading VARCHAR, block VARCHAR, line INTEGER""",
    "tags": "path VARCHAR, tag VARCHAR, explicit BOOLEAN",
    "properties": "path VARCHAR, key VARCHAR, value JSON, text VARCHAR, type VARCHAR",
    "tasks": "path VARCHAR, line INTEGER, done BOOLEAN, text VARCHAR",
    "events": """
        seq BIGINT, time TIMESTAMP, op VARCHAR, path VARCHAR, prev_path VARCHAR,
        id VARCHAR, blake3_before VARCHAR, blake3_after VARCHAR, cause VARCHAR""",
    "mirror_state": """
        watermark BIGINT, store_id VARCHAR, vault_id VARCHAR, schema_version INTEGER,
        updated_at TIMESTAMP""",
}
# The column each per-path table is keyed by.
_PATH_COLUMN = {
    "notes": "path",
    "links": "source",
    "tags": "path",
    "properties": "path",
    "tasks": "path",
}

_VIEWS: dict[str, str] = {
    # Every way a note can be named in a link: each path suffix at a '/' boundary
    # (so 'b/c.md' and 'c.md' for 'a/b/c.md'), and for notes the same without '.md'.
    "link_keys": """
        WITH parts AS (
            SELECT path, string_split(lower(path), '/') AS p FROM notes
        ), suffixes AS (
            SELECT path, array_to_string(p[i:], '/') AS key
            FROM parts, range(1, len(p) + 1) AS r(i)
        )
        SELECT path, key FROM suffixes
        UNION
        SELECT path, key[:-4] FROM suffixes WHERE key LIKE '%.md'""",
    # Obsidian's resolution: a path-qualified target matches a path suffix, a bare
    # name a file name (case-insensitive, extension optional for notes), an empty
    # target ([[#Heading]]) the note itself; ties go to the shortest path.
    "resolved_links": """
        WITH wanted AS (
            SELECT *, lower(regexp_replace(target, '^(\\./|/)+', '')) AS key FROM links
        ), matched AS (
            SELECT w.source, w.link_no,
                   min_by(k.path, lpad(length(k.path)::VARCHAR, 6, '0') || k.path)
                       AS resolved_path
            FROM wanted w JOIN link_keys k ON k.key = w.key
            WHERE w.key <> ''
            GROUP BY w.source, w.link_no
        )
        SELECT w.source, w.link_no, w.target, w.kind, w.alias, w.heading, w.block, w.line,
               CASE WHEN w.key = '' THEN w.source ELSE m.resolved_path END AS resolved_path
        FROM wanted w LEFT JOIN matched m USING (source, link_no)""",
    "broken_links": "SELECT * FROM resolved_links WHERE resolved_path IS NULL",
    "backlinks": """
        SELECT resolved_path AS path, source AS linked_from, kind, alias, heading, block,
               line
        FROM resolved_links WHERE resolved_path IS NOT NULL AND resolved_path <> source""",
    "orphans": """
        SELECT n.path FROM notes n
        WHERE n.kind = 'note'
          AND NOT EXISTS (SELECT 1 FROM links l WHERE l.source = n.path)
          AND NOT EXISTS (SELECT 1 FROM backlinks b WHERE b.path = n.path)""",
    "tag_counts": """
        SELECT tag, count(DISTINCT path) AS notes, bool_or(explicit) AS used_directly
        FROM tags GROUP BY tag ORDER BY notes DESC, tag""",
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _property_type(value: Any) -> str:
    """Obsidian's property types: text, list, number, checkbox, date, datetime."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "checkbox"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str) and _DATE.match(value):
        return "date"
    if isinstance(value, str) and _DATETIME.match(value):
        return "datetime"
    return "text"


def _property_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(not isinstance(v, list | dict) for v in value):
        return ", ".join("" if v is None else str(v) for v in value)
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def _tag_parents(tag: str) -> list[str]:
    parts = tag.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _micros(seconds: float | None) -> int | None:
    """Microseconds since the epoch: what an Arrow timestamp('us') column holds."""
    return None if seconds is None else round(seconds * 1_000_000)


@dataclass
class Rows:
    """Rows of the per-path tables for a set of records, as tuples in column order
    (tuples and a column-wise Arrow build are several times faster than dicts)."""

    notes: list[tuple[Any, ...]]
    links: list[tuple[Any, ...]]
    tags: list[tuple[Any, ...]]
    properties: list[tuple[Any, ...]]
    tasks: list[tuple[Any, ...]]

    @classmethod
    def of(cls, records: Iterable[Record], policy: IndexPolicy) -> Rows:
        """Flatten records into table rows, applying the body policy once more."""
        rows = cls([], [], [], [], [])
        for rec in records:
            get = rec.get
            path = rec["path"]
            body = get("body") if policy.keeps_body(get("classification") or "") else None
            mtime_ns = get("mtime_ns")
            frontmatter = get("frontmatter") or {}
            rows.notes.append((
                path, get("id"), get("name"), path.rpartition("/")[0], get("extension"),
                get("kind"), get("mime"), get("record_type"), get("size"),
                None if mtime_ns is None else mtime_ns // 1000, mtime_ns, get("blake3"),
                orjson.dumps(frontmatter).decode(), get("frontmatter_status"),
                get("frontmatter_error"), get("classification"), get("title"),
                get("aliases") or [], get("tags") or [], get("word_count"), body,
                get("error"), _micros(get("indexed_at")),
            ))  # fmt: skip
            rows.links += [
                (path, no, link.get("target"), link.get("kind"), link.get("alias"),
                 link.get("heading"), link.get("block"), link.get("line"))
                for no, link in enumerate(get("links") or [])
            ]  # fmt: skip
            explicit = set(get("tags") or [])
            implied = {p for t in explicit for p in _tag_parents(t)} - explicit
            rows.tags += [(path, t, True) for t in sorted(explicit)]
            rows.tags += [(path, t, False) for t in sorted(implied)]
            rows.properties += [
                (path, key, orjson.dumps(value).decode(), _property_text(value),
                 _property_type(value))
                for key, value in frontmatter.items()
            ]  # fmt: skip
            rows.tasks += [
                (path, task.get("line"), task.get("done"), task.get("text"))
                for task in get("tasks") or []
            ]
        return rows

    def tables(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """(table name, rows) for each per-path table."""
        yield from vars(self).items()


_ARROW: dict[str, pa.Schema] = {
    "notes": pa.schema([
        ("path", pa.string()), ("id", pa.string()), ("name", pa.string()),
        ("folder", pa.string()), ("extension", pa.string()), ("kind", pa.string()),
        ("mime", pa.string()), ("record_type", pa.string()), ("size", pa.int64()),
        ("mtime", pa.timestamp("us")), ("mtime_ns", pa.int64()), ("blake3", pa.string()),
        ("frontmatter", pa.string()), ("frontmatter_status", pa.string()),
        ("frontmatter_error", pa.string()), ("classification", pa.string()),
        ("title", pa.string()), ("aliases", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())), ("word_count", pa.int64()), ("body", pa.string()),
        ("error", pa.string()), ("indexed_at", pa.timestamp("us")),
    ]),
    "links": pa.schema([
        ("source", pa.string()), ("link_no", pa.int32()), ("target", pa.string()),
        ("kind", pa.string()), ("alias", pa.string()), ("heading", pa.string()),
        ("block", pa.string()), ("line", pa.int32()),
    ]),
    "tags": pa.schema([("path", pa.string()), ("tag", pa.string()),
                       ("explicit", pa.bool_())]),
    "properties": pa.schema([("path", pa.string()), ("key", pa.string()),
                             ("value", pa.string()), ("text", pa.string()),
                             ("type", pa.string())]),
    "tasks": pa.schema([("path", pa.string()), ("line", pa.int32()), ("done", pa.bool_()),
                        ("text", pa.string())]),
    "events": pa.schema([
        ("seq", pa.int64()), ("time", pa.timestamp("us")), ("op", pa.string()),
        ("path", pa.string()), ("prev_path", pa.string()), ("id", pa.string()),
        ("blake3_before", pa.string()), ("blake3_after", pa.string()), ("cause", pa.string()),
    ]),
}  # fmt: skip


def _event_rows(changes: Iterable[Change]) -> list[tuple[Any, ...]]:
    return [
        (c.seq, _micros(c.ts), c.op, c.path, c.prev_path, c.id, c.blake3_before,
         c.blake3_after, c.cause)
        for c in changes
    ]  # fmt: skip


@dataclass
class FlushResult:
    """What one flush did."""

    applied: int  # changelog entries applied
    watermark: int
    rebuilt: bool
    held_seconds: float  # how long the DuckDB file was held read-write


class Mirror:
    """The DuckDB mirror of one store, in `<data_dir>/mirror.duckdb`."""

    def __init__(
        self, data_dir: Path, policy: IndexPolicy | None = None, batch_changes: int = 50_000
    ) -> None:
        self.path = data_dir / MIRROR_FILE
        self.policy = policy or IndexPolicy()
        self.batch_changes = batch_changes

    # --- writing ------------------------------------------------------------

    @contextmanager
    def _attached(self, path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory connection with `path` attached read-write as the default."""
        con = duckdb.connect()
        try:
            try:
                con.execute(
                    f"ATTACH '{_sql_str(path)}' AS {ALIAS} (STORAGE_VERSION '{STORAGE_VERSION}')"
                )
            except duckdb.IOException as e:
                if "lock" in str(e).lower():
                    raise MirrorBusyError(
                        f"the mirror is open in another process; retry when it lets go: {path}"
                    ) from e
                raise MirrorError(f"cannot open the mirror {path}: {e}") from e
            con.execute(f"USE {ALIAS}")
            yield con
            con.execute("USE memory")
            con.execute(f"DETACH {ALIAS}")
        finally:
            con.close()

    def state(self, con: duckdb.DuckDBPyConnection) -> tuple[int, str | None] | None:
        """(watermark, store id) of an attached mirror, or None when it has no state."""
        try:
            # fetchall: DuckDB 2 refuses new statements while a result is unfinished.
            rows = con.execute("SELECT watermark, store_id FROM mirror_state").fetchall()
        except duckdb.CatalogException:
            return None
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def flush(self, store: Store) -> FlushResult:
        """Apply the store's changes after the watermark; rebuild when the mirror is
        missing, of another store, or ahead of the store."""
        if not self.path.exists():
            return self.rebuild(store)
        started = time.perf_counter()
        applied = 0
        with self._attached(self.path) as con:
            state = self.state(con)
            store_id = store.meta.get("store_id")
            if state is None or state[1] != store_id:
                rebuild_needed = True
            else:
                rebuild_needed = False
                watermark = state[0]
                while True:
                    with store.snapshot() as snap:
                        if snap.head() < watermark:
                            rebuild_needed = True
                            break
                        changes = snap.changes_after(watermark, self.batch_changes)
                        if not changes:
                            break
                        touched = {c.path for c in changes} | {
                            c.prev_path for c in changes if c.prev_path
                        }
                        records = [r for r in map(snap.get, sorted(touched)) if r is not None]
                    self._apply(con, watermark, changes, touched, records)
                    watermark = changes[-1].seq
                    applied += len(changes)
        held = time.perf_counter() - started
        if rebuild_needed:
            return self.rebuild(store)
        return FlushResult(applied, watermark, False, held)

    def _apply(
        self,
        con: duckdb.DuckDBPyConnection,
        expected: int,
        changes: list[Change],
        touched: set[str],
        records: list[Record],
    ) -> None:
        rows = Rows.of(records, self.policy)
        con.execute("BEGIN")
        try:
            state = self.state(con)
            if state is None or state[0] != expected:
                raise MirrorError(f"mirror watermark moved underneath this flush: {self.path}")
            con.register("touched", pa.table({"path": sorted(touched)}))
            for table, column in _PATH_COLUMN.items():
                con.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT path FROM touched)")
            for table, table_rows in rows.tables():
                _insert(con, table, table_rows)
            _insert(con, "events", _event_rows(changes))
            con.execute(
                "UPDATE mirror_state SET watermark = ?, updated_at = now()",
                [changes[-1].seq],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("touched")

    def rebuild(self, store: Store) -> FlushResult:
        """Write a complete new mirror from one store snapshot, then swap it in."""
        started = time.perf_counter()
        for stale in self.path.parent.glob(f".{MIRROR_FILE}.*.tmp*"):  # and its .wal
            pid = owner_pid(stale.name)
            if pid is not None and not pid_alive(pid):  # left by a killed rebuild
                _remove_file(stale)
        tmp = self.path.with_name(f".{MIRROR_FILE}.{os.getpid()}.tmp")
        _remove_db(tmp)
        with store.snapshot() as snap, self._attached(tmp) as con:
            for table, columns in _TABLES.items():
                con.execute(f"CREATE TABLE {table} ({columns})")
            head = snap.head()
            batch: list[Record] = []
            for rec in snap.records():
                batch.append(rec)
                if len(batch) >= 5000:
                    for table, table_rows in Rows.of(batch, self.policy).tables():
                        _insert(con, table, table_rows)
                    batch = []
            for table, table_rows in Rows.of(batch, self.policy).tables():
                _insert(con, table, table_rows)
            after = 0
            while events := snap.changes_after(after, 50_000):
                _insert(con, "events", _event_rows(events))
                after = events[-1].seq
            con.execute(
                "INSERT INTO mirror_state VALUES (?, ?, ?, ?, now())",
                [
                    head,
                    store.meta.get("store_id"),
                    store.meta.get("vault_id"),
                    MIRROR_SCHEMA_VERSION,
                ],
            )
            for name, sql in _VIEWS.items():
                con.execute(f"CREATE VIEW {name} AS {sql}")
            con.execute(f"CHECKPOINT {ALIAS}")
        os.chmod(tmp, 0o600)
        # A WAL left by a killed writer of the old file must not be replayed onto the
        # new one.
        _remove_file(self.path.with_name(self.path.name + ".wal"))
        os.replace(tmp, self.path)
        return FlushResult(head, head, True, time.perf_counter() - started)

    # --- reading ------------------------------------------------------------

    def connect(self, retry_seconds: float = 5.0) -> duckdb.DuckDBPyConnection:
        """A read-only connection, retrying while a flush holds the file."""
        if not self.path.exists():
            raise MirrorError(f"no mirror yet at {self.path}; run `ccc-watch mirror`")
        deadline = time.monotonic() + retry_seconds
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=True)
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise MirrorError(f"cannot open the mirror {self.path}: {e}") from e
                if time.monotonic() >= deadline:
                    raise MirrorBusyError(
                        f"the mirror stayed locked for {retry_seconds:.0f} s: {self.path}"
                    ) from e
                time.sleep(0.05)

    def watermark(self) -> int | None:
        """The last changelog sequence applied, or None when there is no mirror."""
        if not self.path.exists():
            return None
        with self.connect() as con:
            rows = con.execute("SELECT watermark FROM mirror_state").fetchall()
        return int(rows[0][0]) if rows else None


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    schema = _ARROW[table]
    columns = zip(*rows, strict=True)
    arrow = pa.Table.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
    con.register("incoming", arrow)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
    finally:
        con.unregister("incoming")


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def _remove_file(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()


def _remove_db(path: Path) -> None:
    _remove_file(path)
    _remove_file(path.with_name(path.name + ".wal"))


def mirror_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[Mapping[str, Any]]:
    """Every row of a mirror table as a dict (for tests and tools)."""
    cur = con.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
