"""How `ccc-watch sql` writes a query's result: an aligned table, JSON, JSON lines or CSV.

One set of conventions for every format: a time is ISO 8601 with its offset (DuckDB
gives a TIMESTAMPTZ in the reader's time zone), a list is a JSON array, a JSON column
is the JSON itself, a DECIMAL or HUGEINT a number, a BOOLEAN true or false.

Values come from the vault, so nothing written here makes a terminal act: a table
escapes what is not printable as Python writes it (ccc_watch.log.safe.shown), JSON
writes it as \\u escapes (the same JSON to a parser), and CSV, which has no escapes,
is escaped like a table when it goes to a terminal and left as it is on a pipe.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ccc_watch.log.safe import json_shown, shown

FORMATS = ("table", "json", "nl", "csv")
ELLIPSIS = "…"
GAP = "  "  # between two columns of a table
NARROWEST = 4  # a column a table must shorten keeps at least this many cells


@dataclass(frozen=True)
class Result:
    """A query's columns (names and DuckDB type names) and rows."""

    names: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


def render(result: Result, fmt: str, *, terminal: bool = False, width: int | None = None) -> str:
    """The result as text in fmt (one of FORMATS). terminal: the text goes to a
    terminal (CSV is then escaped). width: the display width a table must fit in
    (None: no limit, every value whole)."""
    if not result.names:
        return ""
    if fmt == "json":
        objects = [_object(result, row) for row in result.rows]
        return json_shown(json.dumps(objects, ensure_ascii=False, indent=1)) + "\n"
    if fmt == "nl":
        return "".join(
            json_shown(json.dumps(_object(result, row), ensure_ascii=False, separators=(",", ":")))
            + "\n"
            for row in result.rows
        )
    if fmt == "csv":
        return _csv(result, terminal)
    if fmt == "table":
        return _table(result, width)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


# --- values -----------------------------------------------------------------------------


def json_value(value: Any, json_text: bool = False) -> Any:
    """A DuckDB value as JSON data: times as ISO 8601 strings, DECIMAL and HUGEINT as
    numbers, lists as arrays, structs and maps as objects, BLOB as hex, a NaN or an
    infinity as null (JSON has neither, and orjson, which `dump` writes with, does the
    same). json_text: the value is a JSON column's text, parsed back into its data."""
    if isinstance(value, str) and json_text:
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # DuckDB checked it; nested past Python's
            return value  # limit (a query can build that), it stays the text it is
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(v, json_text) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str) else _text(k): json_value(v) for k, v in value.items()}
    return str(value)


def _duration(value: timedelta) -> str:
    """An INTERVAL as an ISO 8601 duration: P1DT5400S, PT0.5S, -PT1S."""
    if value < timedelta(0):
        return "-" + _duration(-value)
    seconds = value.seconds + value.microseconds / 1_000_000
    days = f"{value.days}D" if value.days else ""
    clock = f"T{seconds:g}S" if seconds or not days else ""
    return f"P{days}{clock}"


def _text(value: Any) -> str:
    """A DuckDB value as the text a table or a CSV cell shows (not yet escaped)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value)  # exactly as stored, digits and all
    if isinstance(value, int | float):
        return repr(value)  # nan and inf too, which JSON has not
    if isinstance(value, datetime | date | time | timedelta | bytes | UUID):
        return str(json_value(value))
    return json.dumps(json_value(value), ensure_ascii=False, separators=(",", ":"))


def _json_columns(result: Result) -> list[bool]:
    """Which columns hold JSON text (JSON, or a list of JSON) to parse back."""
    return [t in ("JSON", "JSON[]") for t in result.types]


def _unique(names: Sequence[str]) -> list[str]:
    """Column names as JSON keys: a repeated name gets _1, _2, ... as DuckDB's CREATE
    TABLE AS does, so no column is lost."""
    seen: set[str] = set()
    out = []
    for name in names:
        key, n = name, 0
        while key in seen:
            n += 1
            key = f"{name}_{n}"
        seen.add(key)
        out.append(key)
    return out


def _object(result: Result, row: tuple[Any, ...]) -> dict[str, Any]:
    keys = _unique(result.names)
    parsed = _json_columns(result)
    return {k: json_value(v, p) for k, v, p in zip(keys, row, parsed, strict=True)}


# --- CSV ----------------------------------------------------------------------------------


def _csv(result: Result, terminal: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")

    def cells(values: Sequence[Any]) -> Iterator[str | None]:
        for value in values:
            if value is None:
                yield None
            else:
                yield shown(_text(value)) if terminal else _text(value)

    writer.writerow(cells(result.names))
    writer.writerows(cells(row) for row in result.rows)
    return out.getvalue()


# --- the table ----------------------------------------------------------------------------


def _numeric(values: list[Any]) -> bool:
    """A column of numbers (NULLs aside), right-aligned."""
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in present
    )


def _table(result: Result, width: int | None) -> str:
    names = [shown(n) for n in result.names]
    columns = list(zip(*result.rows, strict=True)) if result.rows else [() for _ in names]
    right = [_numeric(list(c)) for c in columns]
    texts = [["NULL" if v is None else shown(_text(v)) for v in c] for c in columns]
    # Printable ASCII (what shown() leaves of ASCII) takes one cell a character; other
    # text is measured by wcwidth, which loads only then (some 30 ms).
    ascii_only = all(n.isascii() for n in names) and all(t.isascii() for c in texts for t in c)
    cells_of = len if ascii_only else _display_width()
    natural = [max([cells_of(n), *map(cells_of, t)]) for n, t in zip(names, texts, strict=True)]
    widths = natural if width is None else _fitted(natural, width)

    last = len(names) - 1

    def line(row: Sequence[str]) -> str:
        parts = []
        for i, (text, w, r) in enumerate(zip(row, widths, right, strict=True)):
            short = _shortened(text, w, cells_of)
            pad = " " * (w - cells_of(short))
            parts.append(pad + short if r else short if i == last else short + pad)
        return GAP.join(parts)

    rows = len(result.rows)
    out = [line(names), GAP.join("-" * w for w in widths)]
    out += (line(row) for row in zip(*texts, strict=True)) if result.rows else ()
    out.append(f"({rows} row{'s' if rows != 1 else ''})")
    return "\n".join(out) + "\n"


def _display_width() -> Callable[[str], int]:
    """wcwidth's display width: CJK and emoji take two cells, combining marks none."""
    from wcwidth import width

    return width


def _fitted(natural: list[int], width: int) -> list[int]:
    """Column widths that fit in width cells: the widest columns are narrowed to one
    cap, the largest that fits (never below NARROWEST), then whatever room is left goes
    to them, one cell each from the left. When even that does not fit, the lines run
    over (the terminal wraps them)."""
    room = width - len(GAP) * (len(natural) - 1)
    if sum(natural) <= room:
        return natural

    def capped(cap: int) -> list[int]:
        return [min(w, max(cap, NARROWEST)) for w in natural]

    low, high = 0, max(natural)  # capped(low) fits or is the narrowest; capped(high) not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if sum(capped(mid)) <= room else (low, mid)
    widths = capped(low)
    spare = room - sum(widths)
    for i, w in enumerate(widths):
        if spare <= 0:
            break
        if w < natural[i]:
            widths[i] += 1
            spare -= 1
    return widths


def _shortened(text: str, width: int, cells_of: Callable[[str], int]) -> str:
    """text when it fits in width cells; else its beginning and its end around "…",
    whole characters (grapheme clusters: an emoji sequence, a letter and its accents)
    only, the beginning taking the odd cell."""
    if cells_of(text) <= width:
        return text
    room = max(width - 1, 0)
    if text.isascii():
        return text[: (room + 1) // 2] + ELLIPSIS + text[len(text) - room // 2 :]
    from wcwidth import iter_graphemes, iter_graphemes_reverse

    head = _taken(iter_graphemes(text), (room + 1) // 2, cells_of)
    tail = _taken(iter_graphemes_reverse(text), room // 2, cells_of)
    return "".join(head) + ELLIPSIS + "".join(reversed(tail))


def _taken(graphemes: Iterator[str], room: int, cells_of: Callable[[str], int]) -> list[str]:
    taken: list[str] = []
    used = 0
    for g in graphemes:
        used += cells_of(g)
        if used > room:
            break
        taken.append(g)
    return taken
