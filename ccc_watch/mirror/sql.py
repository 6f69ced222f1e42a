"""`ccc-watch sql` and `ccc-watch export`: reading the mirror with DuckDB, read-only."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ccc_watch.mirror.mirror import Mirror, MirrorError, sql_str
from ccc_watch.mirror.output import Result, render
from ccc_watch.mirror.schema import TABLES
from ccc_watch.procs import private_umask, secure_dir


@dataclass(frozen=True)
class Answer:
    """A query's result, and the mirror's state it was read from: (watermark, store id,
    schema version), or None when the mirror has no state row."""

    result: Result
    state: tuple[int, str | None, int | None] | None


def ask(
    mirror: Mirror,
    query: str,
    allow_files: Sequence[Path] = (),
    params: Sequence[Any] | dict[str, Any] | None = None,
) -> Answer:
    """Run one query on the mirror, with DuckDB parameters ($1 or $name) when given;
    return its result and the mirror's state.

    It reaches the mirror and nothing else (see Mirror.connect); allow_files names
    folders whose files it may read as well. Only one SELECT runs (DESCRIBE, SHOW,
    SUMMARIZE and FROM-first queries are SELECTs): anything else, or a second
    statement, is refused before DuckDB runs any of it, so even those folders are
    never written. A refusal or a failing query is a MirrorError of one line.
    """
    statement = _one_select(query)
    with mirror.connect(allow_files=allow_files) as con:
        try:
            # The parsed statement itself: what runs is exactly what was checked.
            cur = con.execute(statement, params)
            description = cur.description or ()
            rows = cur.fetchall() if description else []
        except duckdb.PermissionException as e:
            raise MirrorError(
                f"sql reads the mirror only ({_first_line(e)}); to read the files of a "
                "folder of your own, name it with --allow-files DIR"
            ) from None
        except duckdb.Error as e:
            raise MirrorError(f"query failed: {_first_line(e)}") from None
        state = _state(con)
    names = [d[0] for d in description]
    types = [str(d[1]) for d in description]
    return Answer(Result(names, types, rows), state)


def _state(con: duckdb.DuckDBPyConnection) -> tuple[int, str | None, int | None] | None:
    """The mirror_state row, read in the query's own connection (so of the same file)."""
    try:
        rows = con.execute(
            "SELECT watermark, store_id, schema_version FROM mirror_state"
        ).fetchall()
    except duckdb.Error:  # a mirror of no known shape: the query said what it could
        return None
    if not rows or rows[0][0] is None:
        return None
    watermark, store_id, version = rows[0]
    return int(watermark), store_id, None if version is None else int(version)


def run_query(
    mirror: Mirror,
    query: str,
    fmt: str = "table",
    allow_files: Sequence[Path] = (),
    terminal: bool = False,
    width: int | None = None,
) -> str:
    """Run one query on the mirror (see ask) and return it formatted as table, json,
    nl (JSON lines) or csv (see ccc_watch.mirror.output: nothing in the output makes a
    terminal act, whatever the vault holds). A table fits in width cells (None: no
    limit); CSV is escaped when terminal says it goes to one."""
    return render(ask(mirror, query, allow_files).result, fmt, terminal=terminal, width=width)


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
    """(column names, rows) of one read-only SELECT on the mirror (see ask)."""
    result = ask(mirror, query, params=params).result
    return result.names, result.rows


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
