# ruff: noqa: RUF001 (the Tasks plugin writes these emoji)
"""Dataview's vocabulary (README "Dataview's fields"): inline fields, task metadata,
implicit fields, headings and block ids with the broken links they reveal, and tags
one whatever their case. Real files in a temp vault, indexed by the real indexer into
a real redb store, mirrored into a real DuckDB file, and read back with SQL."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ccc_watch.changes.rebuild import rebuild
from ccc_watch.changes.reconcile import POLICY_META, reconcile
from ccc_watch.index.indexer import Indexer
from ccc_watch.index.note import parse_note
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.mirror.mirror import Mirror, _insert, mirror_rows
from ccc_watch.mirror.rows import Rows
from ccc_watch.mirror.schema import PER_NOTE
from ccc_watch.store import Upsert, open_store
from ccc_watch.vault.ignore import IgnoreRules


def mirrored(tmp_path: Path, files: dict[str, str]) -> Mirror:
    """The vault of `files` rebuilt into a store and mirrored into DuckDB."""
    vault = tmp_path / "v"
    for rel, text in files.items():
        path = vault / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    data = tmp_path / "d"
    rebuild(vault, data)
    with open_store(data, vault_root=vault.resolve()) as store:
        Mirror(data).flush(store)
    return Mirror(data)


def query(mirror: Mirror, sql: str) -> list[tuple[Any, ...]]:
    with mirror.connect() as con:
        return con.execute(sql).fetchall()


# --- inline fields ------------------------------------------------------------------

FIELDS_NOTE = """---
status: draft
---
# Title
Status:: active
**Due Date**:: 2024-05-01
Some text [rating:: 8] and a hidden (mood:: calm (mostly)) one; [flag:: true].
- Author:: Ann
- [ ] a task [owner:: Bob]
> Quoted:: yes
`Code:: no` and `[code:: no]`, %% Comment:: no %% <!-- html:: no -->
[source:: [[Other Note]]] [empty::]
Not a field: http://x.org/a::b and Key.With.Dots:: no

```
Fenced:: no
[fenced:: no]
```

    Indented:: no
"""


def test_inline_fields_reach_properties_beside_frontmatter(tmp_path: Path) -> None:
    """Whole-line, [bracketed] and (parenthesised) fields are properties with source
    'inline' (or 'task' on a task's line), their line, a typed value and Dataview's
    sanitized key; nothing in code, inline code or comments is a field."""
    mirror = mirrored(tmp_path, {"n.md": FIELDS_NOTE})
    rows = query(mirror, "SELECT key, value, text, type, source, line, canonical_key "
                         "FROM properties ORDER BY line NULLS FIRST, key")  # fmt: skip
    got = [(k, json.loads(v), t, ty, s, line, c) for k, v, t, ty, s, line, c in rows]
    assert got == [
        ("status", "draft", "draft", "text", "frontmatter", None, "status"),
        ("Status", "active", "active", "text", "inline", 5, "status"),
        ("Due Date", "2024-05-01", "2024-05-01", "date", "inline", 6, "due-date"),
        ("flag", True, "true", "checkbox", "inline", 7, "flag"),
        ("mood", "calm (mostly)", "calm (mostly)", "text", "inline", 7, "mood"),
        ("rating", 8, "8", "number", "inline", 7, "rating"),
        ("Author", "Ann", "Ann", "text", "inline", 8, "author"),
        ("owner", "Bob", "Bob", "text", "task", 9, "owner"),
        ("Quoted", "yes", "yes", "text", "inline", 10, "quoted"),
        ("empty", None, None, "null", "inline", 12, "empty"),
        ("source", "[[Other Note]]", "[[Other Note]]", "text", "inline", 12, "source"),
    ]
    # The field's link is still a link.
    assert ("Other Note",) in query(mirror, "SELECT target FROM links")


def test_hostile_lines_give_bounded_fields_and_never_hang(tmp_path: Path) -> None:
    """Thousands of fields, unmatched brackets by the thousand, runs of backslashes,
    huge keys and odd unicode keys: the note indexes, fields stay bounded (10,000 per
    note), and a line over 32,768 characters gives none. A scan quadratic in the line
    length would take hours here; the guard below only stops a hang."""
    weird = "\u202eevil\u200b key\U0001f3af\u0301\uff1a"  # RTL, ZWSP, emoji, mark, fullwidth :
    lines = [
        "[k:: v] " * 4000,  # 4,000 fields on one line
        "[a:: " * 6000,  # opened and never closed
        "(k:: (" * 5000,
        "[a:: " + "\\" * 30000 + "]",
        "_" * 30000 + "!:: v",  # a whole-line key that is not one
        f"[{weird}:: ok]",
        "[k:: v] " * 4200,  # over MAX_LINE: no field
    ]
    text = "\n".join(lines * 20) + "\n[last:: one]\n"
    note = parse_note(text)
    assert len(note.fields) == 10_000
    assert {f["key"] for f in note.fields} <= {"k", "a", weird}
    mirror = mirrored(tmp_path, {"hostile.md": text, "ok.md": f"[{weird}:: ok]\n"})
    assert query(mirror, "SELECT count(*) FROM properties WHERE path = 'hostile.md'") == [(10_000,)]
    ((key, canonical),) = query(
        mirror, "SELECT key, canonical_key FROM properties WHERE path = 'ok.md'"
    )
    assert key == weird  # kept as written (the mirror is no terminal)
    assert canonical == "evil-key\U0001f3af"


test_hostile_lines_give_bounded_fields_and_never_hang = pytest.mark.timeout(120)(
    test_hostile_lines_give_bounded_fields_and_never_hang
)


# --- task metadata ------------------------------------------------------------------

TASKS_NOTE = """# Plan
- [ ] open
## Work
- [/] in progress 📅 2024-05-01 ⏳ 2024-04-28 🛫 2024-04-20 ➕ 2024-04-01 ⏫
- [x] done ✅ 2024-04-02 🔽
- [-] cancelled [due:: 2024-06-01] [priority:: Urgent]
### Deep
- [>] forwarded 📅️ 2024-07-01 [completion:: 2024-07-02] 🔺
- [?] bad date 📅 2024-13-45 [start:: soon]
1. [ ] numbered ⏬ `📅 2024-01-01`
"""


def test_task_metadata_dates_priority_status_and_section(tmp_path: Path) -> None:
    """Each task's status mark, its section, the Tasks plugin's emoji dates and
    Dataview's [due:: ...] fields, and priority; no date where the text holds none
    (inline code, an impossible date)."""
    mirror = mirrored(tmp_path, {"t.md": TASKS_NOTE})
    rows = query(mirror, "SELECT line, done, status, section, due, scheduled, start, created,"
                         " completion, priority FROM tasks ORDER BY line")  # fmt: skip
    d = date
    assert rows == [
        (2, False, " ", "Plan", None, None, None, None, None, None),
        (4, True, "/", "Work", d(2024, 5, 1), d(2024, 4, 28), d(2024, 4, 20), d(2024, 4, 1),
         None, "high"),
        (5, True, "x", "Work", None, None, None, None, d(2024, 4, 2), "low"),
        (6, True, "-", "Work", d(2024, 6, 1), None, None, None, None, "urgent"),
        (8, True, ">", "Deep", d(2024, 7, 1), None, None, None, d(2024, 7, 2), "highest"),
        (9, True, "?", "Deep", None, None, None, None, None, None),
        (10, False, " ", "Deep", None, None, None, None, None, "lowest"),
    ]  # fmt: skip
    # Open tasks due before a day, as a user would ask.
    assert query(mirror, "SELECT line FROM tasks WHERE status NOT IN ('x', '-') AND "
                         "due < DATE '2024-06-15'") == [(4,)]  # fmt: skip


# --- implicit fields ----------------------------------------------------------------


def test_implicit_fields_ctime_mtime_size_and_day(tmp_path: Path) -> None:
    """ctime, mtime and size from the file; day from a `date`/`day` field, else a date
    in the name (yyyy-mm-dd, then yyyymmdd), else a yyyy/mm/dd folder path."""
    mirror = mirrored(tmp_path, {
        "Daily/2024-03-05.md": "x", "Daily/20240306 standup.md": "x",
        "Journal/2024/03/07.md": "x", "Journal/2024-03-08/notes.md": "x",
        "meeting.md": "---\ndate: 2024-03-09\n---\n", "talk.md": "Day:: [[2024-03-10]]\n",
        "both 2024-01-01.md": "---\nday: 2024-03-11T10:00\n---\n",
        "none.md": "x", "bad 2024-02-30.md": "x", "task.md": "- [ ] [date:: 2024-01-01]\n",
    })  # fmt: skip
    days = dict(query(mirror, "SELECT path, day FROM notes"))
    assert days == {
        "Daily/2024-03-05.md": date(2024, 3, 5), "Daily/20240306 standup.md": date(2024, 3, 6),
        "Journal/2024/03/07.md": date(2024, 3, 7), "Journal/2024-03-08/notes.md": date(2024, 3, 8),
        "meeting.md": date(2024, 3, 9), "talk.md": date(2024, 3, 10),
        "both 2024-01-01.md": date(2024, 3, 11), "none.md": None, "bad 2024-02-30.md": None,
        "task.md": None,  # a field on a task is the task's, not the note's
    }  # fmt: skip
    vault = tmp_path / "v"
    for path, ctime, mtime, size in query(mirror, "SELECT path, ctime, mtime, size FROM notes"):
        st = os.stat(vault / path)
        assert isinstance(ctime, datetime) and isinstance(mtime, datetime)
        assert ctime.timestamp() == pytest.approx(st.st_ctime_ns / 1e9, abs=1e-5)
        assert mtime.timestamp() == pytest.approx(st.st_mtime_ns / 1e9, abs=1e-5)
        assert size == st.st_size


# --- headings, blocks and the links they check --------------------------------------

TARGET = """# Intro
Some text. ^para-1
## What's New?
### Details
- item ^Item2
## Other
### Details
"""


def test_headings_table_holds_levels_parents_and_block_ids(tmp_path: Path) -> None:
    """Every heading with its level and the headings it lies under, and every block id
    with its section; none from code."""
    mirror = mirrored(tmp_path, {"T.md": TARGET + "```\n# not a heading ^nope\n```\n"})
    sql = "SELECT kind, level, text, line, parents FROM headings ORDER BY line, kind DESC"
    assert query(mirror, sql) == [
        ("heading", 1, "Intro", 1, []),
        ("block", None, "para-1", 2, ["Intro"]),
        ("heading", 2, "What's New?", 3, ["Intro"]),
        ("heading", 3, "Details", 4, ["Intro", "What's New?"]),
        ("block", None, "Item2", 5, ["Intro", "What's New?", "Details"]),
        ("heading", 2, "Other", 6, ["Intro"]),
        ("heading", 3, "Details", 7, ["Intro", "Other"]),
    ]


def test_links_to_a_missing_heading_or_block_are_broken_links_of_their_own(
    tmp_path: Path,
) -> None:
    """A heading matches case-insensitively with punctuation runs as one space; in
    [[T#A#B]] B must lie under A; block ids match case-insensitively. A link into a
    note whose text the mirror does not hold (private) is not judged."""
    links = [
        "[[T#Intro]]", "[[t#what's new?]]", "[[T#What s New]]", "[[T#Details]]",
        "[[T#What's New#Details]]", "[[T#Intro#Details]]", "[[T#Other#Details]]",
        "[[T#^para-1]]", "[[T#^item2]]", "[t](T.md#What's%20New%3F)", "[[#Mine]]",
        "[[S#Anything]]", "[[S#^any]]",
        # broken:
        "[[T#Nope]]", "[[T#Details#Intro]]", "[[T#^gone]]", "[[Missing#Intro]]",
        "[[#Not mine]]", "![[T#Outro]]",
    ]  # fmt: skip
    mirror = mirrored(tmp_path, {
        "T.md": TARGET, "S.md": "---\nclassification: SECRET\n---\n# Anything\n",
        "src.md": "# Mine\n" + "\n".join(links) + "\n",
    })  # fmt: skip
    got = query(mirror, "SELECT target, heading, block, problem FROM broken_links ORDER BY link_no")
    assert got == [
        ("T", "Nope", None, "heading"),
        ("T", "Details#Intro", None, "heading"),
        ("T", None, "gone", "block"),
        ("Missing", "Intro", None, "note"),
        ("", "Not mine", None, "heading"),
        ("T", "Outro", None, "heading"),
    ]
    assert query(mirror, "SELECT count(*) FROM resolved_links") == [(len(links),)]


# --- tags ---------------------------------------------------------------------------


def test_tags_are_one_whatever_their_case(tmp_path: Path) -> None:
    """In a note, `#MOC` and `#moc` are one tag spelled as most often there; across the
    vault tag_counts counts them once, under the spelling most notes use; implied parents
    are one whatever their case."""
    mirror = mirrored(tmp_path, {
        "a.md": "#MOC #moc #moc\n", "b.md": "---\ntags: [MOC]\n---\n#Moc/Sub",
        "c.md": "#MOC", "d.md": "#moc/x #Moc/y",
    })  # fmt: skip
    tags = query(mirror, "SELECT path, tag, explicit FROM tags ORDER BY path, tag")
    assert tags == [
        ("a.md", "moc", True),
        ("b.md", "MOC", True), ("b.md", "Moc/Sub", True),
        ("c.md", "MOC", True),
        ("d.md", "Moc", False), ("d.md", "Moc/y", True), ("d.md", "moc/x", True),
    ]  # fmt: skip
    counts = query(mirror, "SELECT tag, notes, used_directly FROM tag_counts ORDER BY tag")
    assert ("MOC", 4, True) in counts  # a, b, c (explicit) and d (implied)
    assert not [t for t, _, _ in counts if t.lower() == "moc" and t != "MOC"]
    assert query(mirror, "SELECT notes FROM tag_counts WHERE lower(tag) = 'moc/sub'") == [(1,)]


# --- privacy, masking and old records -----------------------------------------------


def test_private_notes_give_no_dataview_rows(tmp_path: Path) -> None:
    """SECRET: no property, heading or task row, and `day` only from the path.
    CONFIDENTIAL: each task's line and state, nothing else of Dataview's."""
    body = ("# Secret Heading\nfieldkey:: fieldvalue [bk:: bv] ^blockid\n"
            "- [/] task 📅 2030-01-01 [owner:: someone]\n")  # fmt: skip
    mirror = mirrored(tmp_path, {
        "2024-01-02 s.md": f"---\nclassification: SECRET\ndate: 2030-05-05\n---\n{body}",
        "c.md": f"---\nclassification: CONFIDENTIAL\ndate: 2030-05-05\n---\n{body}",
    })  # fmt: skip
    assert query(mirror, "SELECT * FROM properties") == []
    assert query(mirror, "SELECT * FROM headings") == []
    tasks = "SELECT path, line, done, text, status, section, due, priority FROM tasks"
    assert query(mirror, tasks) == [("c.md", 7, True, None, None, None, None, None)]
    assert dict(query(mirror, "SELECT path, day FROM notes")) == {
        "2024-01-02 s.md": date(2024, 1, 2), "c.md": None,
    }  # fmt: skip
    data = tmp_path / "d"
    for path in data.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for word in ("Secret Heading", "fieldkey", "fieldvalue", "blockid", "someone"):
                assert word.encode() not in blob, (path.name, word)


def test_old_records_without_dataview_fields_still_mirror(tmp_path: Path) -> None:
    """A record written before these fields existed gives NULLs and no rows for them,
    never an error; and a store indexed under the old rules is parsed again at its next
    reconcile, so its records gain them."""
    old = {
        "path": "old.md", "id": "1", "kind": "note", "classification": "INTERNAL",
        "frontmatter": {"k": 1}, "tags": ["x"], "links": [{"target": "a", "heading": "H"}],
        "tasks": [{"line": 1, "done": False, "text": "t"}],
    }  # fmt: skip
    con = duckdb.connect()
    for table in PER_NOTE:
        con.execute(table.ddl())
    for name, rows in Rows.of([old], IndexPolicy()).tables():
        _insert(con, name, rows)
    (task,) = mirror_rows(con, "tasks")
    assert task["status"] is None and task["due"] is None and task["section"] is None
    assert mirror_rows(con, "headings") == []
    (note,) = mirror_rows(con, "notes")
    assert note["ctime"] is None and note["day"] is None

    vault, data = tmp_path / "v", tmp_path / "d"
    vault.mkdir()
    (vault / "n.md").write_text("## H\nk:: v\n")
    rebuild(vault, data)
    with open_store(data, vault_root=vault.resolve()) as store:
        rec = store.get("n.md")
        assert rec is not None
        stripped = {k: v for k, v in rec.items() if k not in ("fields", "headings", "blocks")}
        store.apply([Upsert(stripped)])
        assert "fields" not in (store.get("n.md") or {})
        store.set_meta(POLICY_META, "an older ccc-watch")
        indexer = Indexer(vault, store.meta["vault_id"])
        reconcile(vault, store, indexer, IgnoreRules.load(vault), offline=True)
        rec = store.get("n.md")
    assert rec is not None
    assert rec["fields"] == [{"key": "k", "value": "v", "line": 2, "task": False}]
    assert rec["headings"] == [{"level": 2, "text": "H", "line": 1}]
