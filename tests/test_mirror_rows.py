"""The mirror's rows built by the compiled part (rust/src/rows.rs) are the rows the
Python code builds: the same tables, value for value and type for type, from real
vaults' records under two policies and from records holding every odd value a field
can hold; where Python fails (a value no Arrow column takes), the compiled path fails
the same way, because it leaves such a column to Python."""

from __future__ import annotations

import copy
import math
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import own_vault
from test_mirror_schema import full_record

from ccc_watch import _redb
from ccc_watch.index.indexer import Indexer
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.mirror import rows as rows_module
from ccc_watch.mirror.rows import Rows
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.walk import walk


def in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the compiled part build no column: rows.py builds all of them."""
    monkeypatch.setattr(_redb, "columns", lambda items, spec: [None] * len(spec))
    monkeypatch.setattr(_redb, "children", lambda items, k, f, spec: [None] * (len(spec) + 2))
    monkeypatch.setattr(_redb, "tag_rows", lambda items: None)
    monkeypatch.setattr(_redb, "anchor_rows", lambda items: None)

    def property_columns(values: list[Any]) -> tuple[pa.Array, ...]:
        made = (
            [rows_module._json(v) for v in values],
            [rows_module._property_text(v) for v in values],
            [rows_module._property_type(v) for v in values],
        )
        return tuple(pa.array(column, type=pa.string()) for column in made)

    monkeypatch.setattr(rows_module, "_property_columns", property_columns)
    monkeypatch.setattr(
        rows_module,
        "_days",
        lambda notes: pa.array([rows_module._note_day(n) for n in notes], type=pa.date32()),
    )


def built(records: list[dict[str, Any]], policy: IndexPolicy) -> dict[str, pa.Table] | str:
    """Rows.of's tables, or the type of the error it raised."""
    try:
        return dict(Rows.of(copy.deepcopy(records), policy).tables())
    except Exception as e:  # the error's type is what is compared
        return type(e).__name__


def both(
    records: list[dict[str, Any]], policy: IndexPolicy
) -> tuple[dict[str, pa.Table] | str, dict[str, pa.Table] | str]:
    compiled = built(records, policy)
    with pytest.MonkeyPatch.context() as mp:
        in_python(mp)
        python = built(records, policy)
    return compiled, python


def assert_same(compiled: dict[str, pa.Table] | str, python: dict[str, pa.Table] | str) -> None:
    if isinstance(python, str) or isinstance(compiled, str):
        assert compiled == python
        return
    assert compiled.keys() == python.keys()
    for name, table in python.items():
        assert compiled[name].schema == table.schema, name
        for column in table.column_names:
            assert compiled[name][column].to_pylist() == table[column].to_pylist(), (name, column)
        assert compiled[name].equals(table), name


def test_the_compiled_rows_are_the_python_rows_of_a_real_vault(tmp_path: Path) -> None:
    """Every note of a synthetic vault with its hostile files (odd names, bad YAML,
    private levels), indexed under the default policy and one that keeps INTERNAL
    notes whole: the tables are equal, batch by batch."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=250, seed=5, bad=True)
    files = walk(vault, IgnoreRules.load(vault)).files
    assert len(files) > 250
    for policy in (IndexPolicy(), IndexPolicy(default_classification="INTERNAL")):
        indexer = Indexer(vault, str(uuid.uuid4()), policy)
        records = [r for f in files if (r := indexer.index(f.key, Path(f.location)).record)]
        for start in range(0, len(records), 100):
            compiled, python = both(records[start : start + 100], policy)
            assert_same(compiled, python)
            assert not isinstance(compiled, str) and compiled["notes"].num_rows


# One field of a record set to an odd value: (field, value). Each either builds the
# same rows both ways, or fails both ways with the same error.
ODD = [
    ("title", "lone \ud800 surrogate"),
    ("title", "ünïcode ✓"),
    ("title", 5),
    ("title", b"bytes"),
    ("body", ""),
    ("body", None),
    ("tags", ["Ünïcode/Tag", "ünïcode", "x"]),
    ("tags", ["A/b", "a/c", "a/b", "B/c/d", "b"]),
    ("tags", ["dup", "dup", "z/y/x"]),
    ("tags", "a string"),
    ("tags", None),
    ("tags", []),
    ("tags", [1, "a"]),
    ("tags", ["with\ud800surrogate/x"]),
    ("aliases", "one alias"),
    ("aliases", 0),
    ("aliases", ["a", None]),
    ("aliases", ["ä", "b"]),
    ("size", 2**70),
    ("size", True),
    ("size", 3.5),
    ("size", -(2**63)),
    ("word_count", 2**63 - 1),
    ("mtime_ns", -1_500),
    ("mtime_ns", 2**80),
    ("mtime_ns", 1.5e18),
    ("mtime_ns", None),
    ("ctime_ns", -1),
    ("indexed_at", 1e300),
    ("indexed_at", math.inf),
    ("indexed_at", math.nan),
    ("indexed_at", 2.5e-6),
    ("indexed_at", 0.5e-6),
    ("indexed_at", 1.5e-6),
    ("indexed_at", 12),
    ("indexed_at", True),
    ("indexed_at", -0.0000015),
    ("path", "no/folder/at/all"),
    ("path", "top.md"),
    ("path", "/lead.md"),
    ("path", "ü/ß/ünï.md"),
    ("links", "not a list"),
    ("links", [1]),
    ("links", None),
    ("links", [{"target": None}, {}, {"target": "t", "line": 2**40}]),
    ("links", [{"target": "t", "line": True}]),
    ("links", [{"target": "t", "kind": 3}]),
    ("tasks", [{"line": None, "done": None, "text": None}]),
    ("tasks", [{"line": 3, "done": 1, "text": "x"}]),
    ("tasks", [{"line": 3, "done": False, "text": "x", "due": "2024-02-30"}]),
    ("tasks", [{"line": 3, "done": True, "status": "x", "priority": 2}]),
    ("tasks", ()),
    ("tasks", [{"line": 1, "due": "2024-02-29", "start": "2023-02-29", "created": ""}]),
    ("tasks", [{"line": 1, "due": "2024-W01-1", "scheduled": "20240101", "start": 5}]),
    ("tasks", [{"line": 1, "due": "0000-01-01", "completion": 0, "created": "2024-1-01"}]),
    ("tasks", [{"line": 1, "due": "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661"}]),
    ("tasks", [{"line": 1, "due": "2024-01-01T10:00", "scheduled": ["2024-01-01"]}]),
    ("headings", [{"level": 2, "text": "b", "line": 9}, {"level": 1, "text": "a", "line": 3}]),
    ("headings", [{"level": None, "text": "n", "line": None}, {"level": 0, "text": "z"}]),
    ("headings", [{"level": True, "text": "t", "line": 1}]),
    ("headings", [{"level": "2", "text": "t", "line": 1}]),
    ("headings", [{"level": 1, "text": None, "line": 1}]),
    ("headings", [{"level": 1, "text": "ü\ud800", "line": 1}]),
    ("headings", [{"level": 1, "text": "x", "line": 2**40}]),
    ("headings", "not a list"),
    ("blocks", [{"id": "b1", "line": 3}, {"id": "b0", "line": 3}, {"id": None, "line": 1}]),
    ("blocks", [{"id": "b1", "line": 0}, {"id": "b2"}]),
    ("frontmatter", {"d": "2024-01-01", "n": "2024-01-01\n", "t": "2024-01-01T10:00"}),
    ("frontmatter", {"s": "2024-01-01 10:00:00", "x": "2024-1-01", "y": "2024-01-01\nx"}),
    ("frontmatter", {"a": "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661", "b": "é ✓"}),
    ("frontmatter", {"q": 'say "hi"\\ \x00\x01\x1f\x7f\b\t\n\f\r /\u2028'}),
    ("frontmatter", {"i": 3, "f": 2.5, "g": 1e16, "h": -0.0, "big": 2**70}),
    ("frontmatter", {"l": [1, "a", None, True], "m": {"k": [1, {"z": 2}]}, "e": []}),
    ("frontmatter", {"t": True, "f": False, "n": None}),
    ("frontmatter", {"u": "lone \ud800"}),
    ("frontmatter", {"l": [True, False, None, 0, -(2**63), 2**63 - 1, "s", 'é\n"q"\\']}),
    ("frontmatter", {"l": [2**63], "m": [2**64], "n": [1.5], "o": [[]], "p": [{}]}),
    ("frontmatter", {"q": -(2**63) - 1, "r": 2**64, "s": 2**63 - 1, "t": -(2**63)}),
    ("frontmatter", {"l": ["lone \ud800"], "e": [], "one": [None], "z": ["ü", 1]}),
    ("fields", [{"key": "k", "value": "2024-01-01", "line": 2, "task": True}]),
    ("fields", [{"key": "n", "value": "12", "line": 2}, {"key": "f", "value": "1.5e3"}]),
    ("fields", [{"key": "b", "value": "true"}, {"key": "e", "value": ""}]),
    ("frontmatter", {"Date": "2024-02-29", "day": "2024-03-01"}),
    ("frontmatter", {"day": "2023-02-29", "DATE": " [[2024-05-06]] later"}),
    ("frontmatter", {"date": ["2021-01-02", "x"], "Day": []}),
    ("frontmatter", {"date": "\x1c\x0b 2022-12-31\x1f"}),
    ("frontmatter", {"date": "[2024-01-01]", "day": "[[2024-13-01]]"}),
    ("frontmatter", {"date": "0000-01-01", "dáy": "2024-01-01"}),
    ("frontmatter", {"date": "2024-01-01é"}),
    ("frontmatter", {"date": "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661"}),
    ("frontmatter", {"date": 20240101, "day": None, "DAY": ["x", "2024-01-01"]}),
    ("frontmatter", ["not", "a dict"]),
    ("fields", [{"key": "Date", "value": "2020-02-02", "task": False}]),
    ("fields", [{"key": "date", "value": "2020-02-02", "task": 1}, {"key": "day"}]),
    ("fields", [{"key": "dáte", "value": "2020-02-02"}, {"key": "date", "value": "2020-03-03"}]),
    ("fields", ["not a dict"]),
    ("path", "journal/2024-02-30 x.md"),
    ("path", "journal/x 20240229 y.md"),
    ("path", "journal/x 20230229.md"),
    ("path", "journal/2024/02/28.md"),
    ("path", "journal/2024/02/28.md\n"),
    ("path", "2024-02-28/note.md"),
    ("path", "/2024/02/28/x.md"),
    ("path", "a2024/02/28/x.md"),
    ("path", "x/2024/02/2.md"),
    ("path", "x/2024/02/28.mdx"),
    ("path", "ü/2024/02/28.md"),
    ("path", "notes/12345678901.md"),
    ("path", "notes/1999-12-31.md.md"),
]


@pytest.mark.parametrize(("field", "value"), ODD, ids=[f"{f}-{i}" for i, (f, _) in enumerate(ODD)])
def test_odd_values_build_the_same_rows_or_fail_the_same_way(field: str, value: Any) -> None:
    base = full_record()
    other = dict(full_record(), path="other.md", id="id-2", tags=["q/r/s"], links=[], tasks=[])
    record = dict(base, **{field: value})
    compiled, python = both([other, record, other | {"path": "third.md"}], IndexPolicy())
    assert_same(compiled, python)


def test_a_missing_field_is_a_null_both_ways() -> None:
    for field in [k for k in full_record() if k != "path"]:
        record = full_record()
        del record[field]
        compiled, python = both([record], IndexPolicy())
        assert_same(compiled, python)
    compiled, python = both(
        [{k: v for k, v in full_record().items() if k != "path"}], IndexPolicy()
    )
    assert compiled == python == "KeyError"


def test_no_records_give_empty_tables_of_the_schema() -> None:
    compiled, python = both([], IndexPolicy())
    assert_same(compiled, python)
    assert not isinstance(compiled, str) and compiled["notes"].num_rows == 0


def test_a_column_left_to_python_is_only_that_column(monkeypatch: pytest.MonkeyPatch) -> None:
    """One odd value in a batch costs the compiled path that column only: the other
    columns of the batch still come built (rows.py asks Python for none of them)."""
    asked: list[str] = []
    real = rows_module._field

    def spy(items: Any, name: str) -> Any:
        make = real(items, name)

        def made() -> list[Any]:
            asked.append(name)
            return make()

        return made

    monkeypatch.setattr(rows_module, "_field", spy)
    records = [full_record(), dict(full_record(), path="b.md")]
    Rows.of(records, IndexPolicy())
    assert asked == []
    records[1]["title"] = b"bytes"  # pyarrow takes bytes as UTF-8 text; the crate leaves it
    rows = Rows.of(records, IndexPolicy())
    assert asked == ["title"]
    assert rows.notes["title"].to_pylist() == ["T", "bytes"]
    assert rows.notes["body"].to_pylist() == ["the body", "the body"]
