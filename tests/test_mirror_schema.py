"""The mirror's schema is written once (ccc_watch/mirror/schema.py): the DDL it generates
gives the tables the README documents, with today's types, and the rows built for each
table come in its columns' order."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ccc_watch.index.policy import IndexPolicy
from ccc_watch.mirror.mirror import _insert, mirror_rows
from ccc_watch.mirror.rows import Rows, events_rows
from ccc_watch.mirror.schema import EVENTS, PER_NOTE, TABLES, VIEWS, Table
from ccc_watch.store import Change

README = Path(__file__).resolve().parents[1] / "README.md"

# The tables as the mirror's DuckDB v1.4.0 files hold them (schema version 3: every
# time a TIMESTAMPTZ, Dataview's vocabulary), written independently of schema.py: the
# generated DDL must give exactly these.
STORED = {
    "notes": """
        path VARCHAR, id VARCHAR, name VARCHAR, folder VARCHAR, extension VARCHAR,
        kind VARCHAR, mime VARCHAR, record_type VARCHAR, size BIGINT, mtime TIMESTAMPTZ,
        mtime_ns BIGINT, ctime TIMESTAMPTZ, day DATE, blake3 VARCHAR, frontmatter JSON,
        frontmatter_status VARCHAR, frontmatter_error VARCHAR, classification VARCHAR,
        title VARCHAR, aliases VARCHAR[], tags VARCHAR[], word_count BIGINT, body VARCHAR,
        error VARCHAR, indexed_at TIMESTAMPTZ""",
    "links": """
        source VARCHAR, link_no INTEGER, target VARCHAR, kind VARCHAR, alias VARCHAR,
        heading VARCHAR, block VARCHAR, line INTEGER""",
    "tags": "path VARCHAR, tag VARCHAR, explicit BOOLEAN",
    "properties": """
        path VARCHAR, key VARCHAR, value JSON, text VARCHAR, type VARCHAR, source VARCHAR,
        line INTEGER, canonical_key VARCHAR""",
    "tasks": """
        path VARCHAR, line INTEGER, done BOOLEAN, text VARCHAR, status VARCHAR,
        section VARCHAR, due DATE, scheduled DATE, start DATE, created DATE,
        completion DATE, priority VARCHAR""",
    "headings": """
        path VARCHAR, kind VARCHAR, level INTEGER, text VARCHAR, line INTEGER,
        parents VARCHAR[]""",
    "events": """
        seq BIGINT, time TIMESTAMPTZ, op VARCHAR, path VARCHAR, prev_path VARCHAR,
        id VARCHAR, blake3_before VARCHAR, blake3_after VARCHAR, cause VARCHAR, ts DOUBLE,
        hash VARCHAR""",
    "mirror_state": """
        watermark BIGINT, store_id VARCHAR, vault_id VARCHAR, schema_version INTEGER,
        updated_at TIMESTAMPTZ""",
}


def readme_tables() -> dict[str, list[str]]:
    """The README's mirror table: each table's column names, '[]' kept for lists, and
    ' JSON' or ' TIMESTAMPTZ' added where it says '(JSON)' or '(TIMESTAMPTZ)'."""
    section = README.read_text().split("## The DuckDB mirror", 1)[1].split("\n## ", 1)[0]
    tables = {}
    for name, columns in re.findall(r"^\| `(\w+)` \| (.+) \|$", section, re.MULTILINE):
        columns = re.sub(r" \((JSON|TIMESTAMPTZ)\)", r" \1", columns)
        columns = re.sub(r" \([^)]*\)", "", columns)  # the explanations
        tables[name] = [c.strip() for c in columns.rpartition(": ")[2].split(",")]
    return tables


# How the README marks a column's type where it matters to a query (DESCRIBE's names).
DOCUMENTED_TYPES = {"JSON": " JSON", "TIMESTAMP WITH TIME ZONE": " TIMESTAMPTZ", "VARCHAR[]": "[]"}


def described(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]


def test_ddl_creates_the_tables_the_readme_lists_with_todays_types() -> None:
    """Each generated CREATE TABLE gives the README's columns, in its order, with the
    types the mirror has always stored; the README lists no table the schema lacks."""
    con = duckdb.connect()
    readme = readme_tables()
    for table in TABLES:
        con.execute(table.ddl())
        con.execute(f"CREATE TABLE stored_{table.name} ({STORED[table.name]})")
        columns = described(con, table.name)
        assert columns == described(con, f"stored_{table.name}"), table.name
        documented = [name + DOCUMENTED_TYPES.get(type_, "") for name, type_ in columns]
        assert documented == readme[table.name], table.name
    assert set(readme) == {t.name for t in TABLES} | (set(VIEWS) - {"link_keys"})
    assert [t.name for t in TABLES] == list(STORED)


def full_record() -> dict[str, Any]:
    """A record with every field set, each to a value no other field has."""
    return {
        "path": "F/G/2024-02-29 a.md",
        "id": "id-1",
        "name": "a.md",
        "extension": ".md",
        "kind": "note",
        "mime": "text/markdown",
        "record_type": "Log",
        "size": 11,
        "mtime_ns": 1_700_000_000_123_456_789,
        "ctime_ns": 1_600_000_000_000_001_000,
        "blake3": "b" * 64,
        "frontmatter": {"title": "T", "n": 2},
        "frontmatter_status": "valid",
        "frontmatter_error": "fm-error",
        "classification": "PUBLIC",
        "title": "T",
        "aliases": ["al"],
        "tags": ["x/y"],
        "word_count": 7,
        "body": "the body",
        "error": "read-error",
        "indexed_at": 1_700_000_001.5,
        "links": [
            {
                "target": "tg",
                "kind": "embed",
                "alias": "al",
                "heading": "h",
                "block": "bl",
                "line": 4,
            },
        ],
        "tasks": [{
            "line": 9, "done": True, "text": "task", "status": "/", "section": "S",
            "due": "2024-01-02", "scheduled": "2024-01-03", "start": "2024-01-04",
            "created": "2024-01-05", "completion": "2024-01-06", "priority": "high",
        }],
        "fields": [{"key": "Due Date", "value": "3", "line": 5, "task": False}],
        "headings": [{"level": 2, "text": "S", "line": 3}],
        "blocks": [{"id": "b1", "line": 8}],
    }  # fmt: skip


P = "F/G/2024-02-29 a.md"
EXPECTED = {
    "notes": [{
        "path": P, "id": "id-1", "name": "a.md", "folder": "F/G", "extension": ".md",
        "kind": "note", "mime": "text/markdown", "record_type": "Log", "size": 11,
        "mtime": datetime(2023, 11, 14, 22, 13, 20, 123456, UTC),
        "mtime_ns": 1_700_000_000_123_456_789,
        "ctime": datetime(2020, 9, 13, 12, 26, 40, 1, UTC), "day": date(2024, 2, 29),
        # keys sorted, as the store encodes them
        "blake3": "b" * 64, "frontmatter": '{"n":2,"title":"T"}', "frontmatter_status": "valid",
        "frontmatter_error": "fm-error", "classification": "PUBLIC", "title": "T",
        "aliases": ["al"], "tags": ["x/y"], "word_count": 7, "body": "the body",
        "error": "read-error", "indexed_at": datetime(2023, 11, 14, 22, 13, 21, 500000, UTC),
    }],
    "links": [{"source": P, "link_no": 0, "target": "tg", "kind": "embed",
               "alias": "al", "heading": "h", "block": "bl", "line": 4}],
    "tags": [{"path": P, "tag": "x/y", "explicit": True},
             {"path": P, "tag": "x", "explicit": False}],
    "properties": [
        {"path": P, "key": "n", "value": "2", "text": "2", "type": "number",
         "source": "frontmatter", "line": None, "canonical_key": "n"},
        {"path": P, "key": "title", "value": '"T"', "text": "T", "type": "text",
         "source": "frontmatter", "line": None, "canonical_key": "title"},
        {"path": P, "key": "Due Date", "value": "3", "text": "3", "type": "number",
         "source": "inline", "line": 5, "canonical_key": "due-date"},
    ],
    "tasks": [{"path": P, "line": 9, "done": True, "text": "task", "status": "/", "section": "S",
               "due": date(2024, 1, 2), "scheduled": date(2024, 1, 3), "start": date(2024, 1, 4),
               "created": date(2024, 1, 5), "completion": date(2024, 1, 6), "priority": "high"}],
    "headings": [
        {"path": P, "kind": "heading", "level": 2, "text": "S", "line": 3, "parents": []},
        {"path": P, "kind": "block", "level": None, "text": "b1", "line": 8, "parents": ["S"]},
    ],
    "events": [{"seq": 5, "time": datetime(2023, 11, 14, 22, 13, 22, 250000, UTC), "op": "move",
                "path": P, "prev_path": "a.md", "id": "id-1", "blake3_before": "c",
                "blake3_after": "d", "cause": "watch", "ts": 1_700_000_002.25, "hash": "e" * 64}],
}  # fmt: skip


def test_rows_come_in_the_schemas_column_order_for_every_table() -> None:
    """Rows.of and the events rows carry each table's columns in the schema's order, and
    each value lands in its own column once written through the generated DDL."""
    rows = dict(Rows.of([full_record()], IndexPolicy()).tables())
    change = Change(
        seq=5, op="move", path=P, prev_path="a.md", id="id-1", blake3_before="c",
        blake3_after="d", cause="watch", ts=1_700_000_002.25, hash="e" * 64,
    )  # fmt: skip
    rows["events"] = events_rows([change])
    assert list(rows) == [t.name for t in (*PER_NOTE, EVENTS)]
    con = duckdb.connect()
    for table in (*PER_NOTE, EVENTS):
        assert rows[table.name].column_names == list(table.names), table.name
        assert rows[table.name].schema == table.arrow, table.name
        con.execute(table.ddl())
        _insert(con, table.name, rows[table.name])
        assert mirror_rows(con, table.name) == EXPECTED[table.name], table.name


def test_a_table_refuses_rows_missing_a_column_or_with_an_unknown_one() -> None:
    """Rows are given by column name: a missing or misspelt column is an error, never
    a column of NULLs or a shifted row."""
    tags = next(t for t in TABLES if t.name == "tags")
    assert tags.arrow_table(explicit=[True], tag=["t"], path=["p"]).to_pylist() == [
        {"path": "p", "tag": "t", "explicit": True}
    ]
    with pytest.raises(TypeError, match=r"missing \['explicit'\], unknown \['explict'\]"):
        tags.arrow_table(path=["p"], tag=["t"], explict=[True])
    with pytest.raises(ValueError, match="bad type"):
        Table("t", (("a", "HUGEINT"),))
