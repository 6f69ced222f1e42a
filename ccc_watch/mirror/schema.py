"""The mirror's schema, written once: each table as its columns and their DuckDB types.

The DDL, the Arrow schema rows travel in, and the column order of the rows built for a
table all derive from these lists; the views are SQL over the tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa

# 2: `events` keeps each entry's exact time (ts) and its audit chain hash.
# 3: every time is a TIMESTAMPTZ (an instant, shown in the reader's time zone), so a
#    query like `time > now() - INTERVAL 1 HOUR` means the same in every zone; and
#    Dataview's vocabulary: notes.ctime and day, inline fields in `properties`, task
#    metadata, the `headings` table, broken_links.problem.
MIRROR_SCHEMA_VERSION = 3

# How each DuckDB type travels in Arrow: times in microseconds since the epoch (UTC),
# JSON as its text.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "VARCHAR[]": pa.list_(pa.string()),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
    "DOUBLE": pa.float64(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
}


@dataclass(frozen=True)
class Table:
    """A mirror table: its name, its columns as (name, DuckDB type) in order, and for a
    table of per-note rows the column holding the note's path."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: str | None = None

    def __post_init__(self) -> None:
        unknown = [t for _, t in self.columns if t not in _ARROW_TYPES]
        if unknown or (self.key is not None and self.key not in self.names):
            raise ValueError(f"mirror table {self.name}: bad type {unknown} or key {self.key}")

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(name for name, _ in self.columns)

    def ddl(self) -> str:
        """The CREATE TABLE statement."""
        return f"CREATE TABLE {self.name} ({', '.join(f'{n} {t}' for n, t in self.columns)})"

    @cached_property
    def arrow(self) -> pa.Schema:
        """The Arrow schema of this table's rows."""
        return pa.schema([(name, _ARROW_TYPES[t]) for name, t in self.columns])

    def arrow_table(self, **columns: Iterable[Any]) -> pa.Table:
        """An Arrow table of this table's rows, given column by column, by name: every
        column and no other, in any order."""
        missing, unknown = set(self.names) - columns.keys(), columns.keys() - set(self.names)
        if missing or unknown:
            raise TypeError(f"{self.name}: missing {sorted(missing)}, unknown {sorted(unknown)}")
        schema = self.arrow
        arrays = [pa.array(columns[field.name], type=field.type) for field in schema]
        return pa.Table.from_arrays(arrays, schema=schema)


NOTES = Table(
    "notes",
    (
        ("path", "VARCHAR"),
        ("id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("folder", "VARCHAR"),
        ("extension", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("mime", "VARCHAR"),
        ("record_type", "VARCHAR"),
        ("size", "BIGINT"),
        ("mtime", "TIMESTAMPTZ"),
        ("mtime_ns", "BIGINT"),
        ("ctime", "TIMESTAMPTZ"),
        ("day", "DATE"),
        ("blake3", "VARCHAR"),
        ("frontmatter", "JSON"),
        ("frontmatter_status", "VARCHAR"),
        ("frontmatter_error", "VARCHAR"),
        ("classification", "VARCHAR"),
        ("title", "VARCHAR"),
        ("aliases", "VARCHAR[]"),
        ("tags", "VARCHAR[]"),
        ("word_count", "BIGINT"),
        ("body", "VARCHAR"),
        ("error", "VARCHAR"),
        ("indexed_at", "TIMESTAMPTZ"),
    ),
    key="path",
)
LINKS = Table(
    "links",
    (
        ("source", "VARCHAR"),
        ("link_no", "INTEGER"),
        ("target", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("alias", "VARCHAR"),
        ("heading", "VARCHAR"),
        ("block", "VARCHAR"),
        ("line", "INTEGER"),
    ),
    key="source",
)
TAGS = Table("tags", (("path", "VARCHAR"), ("tag", "VARCHAR"), ("explicit", "BOOLEAN")), key="path")
PROPERTIES = Table(
    "properties",
    (
        ("path", "VARCHAR"),
        ("key", "VARCHAR"),
        ("value", "JSON"),
        ("text", "VARCHAR"),
        ("type", "VARCHAR"),
        ("source", "VARCHAR"),  # frontmatter, inline, or task (an inline field on a task)
        ("line", "INTEGER"),
        ("canonical_key", "VARCHAR"),  # Dataview's sanitized key: `Due Date` -> due-date
    ),
    key="path",
)
TASKS = Table(
    "tasks",
    (
        ("path", "VARCHAR"),
        ("line", "INTEGER"),
        ("done", "BOOLEAN"),
        ("text", "VARCHAR"),
        ("status", "VARCHAR"),
        ("section", "VARCHAR"),
        ("due", "DATE"),
        ("scheduled", "DATE"),
        ("start", "DATE"),
        ("created", "DATE"),
        ("completion", "DATE"),
        ("priority", "VARCHAR"),
    ),
    key="path",
)
HEADINGS = Table(
    "headings",
    (
        ("path", "VARCHAR"),
        ("kind", "VARCHAR"),  # heading, or block (a ^block id)
        ("level", "INTEGER"),
        ("text", "VARCHAR"),  # the heading's text, or the block's id
        ("line", "INTEGER"),
        ("parents", "VARCHAR[]"),  # the headings it lies under, outermost first
    ),
    key="path",
)
EVENTS = Table(
    "events",
    (
        ("seq", "BIGINT"),
        ("time", "TIMESTAMPTZ"),
        ("op", "VARCHAR"),
        ("path", "VARCHAR"),
        ("prev_path", "VARCHAR"),
        ("id", "VARCHAR"),
        ("blake3_before", "VARCHAR"),
        ("blake3_after", "VARCHAR"),
        ("cause", "VARCHAR"),
        ("ts", "DOUBLE"),  # `time` exactly as stored: what the chain hash covers
        ("hash", "VARCHAR"),  # the audit chain (`ccc-watch audit verify`)
    ),
)
MIRROR_STATE = Table(
    "mirror_state",
    (
        ("watermark", "BIGINT"),
        ("store_id", "VARCHAR"),
        ("vault_id", "VARCHAR"),
        ("schema_version", "INTEGER"),
        ("updated_at", "TIMESTAMPTZ"),
    ),
)
TABLES = (NOTES, LINKS, TAGS, PROPERTIES, TASKS, HEADINGS, EVENTS, MIRROR_STATE)
# The tables whose rows belong to one note each; a flush replaces a note's rows in all.
PER_NOTE = tuple(t for t in TABLES if t.key is not None)


def _anchor(sql: str) -> str:
    """A heading's text as link subpaths are compared with it (Dataview's rule, which
    mirrors Obsidian's): lower-cased, every run of characters other than letters,
    marks, digits, '_' and '-' one space, trimmed. `[[Note#What's New?]]` finds
    `## What's new`."""
    return f"trim(regexp_replace(lower({sql}), '[^\\p{{L}}\\p{{M}}\\p{{N}}_-]+', ' ', 'g'))"


# Created in this order: a view may read the ones before it.
VIEWS: dict[str, str] = {
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
    # A link is broken when its note is missing ('note'), or when the note is there but
    # not the heading ('heading') or block ('block') it names. Headings are looked for
    # only in notes whose text the mirror holds (not a private or unparsed one). In
    # [[Note#A#B]] the last part must be a heading and each earlier one a heading it
    # lies under.
    "broken_links": f"""
        WITH targets AS (
            SELECT r.*, coalesce(n.kind = 'note' AND n.body IS NOT NULL, false) AS readable
            FROM resolved_links r LEFT JOIN notes n ON n.path = r.resolved_path
        ), anchors AS (
            SELECT path, kind,
                   CASE kind WHEN 'block' THEN lower(text) ELSE {_anchor("text")} END AS key,
                   list_transform(parents, lambda p: {_anchor("p")}) AS parent_keys
            FROM headings
        ), subpaths AS (
            SELECT source, link_no, resolved_path,
                   list_filter(list_transform(string_split(heading, '#'), lambda x: {_anchor("x")}),
                               lambda x: x <> '') AS parts
            FROM targets WHERE readable AND heading IS NOT NULL AND block IS NULL
        ), found AS (
            SELECT DISTINCT s.source, s.link_no FROM subpaths s
            JOIN anchors a ON a.path = s.resolved_path AND a.kind = 'heading'
                          AND a.key = s.parts[-1]
            WHERE list_has_all(a.parent_keys, list_slice(s.parts, 1, len(s.parts) - 1))
            UNION
            SELECT DISTINCT t.source, t.link_no FROM targets t
            JOIN anchors a ON a.path = t.resolved_path AND a.kind = 'block'
                          AND a.key = lower(t.block)
            WHERE t.readable AND t.block IS NOT NULL
        ), judged AS (
            SELECT t.* EXCLUDE (readable),
                   CASE WHEN t.resolved_path IS NULL THEN 'note'
                        WHEN NOT t.readable OR f.source IS NOT NULL THEN NULL
                        WHEN t.block IS NOT NULL THEN 'block'
                        WHEN t.heading IS NOT NULL THEN 'heading' END AS problem
            FROM targets t LEFT JOIN found f USING (source, link_no)
        )
        SELECT * FROM judged WHERE problem IS NOT NULL""",
    "backlinks": """
        SELECT resolved_path AS path, source AS linked_from, kind, alias, heading, block,
               line
        FROM resolved_links WHERE resolved_path IS NOT NULL AND resolved_path <> source""",
    "orphans": """
        SELECT n.path FROM notes n
        WHERE n.kind = 'note'
          AND NOT EXISTS (SELECT 1 FROM links l WHERE l.source = n.path)
          AND NOT EXISTS (SELECT 1 FROM backlinks b WHERE b.path = n.path)""",
    # Tags compared case-insensitively, as Obsidian does: `MOC` and `moc` are one tag,
    # named by the spelling the most notes use (the first in sort order on a tie).
    "tag_counts": """
        WITH spellings AS (
            SELECT lower(tag) AS folded, tag, count(DISTINCT path) AS n FROM tags GROUP BY ALL
        ), named AS (
            SELECT folded, first(tag ORDER BY n DESC, tag) AS tag FROM spellings GROUP BY folded
        )
        SELECT n.tag, count(DISTINCT t.path) AS notes, bool_or(t.explicit) AS used_directly
        FROM tags t JOIN named n ON n.folded = lower(t.tag)
        GROUP BY n.tag ORDER BY notes DESC, n.tag""",
}
