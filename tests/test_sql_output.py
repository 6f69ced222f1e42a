"""What `ccc-watch sql` prints: times that mean the same in every time zone, JSON that is
JSON all the way down, a table that fits the terminal with wide characters aligned,
and a line on stderr when the mirror trails the store.

Against a real vault, store and DuckDB mirror; the CLI in child processes (with TZ,
COLUMNS or a pseudo-terminal of a given size), the formatter in this one.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from terminal import on_a_terminal
from wcwidth import width as cells

from ccc_watch.mirror.mirror import Mirror
from ccc_watch.mirror.schema import MIRROR_SCHEMA_VERSION
from ccc_watch.mirror.sql import run_query
from ccc_watch.store import open_store

README = Path(__file__).resolve().parents[1] / "README.md"
LONG = "a long name " + "x" * 150 + " that ends here"
NAMES = {  # file name: what it tests in a table
    "漢字のノート.md": "CJK: two cells a character",
    "family 👨\u200d👩\u200d👧 photos.md": "an emoji ZWJ sequence: two cells in all",
    "q\u0307uiz.md": "a combining mark (no precomposed form, NFC keeps it): no cell",
    f"{LONG}.md": "a value wider than any terminal",
    "plain.md": "ASCII",
}


def ccc(
    vault: Path, data: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir", str(data),
         *args], capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A vault of NAMES (one with frontmatter and tags), indexed into store and mirror."""
    root = tmp_path_factory.mktemp("sqlout")
    vault, data = root / "vault", root / "data"
    vault.mkdir()
    for name in NAMES:
        (vault / name).write_text("# note\n\nsome words here\n")
    (vault / "plain.md").write_text(
        "---\nstatus: draft\nn: 3\nwhen: 2024-05-01\ntags: [x, y/z]\n---\n# P\n- [ ] a task\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCC_WATCH_", "LOGURU_"))}
    env.pop("COLUMNS", None)
    env["XDG_CONFIG_HOME"] = str(root / "cfg")
    env["XDG_STATE_HOME"] = str(root / "state")
    done = ccc(vault, data, "rebuild", env=env)
    assert done.returncode == 0, done.stderr
    return vault, data, env


def readme_last_hour() -> str:
    """The README's "what changed in the last hour" example query."""
    lines = README.read_text(encoding="utf-8").splitlines()
    return lines[lines.index("-- what changed in the last hour") + 1].rstrip(";")


# --- time zones ---------------------------------------------------------------------------


def test_the_readmes_last_hour_gives_one_answer_in_every_time_zone(
    world: tuple[Path, Path, dict[str, str]],
) -> None:
    """Every time in the mirror is a TIMESTAMPTZ: the README's "last hour" query returns
    the same events (all of them, just indexed) under UTC, Los Angeles and Kolkata, and
    each time prints as ISO 8601 with the reader's offset, one instant for all three."""
    vault, data, env = world
    query = readme_last_hour()
    answers, instants = {}, {}
    offsets = {
        "UTC": {timedelta(0)},
        "America/Los_Angeles": {timedelta(hours=-8), timedelta(hours=-7)},
        "Asia/Kolkata": {timedelta(hours=5, minutes=30)},
    }
    for zone, offset in offsets.items():
        done = ccc(vault, data, "sql", query, "--json", env={**env, "TZ": zone})
        assert (done.returncode, done.stderr) == (0, ""), (zone, done.stderr)
        events = json.loads(done.stdout)
        answers[zone] = [e["seq"] for e in events]
        times = [datetime.fromisoformat(e["time"]) for e in events]
        assert {t.utcoffset() for t in times} <= offset, (zone, events[0]["time"])
        instants[zone] = times
    everything = ccc(vault, data, "sql", "SELECT seq FROM events ORDER BY seq", "--json", env=env)
    assert answers["UTC"] == [e["seq"] for e in json.loads(everything.stdout)] != []
    assert answers["America/Los_Angeles"] == answers["UTC"] == answers["Asia/Kolkata"]
    assert instants["America/Los_Angeles"] == instants["UTC"] == instants["Asia/Kolkata"]


def test_every_time_column_is_timestamptz(world: tuple[Path, Path, dict[str, str]]) -> None:
    """No column of the mirror is a TIMESTAMP without a zone."""
    _, data, _ = world
    with Mirror(data).connect() as con:
        types = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE data_type LIKE 'TIMESTAMP%'"
        ).fetchall()
    assert {(t, c) for t, c, _ in types} == {
        ("notes", "mtime"), ("notes", "ctime"), ("notes", "indexed_at"), ("events", "time"),
        ("mirror_state", "updated_at"),
    }  # fmt: skip
    assert {d for _, _, d in types} == {"TIMESTAMP WITH TIME ZONE"}


# --- JSON, JSON lines, CSV ---------------------------------------------------------------

VALUES = (
    "SELECT path, frontmatter, tags, size, mtime, 1.25::DECIMAL(5, 2) AS dec, "
    "170141183460469231731687303715884105727::HUGEINT AS huge, 'nan'::DOUBLE AS nan, "
    "true AS yes, NULL AS nothing, INTERVAL 90 MINUTE AS span, {'k': [1, 2]} AS struct, "
    "frontmatter->'$.tags' AS picked FROM notes WHERE path = 'plain.md'"
)


def test_json_columns_lists_and_numbers_come_out_as_json(
    world: tuple[Path, Path, dict[str, str]],
) -> None:
    """`--format json` (and its alias `--json`) and `--format nl` write a JSON column as
    the JSON it holds, a list as an array, DECIMAL and HUGEINT as numbers, a time as ISO
    8601 with its offset, an interval as an ISO 8601 duration, NaN as null; nl is one
    object per line, the same objects."""
    vault, data, env = world
    as_json = ccc(vault, data, "sql", VALUES, "--format", "json", env=env)
    alias = ccc(vault, data, "sql", VALUES, "--json", env=env)
    lines = ccc(vault, data, "sql", VALUES, "--format", "nl", env=env)
    assert as_json.returncode == alias.returncode == lines.returncode == 0
    assert alias.stdout == as_json.stdout
    (row,) = json.loads(as_json.stdout)
    assert [json.loads(line) for line in lines.stdout.splitlines()] == [row]
    assert lines.stdout.count("\n") == 1 and ": " not in lines.stdout  # compact, as dump
    assert row["frontmatter"] == {"status": "draft", "n": 3, "when": "2024-05-01",
                                  "tags": ["x", "y/z"]}  # fmt: skip
    assert row["tags"] == ["x", "y/z"] and row["picked"] == ["x", "y/z"]
    assert row["dec"] == 1.25 and row["huge"] == 2**127 - 1 and row["size"] > 0
    assert row["nan"] is None and row["nothing"] is None and row["yes"] is True
    assert row["span"] == "PT5400S" and row["struct"] == {"k": [1, 2]}
    assert datetime.fromisoformat(row["mtime"]).utcoffset() is not None


def test_csv_writes_json_text_and_iso_times(world: tuple[Path, Path, dict[str, str]]) -> None:
    """CSV cells: a JSON column's text, lists as JSON arrays, true/false, ISO times,
    a DECIMAL digit for digit, NULL as an empty cell."""
    vault, data, env = world
    done = ccc(vault, data, "sql", VALUES, "--format", "csv", env=env)
    assert done.returncode == 0, done.stderr
    (row,) = csv.DictReader(io.StringIO(done.stdout))
    assert json.loads(row["frontmatter"])["tags"] == ["x", "y/z"]
    assert json.loads(row["tags"]) == ["x", "y/z"]
    assert (row["dec"], row["yes"], row["nothing"]) == ("1.25", "true", "")
    assert row["huge"] == str(2**127 - 1)
    assert datetime.fromisoformat(row["mtime"]).utcoffset() is not None


def test_repeated_column_names_each_keep_their_value(
    world: tuple[Path, Path, dict[str, str]],
) -> None:
    """JSON objects cannot repeat a key: a repeated name gets _1, as DuckDB names them."""
    vault, data, env = world
    done = ccc(vault, data, "sql", "SELECT 1 AS a, 2 AS a, 3 AS a", "--json", env=env)
    assert json.loads(done.stdout) == [{"a": 1, "a_1": 2, "a_2": 3}]


# --- the table ----------------------------------------------------------------------------

TABLE = "SELECT path, size, word_count FROM notes ORDER BY path"


def body(table: str) -> list[str]:
    """A table's lines between the rule and the row count."""
    lines = table.splitlines()
    assert lines[-1].endswith("rows)") and set(lines[1]) <= {"-", " "}, table
    return lines[2:-1]


def test_wide_characters_align_and_numbers_align_right(
    world: tuple[Path, Path, dict[str, str]],
) -> None:
    """With no width to fit, every value is whole; CJK, an emoji sequence and a
    combining accent take their display width, so the number columns (right-aligned,
    their headings too) end in the same terminal column on every line."""
    _, data, _ = world
    table = run_query(Mirror(data), TABLE)
    lines = table.splitlines()
    rows = body(table)
    assert len(rows) == len(NAMES)
    assert {cells(line) for line in [lines[0], lines[1], *rows]} == {cells(lines[1])}
    for name in NAMES:
        assert any(line.startswith(name) for line in rows), name
    heading = lines[0]
    assert heading.endswith("  size  word_count")
    for line in rows:
        size, words = line.split()[-2:]
        assert size.isdigit() and words.isdigit()
        assert line.endswith(f"{int(words):>10}") and line[: -len("  word_count")].endswith(size)


def test_a_table_fits_the_width_shortening_long_values_in_the_middle(
    world: tuple[Path, Path, dict[str, str]],
) -> None:
    """Given a width, no line is wider; a value too long keeps its beginning and its end
    around "…", whole characters only, and the columns still line up: among wide
    characters, and in a table of ASCII only (measured without wcwidth)."""
    _, data, _ = world
    ascii_only = f"{TABLE.replace('ORDER', 'WHERE path LIKE $$a%$$ OR size > 50 ORDER')}"
    for width, query in itertools.product((60, 40, 24), (TABLE, ascii_only)):
        table = run_query(Mirror(data), query, width=width)
        lines = table.splitlines()
        assert max(map(cells, lines[:-1])) <= width, table
        assert {cells(line) for line in lines[:-1]} == {cells(lines[1])}, table
        path_cells = len(lines[1].split("  ")[0])
        long = next(line for line in body(table) if line.startswith("a"))
        head, tail = long[:path_cells].rstrip().split("…")  # ASCII: one cell a character
        assert f"{LONG}.md".startswith(head) and f"{LONG}.md".endswith(tail), long
        assert len(head) - len(tail) in (0, 1) and len(head) + 1 + len(tail) == path_cells
        assert not any("\ufffd" in line for line in lines)


def test_sql_fits_the_terminal_and_wide_shows_everything(
    world: tuple[Path, Path, dict[str, str]],
) -> None:
    """On a terminal of 50 columns the table fits in 50; COLUMNS=40 makes it fit in 40,
    on a pipe too; on a pipe without COLUMNS, and with --wide anywhere, values are whole."""
    vault, data, env = world
    narrow = on_a_terminal(vault, data, env, "sql", TABLE, columns=50)
    assert max(map(cells, narrow.splitlines())) <= 50 and LONG not in narrow, narrow
    wide = on_a_terminal(vault, data, env, "sql", TABLE, "--wide", columns=50)
    assert LONG in wide
    piped = ccc(vault, data, "sql", TABLE, env=env)
    assert LONG in piped.stdout
    columns = ccc(vault, data, "sql", TABLE, env={**env, "COLUMNS": "40"})
    assert max(map(cells, columns.stdout.splitlines())) <= 40 and LONG not in columns.stdout
    assert LONG in ccc(vault, data, "sql", TABLE, "--wide", env={**env, "COLUMNS": "40"}).stdout


# --- the mirror trailing the store ---------------------------------------------------------


def test_sql_says_on_stderr_how_far_the_mirror_trails(tmp_path: Path) -> None:
    """When the store has changes the mirror has not applied, `sql` still answers from
    the mirror, exit 0, and one stderr line says how many changes behind it is and what
    catches it up; after `ccc-watch mirror`, nothing. A mirror of an older schema
    version says so too."""
    vault, data = tmp_path / "vault", tmp_path / "data"
    vault.mkdir()
    for name in ("a.md", "b.md", "c.md"):
        (vault / name).write_text(f"# {name}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCC_WATCH_", "LOGURU_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    assert ccc(vault, data, "rebuild", env=env).returncode == 0
    count = "SELECT count(*) AS n FROM notes"
    current = ccc(vault, data, "sql", count, env=env)
    assert (current.returncode, current.stderr) == (0, "")
    with open_store(data, backend="redb") as store:  # the store moves on; the mirror not
        store.delete("b.md", cause="scan")
        store.delete("c.md", cause="scan")
    behind = ccc(vault, data, "sql", count, "--json", env=env)
    assert behind.returncode == 0 and json.loads(behind.stdout) == [{"n": 3}]
    assert behind.stderr == (
        "ccc-watch: the mirror is 2 changes behind the store (a running daemon catches up "
        "within seconds; `ccc-watch mirror` does it now)\n"
    )
    assert ccc(vault, data, "mirror", env=env).returncode == 0
    caught_up = ccc(vault, data, "sql", count, "--json", env=env)
    assert (json.loads(caught_up.stdout), caught_up.stderr) == ([{"n": 1}], "")
    with duckdb.connect(str(data / "mirror.duckdb")) as con:  # as an older version left it
        con.execute(f"UPDATE mirror_state SET schema_version = {MIRROR_SCHEMA_VERSION - 1}")
    older = ccc(vault, data, "sql", count, env=env)
    assert older.returncode == 0 and older.stderr.startswith(
        f"ccc-watch: the mirror was written with schema version {MIRROR_SCHEMA_VERSION - 1}"
    )
    assert older.stderr.count("\n") == 1 and "`ccc-watch mirror` rebuilds it" in older.stderr
