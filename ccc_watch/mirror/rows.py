"""The mirror's rows: records (and changelog entries) flattened into the Arrow tables
of the mirror's schema, column by column.

No DuckDB here: the rebuild's worker processes build the rows of the files they index
(changes/rebuild.py), so that the main process only loads them.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson
import pyarrow as pa

from ccc_watch import _redb
from ccc_watch.index.fields import canonical
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.mirror.schema import (
    EVENTS,
    HEADINGS,
    LINKS,
    NOTES,
    PROPERTIES,
    TAGS,
    TASKS,
    Table,
)
from ccc_watch.store import Change, Record


def _json(value: Any) -> str:
    """JSON text with every object's keys sorted, as the store's encoding has them: a
    fresh record (a rebuild's worker) and the same record read back from the store give
    the same rows. Frontmatter is emitted in key order for the same reason."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _property_type(value: Any) -> str:
    """Obsidian's property types: text, list, number, checkbox, date, datetime."""
    if type(value) is str:  # the most common, first
        return "date" if _DATE.match(value) else "datetime" if _DATETIME.match(value) else "text"
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
    if type(value) is str:
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(not isinstance(v, list | dict) for v in value):
        return ", ".join("" if v is None else str(v) for v in value)
    if isinstance(value, list | dict):
        return _json(value)
    return str(value)


def _tag_parents(tag: str) -> list[str]:
    parts = tag.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _micros(seconds: float | None) -> int | None:
    """Microseconds since the epoch: what an Arrow timestamp('us', 'UTC') column holds."""
    return None if seconds is None else round(seconds * 1_000_000)


def _tag_rows(tags: list[str]) -> list[tuple[str, bool]]:
    """(tag, explicit): the note's own tags, then the parents they imply that it does
    not have in any case (`A/b` and `a/c` imply one `A`)."""
    explicit = sorted(set(tags))
    if not any("/" in t for t in explicit):  # no nested tag: no parent to imply
        return [(t, True) for t in explicit]
    seen = {t.lower() for t in explicit}
    implied = []
    for parent in sorted({p for t in explicit for p in _tag_parents(t)}):
        if parent.lower() not in seen:
            seen.add(parent.lower())
            implied.append(parent)
    return [(t, True) for t in explicit] + [(t, False) for t in implied]


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# Dataview's file.day: a date in the file's name, yyyy-mm-dd or else yyyymmdd.
_NAME_DATES = (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), re.compile(r"(\d{4})(\d{2})(\d{2})"))
# Beyond Dataview: daily notes filed as .../yyyy/mm/dd.md or under a yyyy-mm-dd folder.
_PATH_DATE = re.compile(r"(?:^|/)(\d{4})[/-](\d{2})[/-](\d{2})(?:\.md$|/)")
_FIELD_DATE = re.compile(r"(?:\[\[)?(\d{4})-(\d{2})-(\d{2})")


def _inline_value(text: str) -> Any:
    """An inline field's value as JSON: a number, true/false, or the text (empty: null)."""
    if not text:
        return None
    if text in ("true", "false"):
        return text == "true"
    if len(text) <= 64 and _NUMBER.fullmatch(text):
        number = float(text)
        return (
            int(number)
            if number.is_integer() and "." not in text and "e" not in text.lower()
            else number
        )
    return text


def _ymd(m: re.Match[str] | None) -> dt.date | None:
    if m is None:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _day_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in ("date", "day")


def _day(
    path: str, frontmatter: Mapping[str, Any], fields: list[Mapping[str, Any]]
) -> dt.date | None:
    """Dataview's file.day: a `date` or `day` field (frontmatter first, then inline)
    holding a date or a link to a dated note; else a date in the file's name; else (our
    addition) a yyyy/mm/dd or yyyy-mm-dd folder path."""
    values = [
        *(frontmatter[k] for k in sorted(filter(_day_key, frontmatter))),
        *(f.get("value") for f in fields if not f.get("task") and _day_key(f.get("key"))),
    ]
    for value in values:
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str):
            day = _ymd(_FIELD_DATE.match(value.strip()))
            if day is not None:
                return day
    name = path.rsplit("/", 1)[-1]
    name = name[:-3] if name.endswith(".md") else name
    for pattern in _NAME_DATES:
        m = pattern.search(name)
        if m is not None:
            return _ymd(m)
    return _ymd(_PATH_DATE.search(path))


def _note_day(note: Mapping[str, Any]) -> dt.date | None:
    """_day of a note (a record): what the compiled part leaves to Python."""
    return _day(note["path"], note.get("frontmatter") or {}, note.get("fields") or [])


def _days(notes: list[Mapping[str, Any]]) -> pa.Array:
    """The notes' day column: made by the compiled part over ASCII text, the other
    notes by _note_day."""
    return _built(_redb.days(notes, _note_day), pa.date32())


def _anchor_rows(note: Mapping[str, Any]) -> list[tuple[str, int | None, str, int, list[str]]]:
    """(kind, level, text, line, parents) of a note's headings and block ids, in line
    order; parents are the headings each lies under, outermost first."""
    items = [
        ("heading", h.get("level"), h.get("text"), h.get("line"))
        for h in note.get("headings") or []
    ]
    items += [("block", None, b.get("id"), b.get("line")) for b in note.get("blocks") or []]
    items.sort(key=lambda item: (item[3] or 0, item[0] == "block"))
    stack: list[tuple[int, str]] = []
    rows = []
    for kind, level, text, line in items:
        if kind == "heading":
            while stack and stack[-1][0] >= (level or 0):
                stack.pop()
        rows.append((kind, level, text, line, [t for _, t in stack]))
        if kind == "heading":
            stack.append((level or 0, text))
    return rows


def _date_value(text: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


_TASK_DATES = ("due", "scheduled", "start", "created", "completion")


def _task_dates(
    tasks: Callable[[], Sequence[Mapping[str, Any]]], name: str
) -> list[dt.date | None]:
    """The dates of one kind of each of tasks(): an ISO date, or None."""
    return [_date_value(t[name]) if t.get(name) else None for t in tasks()]


def _field(items: Callable[[], Sequence[Mapping[str, Any]]], name: str) -> Callable[[], list[Any]]:
    """The column of the field `name` of each of items(), made when called."""
    return lambda: [item.get(name) for item in items()]


# The columns the compiled part builds straight from the records: column -> (field,
# kind), the kinds as rust/src/rows.rs KINDS says (s str, i/q int32/int64, d a date...).
_NOTE_COLUMNS = {
    "path": ("path", "s"), "id": ("id", "s"), "name": ("name", "s"), "folder": ("path", "f"),
    "extension": ("extension", "s"), "kind": ("kind", "s"), "mime": ("mime", "s"),
    "record_type": ("record_type", "s"), "size": ("size", "q"), "mtime": ("mtime_ns", "m"),
    "mtime_ns": ("mtime_ns", "q"), "ctime": ("ctime_ns", "m"), "blake3": ("blake3", "s"),
    "frontmatter_status": ("frontmatter_status", "s"),
    "frontmatter_error": ("frontmatter_error", "s"),
    "classification": ("classification", "s"), "title": ("title", "s"),
    "aliases": ("aliases", "L"), "tags": ("tags", "L"), "word_count": ("word_count", "q"),
    "body": ("body", "s"), "error": ("error", "s"), "indexed_at": ("indexed_at", "u"),
}  # fmt: skip
_LINK_COLUMNS = {
    "target": ("target", "s"), "kind": ("kind", "s"), "alias": ("alias", "s"),
    "heading": ("heading", "s"), "block": ("block", "s"), "line": ("line", "i"),
}  # fmt: skip
_TASK_COLUMNS = {
    "line": ("line", "i"), "done": ("done", "b"), "text": ("text", "s"),
    "status": ("status", "s"), "section": ("section", "s"), "priority": ("priority", "s"),
    "due": ("due", "d"), "scheduled": ("scheduled", "d"), "start": ("start", "d"),
    "created": ("created", "d"), "completion": ("completion", "d"),
}  # fmt: skip


def _array(built: Any, arrow_type: pa.DataType) -> pa.Array | None:
    """A column the compiled part built, (kind, length, nulls, validity, offsets, data,
    item offsets), as an Arrow array of arrow_type; None when it built none."""
    if built is None:
        return None
    kind, n, nulls, valid, offsets, data, items = built
    validity = pa.py_buffer(valid) if nulls else None
    if kind == b"L":
        child = pa.Array.from_buffers(
            pa.string(), len(items) // 4 - 1, [None, pa.py_buffer(items), pa.py_buffer(data)]
        )
        return pa.Array.from_buffers(
            arrow_type, n, [validity, pa.py_buffer(offsets)], null_count=nulls, children=[child]
        )
    buffers = [validity] + ([pa.py_buffer(offsets)] if offsets is not None else [])
    return pa.Array.from_buffers(arrow_type, n, [*buffers, pa.py_buffer(data)], null_count=nulls)


def _built(built: Any, arrow_type: pa.DataType) -> pa.Array:
    """A column the compiled part always builds, as an Arrow array."""
    array = _array(built, arrow_type)
    assert array is not None
    return array


def _property_columns(values: list[Any]) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The properties' value (JSON), text and type columns: a scalar or a list of them
    made by the compiled part, any other value by the functions here."""
    made = _redb.property_values(values, _json, _property_text, _property_type)
    value, text, kind = (_built(column, pa.string()) for column in made)
    return value, text, kind


def _compiled(table: Table, built: Sequence[Any], names: Iterable[str]) -> dict[str, pa.Array]:
    """The columns built (None: not built) by name, as Arrow arrays of table's types."""
    out = {}
    for name, got in zip(names, built, strict=True):
        array = _array(got, table.arrow.field(name).type)
        if array is not None:
            out[name] = array
    return out


def _columns(
    built: Mapping[str, pa.Array], python: Mapping[str, Callable[[], Iterable[Any]]]
) -> dict[str, Any]:
    """Each column as built, or else as python gives it."""
    return {name: built[name] if name in built else make() for name, make in python.items()}


def _spread(paths: list[str], groups: list[Any]) -> tuple[list[str], list[Any]]:
    """The items of each note's group, and beside each the path of its note."""
    spread = [p for p, group in zip(paths, groups, strict=True) for _ in group]
    return spread, [item for group in groups for item in group]


@dataclass
class Rows:
    """The rows of the per-note tables for a set of records, as Arrow tables built column
    by column (columns and a column-wise Arrow build are several times faster than
    dicts per row); each column is named, the schema gives the order."""

    notes: pa.Table
    links: pa.Table
    tags: pa.Table
    properties: pa.Table
    tasks: pa.Table
    headings: pa.Table

    @classmethod
    def of(cls, records: Iterable[Record], policy: IndexPolicy) -> Rows:
        """Flatten records into table rows, applying the privacy policy once more (a
        record from an older indexer, or a bug, must not carry private text further)."""
        notes = [policy.shown(r) for r in records]
        paths = [n["path"] for n in notes]
        frontmatters = [n.get("frontmatter") or {} for n in notes]
        field_lists = [n.get("fields") or [] for n in notes]
        # What the compiled part builds exactly (rust/src/rows.rs); the other columns,
        # and any it could not build, as before.
        built = _redb.columns(notes, list(_NOTE_COLUMNS.values()))
        note_cols = _compiled(NOTES, built, _NOTE_COLUMNS)
        built = _redb.children(notes, "path", "links", list(_LINK_COLUMNS.values()))
        link_cols = _compiled(LINKS, built, ["source", "link_no", *_LINK_COLUMNS])
        built = _redb.children(notes, "path", "tasks", list(_TASK_COLUMNS.values()))
        task_cols = _compiled(TASKS, [built[0], *built[2:]], ["path", *_TASK_COLUMNS])
        built_tags = _redb.tag_rows(notes)
        tag_cols = {} if built_tags is None else _compiled(TAGS, built_tags, TAGS.names)

        # Made only for a column not built (and then once).
        link_lists = functools.cache(lambda: [n.get("links") or [] for n in notes])
        task_lists = functools.cache(lambda: [n.get("tasks") or [] for n in notes])
        tasks = functools.cache(lambda: [t for group in task_lists() for t in group])
        property_paths, props = _spread(
            paths,
            [
                [(k, v, "frontmatter", None) for k, v in sorted(fm.items())]
                + [
                    (
                        f.get("key"),
                        _inline_value(f.get("value") or ""),
                        "task" if f.get("task") else "inline",
                        f.get("line"),
                    )
                    for f in fields
                ]
                for fm, fields in zip(frontmatters, field_lists, strict=True)
            ],
        )
        values = [v for _, v, _, _ in props]
        value_col, text_col, type_col = _property_columns(values)
        built_anchors = _redb.anchor_rows(notes)
        anchor_cols = (
            {} if built_anchors is None else _compiled(HEADINGS, built_anchors, HEADINGS.names)
        )
        anchors = functools.cache(lambda: _spread(paths, [_anchor_rows(n) for n in notes]))

        links = functools.cache(lambda: _spread(paths, link_lists()))
        tags = functools.cache(
            lambda: _spread(paths, [_tag_rows(n.get("tags") or []) for n in notes])
        )

        return cls(
            notes=NOTES.arrow_table(
                day=_days(notes),
                frontmatter=[_json(fm) for fm in frontmatters],
                **_columns(note_cols, {
                    "path": lambda: paths,
                    "folder": lambda: [p.rpartition("/")[0] for p in paths],
                    "mtime": lambda: [None if ns is None else ns // 1000
                                      for ns in (n.get("mtime_ns") for n in notes)],
                    "ctime": lambda: [None if (ns := n.get("ctime_ns")) is None else ns // 1000
                                      for n in notes],
                    "aliases": lambda: [n.get("aliases") or [] for n in notes],
                    "tags": lambda: [n.get("tags") or [] for n in notes],
                    "indexed_at": lambda: [_micros(n.get("indexed_at")) for n in notes],
                    **{name: _field(lambda: notes, name) for name in (
                        "id", "name", "extension", "kind", "mime", "record_type", "size",
                        "mtime_ns", "blake3", "frontmatter_status", "frontmatter_error",
                        "classification", "title", "word_count", "body", "error",
                    )},
                }),
            ),
            links=LINKS.arrow_table(**_columns(link_cols, {
                "source": lambda: links()[0],
                "link_no": lambda: [no for group in link_lists() for no in range(len(group))],
                **{name: _field(lambda: links()[1], name) for name in _LINK_COLUMNS},
            })),
            tags=TAGS.arrow_table(**_columns(tag_cols, {
                "path": lambda: tags()[0],
                "tag": lambda: [t for t, _ in tags()[1]],
                "explicit": lambda: [e for _, e in tags()[1]],
            })),
            properties=PROPERTIES.arrow_table(
                path=property_paths,
                key=[k for k, _, _, _ in props],
                value=value_col,
                text=text_col,
                type=type_col,
                source=[s for _, _, s, _ in props],
                line=[line for _, _, _, line in props],
                canonical_key=[canonical(str(k)) for k, _, _, _ in props],
            ),
            tasks=TASKS.arrow_table(
                **_columns(task_cols, {
                    "path": lambda: _spread(paths, task_lists())[0],
                    **{name: _field(tasks, name)
                       for name in _TASK_COLUMNS if name not in _TASK_DATES},
                    **{d: functools.partial(_task_dates, tasks, d) for d in _TASK_DATES},
                }),
            ),
            headings=HEADINGS.arrow_table(**_columns(anchor_cols, {
                "path": lambda: anchors()[0],
                **{name: functools.partial(lambda i: [a[i] for a in anchors()[1]], i)
                   for i, name in enumerate(HEADINGS.names[1:])},
            })),
        )  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence[Rows]) -> Rows:
        """The rows of several parts as one (each table's chunks side by side)."""
        names = [f.name for f in fields(cls)]
        return cls(**{n: pa.concat_tables([getattr(p, n) for p in parts]) for n in names})

    def tables(self) -> Iterator[tuple[str, pa.Table]]:
        """(table name, rows) for each per-note table."""
        yield from vars(self).items()


def events_rows(changes: list[Change]) -> pa.Table:
    """The `events` rows of changelog entries."""
    copied = (
        *("seq", "op", "path", "prev_path", "id", "blake3_before", "blake3_after", "cause"),
        *("ts", "hash"),
    )
    return EVENTS.arrow_table(
        time=[_micros(c.ts) for c in changes],
        **{name: [getattr(c, name) for c in changes] for name in copied},
    )
