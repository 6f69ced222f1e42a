"""`ccc-watch sql` and `ccc-watch export`: reading the mirror with DuckDB, read-only."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ccc_watch.log.safe import json_shown, shown
from ccc_watch.mirror.mirror import Mirror, MirrorError, sql_str
from ccc_watch.mirror.schema import TABLES
from ccc_watch.procs import private_umask, secure_dir


def _plain(value: Any) -> Any:
    """A JSON-friendly form of a DuckDB value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def run_query(
    mirror: Mirror,
    query: str,
    fmt: str = "table",
    allow_files: Sequence[Path] = (),
    terminal: bool = False,
) -> str:
    """Run one query on the mirror; return it formatted as table, json or csv.

    It reaches the mirror and nothing else (see Mirror.connect); allow_files names
    folders whose files it may read as well. Only one SELECT runs (DESCRIBE, SHOW,
    SUMMARIZE and FROM-first queries are SELECTs): anything else, or a second
    statement, is refused before DuckDB runs any of it, so even those folders are
    never written. A refusal or a failing query is a MirrorError of one line.

    Nothing in the output makes a terminal act (values come from the vault): a table
    escapes what is not printable as Python writes it, JSON as \\u escapes (the same
    JSON to a parser), and CSV, which has no escapes, the way a table does when
    terminal says it goes to one.
    """
    statement = _one_select(query)
    with mirror.connect(allow_files=allow_files) as con:
        try:
            # The parsed statement itself: what runs is exactly what was checked.
            cur = con.execute(statement)
            names = [d[0] for d in cur.description or ()]
            rows = cur.fetchall() if names else []
        except duckdb.PermissionException as e:
            raise MirrorError(
                f"sql reads the mirror only ({_first_line(e)}); to read the files of a "
                "folder of your own, name it with --allow-files DIR"
            ) from None
        except duckdb.Error as e:
            raise MirrorError(f"query failed: {_first_line(e)}") from None
    if not names:
        return ""
    if fmt == "json":
        return (
            json_shown(
                json.dumps(
                    [dict(zip(names, map(_plain, r), strict=True)) for r in rows],
                    ensure_ascii=False,
                    indent=1,
                )
            )
            + "\n"
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")

        def cell(value: Any) -> Any:
            plain = _plain(value)
            return shown(plain) if terminal and plain is not None else plain

        writer.writerow(map(cell, names))
        writer.writerows([map(cell, r) for r in rows])
        return out.getvalue()
    return _table(names, rows)


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _one_select(query: str) -> duckdb.Statement:
    """The query's one statement when it is a SELECT; otherwise a MirrorError saying
    why (writes, COPY, ATTACH, SET, PRAGMA, ... and several statements are refused)."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as e:
        raise MirrorError(f"query failed: {_first_line(e)}") from None
    if len(statements) != 1:
        raise MirrorError(f"sql runs exactly one statement, and this is {len(statements)}")
    (statement,) = statements
    if statement.type != duckdb.StatementType.SELECT:
        kind = str(statement.type).rpartition(".")[2]
        raise MirrorError(
            f"sql is read-only: it runs one SELECT (or DESCRIBE, SHOW, SUMMARIZE) "
            f"on the mirror, not {kind}; the mirror is a projection of the store, rebuilt "
            "from it at will: change the notes instead"
        )
    return statement


def _table(names: list[str], rows: list[tuple[Any, ...]], width: int = 60) -> str:
    def cell(value: Any) -> str:
        text = "NULL" if value is None else shown(_plain(value))
        return text if len(text) <= width else text[: width - 1] + "…"

    names = [shown(n) for n in names]
    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    line = "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line, rule, *body, footer]) + "\n"


def export_parquet(mirror: Mirror, folder: Path) -> list[Path]:
    """Write each mirror table to <folder>/<table>.parquet; returns the files written.

    A new folder is created 0700 and the files 0600 from the start. They are written
    into a private folder of their own inside `folder`, then renamed into place: DuckDB
    writes nowhere else, and a symlink planted under a table's name is replaced, never
    followed.
    """
    if not folder.exists():
        secure_dir(folder)
    elif not folder.is_dir():
        raise MirrorError(f"cannot export into {folder}: not a folder")
    written = []
    with private_umask():
        staging = Path(tempfile.mkdtemp(prefix=".ccc-watch-export-", dir=folder))
        try:
            with mirror.connect(allow_files=[staging]) as con:
                for table in TABLES:
                    part = staging / f"{table.name}.parquet"
                    rows = f"SELECT * FROM {table.name}"
                    try:
                        con.execute(f"COPY ({rows}) TO '{sql_str(part)}' (FORMAT parquet)")
                    except duckdb.Error as e:  # a full disk, say
                        raise MirrorError(f"cannot export to {folder}: {_first_line(e)}") from None
                    target = folder / part.name
                    os.replace(part, target)
                    written.append(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return written


def select(
    mirror: Mirror, query: str, params: Sequence[Any] | dict[str, Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Rows of one read-only SELECT on the mirror, with DuckDB parameters ($1 or
    $name): (column names, rows). The same sandbox and refusals as run_query."""
    statement = _one_select(query)
    with mirror.connect() as con:
        try:
            cur = con.execute(statement, params)
            names = [d[0] for d in cur.description or ()]
            return names, cur.fetchall() if names else []
        except duckdb.Error as e:
            raise MirrorError(f"query failed: {_first_line(e)}") from None


def select_arrow(
    mirror: Mirror, query: str, params: Sequence[Any] | dict[str, Any] | None = None
) -> pa.Table:
    """select(), as an Arrow table."""
    statement = _one_select(query)
    with mirror.connect() as con:
        try:
            return con.sql(statement.query, params=params).to_arrow_table()
        except duckdb.Error as e:
            raise MirrorError(f"query failed: {_first_line(e)}") from None
