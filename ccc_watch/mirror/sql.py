"""`ccc-watch sql` and `ccc-watch export`: reading the mirror with DuckDB, read-only."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from ccc_watch.mirror.mirror import Mirror, MirrorError
from ccc_watch.mirror.schema import TABLES


def _plain(value: Any) -> Any:
    """A JSON-friendly form of a DuckDB value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def run_query(mirror: Mirror, query: str, fmt: str = "table") -> str:
    """Run one query on a read-only connection; return it formatted as table, json or csv.

    A query that tries to write is refused with a clear message.
    """
    with mirror.connect() as con:
        try:
            cur = con.execute(query)
        except duckdb.Error as e:
            text = str(e)
            if "read-only" in text.lower() or "read only" in text.lower():
                raise MirrorError(
                    "ccc-watch sql is read-only: the mirror is a projection of the store, "
                    f"rebuilt from it at will; change the notes instead ({text.splitlines()[0]})"
                ) from None
            raise MirrorError(f"query failed: {text.splitlines()[0]}") from None
        if cur.description is None:
            return ""
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    if fmt == "json":
        return (
            json.dumps(
                [dict(zip(names, map(_plain, r), strict=True)) for r in rows],
                ensure_ascii=False,
                indent=1,
            )
            + "\n"
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[_plain(v) for v in r] for r in rows])
        return out.getvalue()
    return _table(names, rows)


def _table(names: list[str], rows: list[tuple[Any, ...]], width: int = 60) -> str:
    def cell(value: Any) -> str:
        text = "NULL" if value is None else str(_plain(value)).replace("\n", "\\n")
        return text if len(text) <= width else text[: width - 1] + "…"

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    line = "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line, rule, *body, footer]) + "\n"


def export_parquet(mirror: Mirror, folder: Path) -> list[Path]:
    """Write each mirror table to <folder>/<table>.parquet; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with mirror.connect() as con:
        for table in TABLES:
            target = folder / f"{table.name}.parquet"
            escaped = str(target).replace("'", "''")
            con.execute(f"COPY (SELECT * FROM {table.name}) TO '{escaped}' (FORMAT parquet)")
            written.append(target)
    return written
