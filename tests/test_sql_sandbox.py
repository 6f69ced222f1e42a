"""`ccc-watch sql` reaches the mirror and nothing else, against the real DuckDB.

Every escape a query can try (writing files, reading files, attaching other databases,
loading extensions, undoing the settings, multi-statement tricks) is refused with one
line and exit 1, and afterwards the store, the mirror and every other file around them
are byte-identical. `--allow-files DIR` opens one folder for reading, and only for
reading.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from ccc_watch import cli
from ccc_watch.mirror.mirror import Mirror


@dataclass(frozen=True)
class World:
    """A vault, its data dir with store and mirror, and files around them."""

    root: Path
    vault: Path
    data: Path
    outside: Path  # a folder of CSV/Parquet files a user may open with --allow-files
    other_db: Path  # another DuckDB file

    def args(self, *more: str | Path) -> list[str]:
        return ["--vault", str(self.vault), "--data-dir", str(self.data), *map(str, more)]

    def fill(self, template: str) -> str:
        return template.format(
            data=self.data, root=self.root, outside=self.outside, other=self.other_db,
            vault=self.vault,
        )  # fmt: skip


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every entry under root: (mode, blake2 of its bytes, or of a link's target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():
                digest = os.readlink(path)
            elif path.is_file():
                digest = hashlib.blake2b(path.read_bytes()).hexdigest()
            else:
                digest = "dir"
            found[str(path.relative_to(root))] = (st.st_mode, digest)
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("sql")
    vault = root / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("# A\n#x [[b]]\n")
    (vault / "b.md").write_text("---\nclassification: SECRET\n---\nthe launch code is 1234\n")
    data = root / "data"
    done = subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir", str(data),
         "rebuild"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outside = root / "outside"
    outside.mkdir()
    (outside / "people.csv").write_text("path,owner\na.md,ann\n")
    (outside / "link-to-store").symlink_to(data / "index.redb")
    other_db = root / "other.duckdb"
    with duckdb.connect(str(other_db)) as con:
        con.execute("CREATE TABLE t AS SELECT 42 AS answer")
    return World(root, vault, data, outside, other_db)


def sql(
    world: World, capsys: pytest.CaptureFixture[str], query: str, *more: str | Path
) -> tuple[int, str, str]:
    """Run `ccc-watch sql` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main(world.args("sql", world.fill(query), *more))
    out, err = capsys.readouterr()
    return code, out, err


ESCAPES = [
    # writing files
    "COPY notes TO '{data}/index.redb' (FORMAT csv)",
    "COPY notes TO '{data}/mirror.duckdb' (FORMAT csv)",
    "COPY (SELECT body FROM notes) TO '{root}/leak.csv'",
    "COPY notes TO '{outside}/people.csv' (FORMAT csv)",
    "EXPORT DATABASE '{root}/exported'",
    "COPY notes FROM '{outside}/people.csv'",
    # reading files
    "SELECT * FROM read_text('{data}/index.redb')",
    "SELECT * FROM read_blob('{data}/index.redb')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd', sep=':')",
    "SELECT * FROM read_parquet('{data}/mirror.duckdb')",
    "SELECT * FROM '{outside}/people.csv'",
    "SELECT * FROM read_text('{vault}/b.md')",
    "SELECT * FROM glob('{data}/*')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_csv('https://example.com/x.csv')",
    # other databases
    "ATTACH '{data}/index.redb' AS r",
    "ATTACH '{other}' AS o",
    "ATTACH '{root}/new.duckdb' AS n",
    "DETACH mirror",
    # extensions
    "INSTALL httpfs",
    "LOAD httpfs",
    "LOAD '{root}/evil.duckdb_extension'",
    # undoing the settings
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET allowed_directories = ['/']",
    "SET lock_configuration = false",
    "SET temp_directory = '{root}/spill'",
    "PRAGMA enable_profiling",
    "CALL enable_logging()",
    # writing the mirror
    "CREATE TABLE t (a INT)",
    "CREATE TABLE memory.t AS SELECT * FROM notes",
    "INSERT INTO notes (path) VALUES ('x.md')",
    "DELETE FROM notes",
    "UPDATE notes SET size = 0",
    "DROP VIEW broken_links",
    "CHECKPOINT",
    "VACUUM",
    # several statements, and statements in disguise
    "SELECT 1; COPY notes TO '{root}/leak.csv'",
    "SELECT 1; SET enable_external_access = true; SELECT * FROM read_text('/etc/passwd')",
    "PREPARE p AS COPY notes TO '{root}/leak.csv'",
    "EXPLAIN ANALYZE COPY notes TO '{root}/leak.csv'",
    "SELECT * FROM query('COPY notes TO ''{root}/leak.csv''')",
]


@pytest.mark.parametrize("query", ESCAPES)
def test_an_escape_is_refused_and_changes_nothing(
    world: World, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    """Each escape exits 1 with one line naming why, prints nothing on stdout, and
    leaves every file around the mirror (store, mirror, vault, neighbours) as it was."""
    before = tree(world.root)
    code, out, err = sql(world, capsys, query)
    assert code == 1, (query, out, err)
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("ccc-watch: ")
    assert "Traceback" not in err
    assert tree(world.root) == before
    # and the mirror still answers
    assert sql(world, capsys, "SELECT count(*) AS n FROM notes", "--format", "csv")[1] == "n\n2\n"


def test_escapes_in_a_real_process_end_with_one_line(world: World) -> None:
    """The same, through the installed command: exit 1, one line, no traceback; the
    store stays usable (the COPY once overwrote index.redb)."""
    before = tree(world.root)
    for query in (ESCAPES[0], "SELECT 1; COPY notes TO '{root}/leak.csv'",
                  "SELECT * FROM read_text('/etc/passwd')"):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "ccc_watch.cli", *world.args("sql", world.fill(query))],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 1, done
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stdout == ""
    assert tree(world.root) == before
    done = subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", *world.args("dump")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.count("\n") == 2, done


def test_ordinary_queries_still_work(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Views, DESCRIBE, SHOW, SUMMARIZE, CTEs and FROM-first queries run as before."""
    for query in (
        "SELECT source, target FROM resolved_links",
        "DESCRIBE notes",
        "SHOW TABLES",
        "SUMMARIZE tags",
        "WITH t AS (SELECT tag FROM tags) SELECT count(*) FROM t",
        "FROM tag_counts",
        "SELECT * FROM mirror.main.notes",
    ):
        code, out, err = sql(world, capsys, query)
        assert code == 0 and err == "" and out, (query, err)


def test_the_locked_connection_refuses_on_its_own(world: World) -> None:
    """Mirror.connect() (what status and verify read through) is locked by DuckDB
    itself, without the statement check of `sql`: no file outside, no SET, no write."""
    with Mirror(world.data).connect() as con:
        for query in (
            f"COPY notes TO '{world.root}/leak.csv'",
            f"SELECT * FROM read_text('{world.data}/index.redb')",
            f"ATTACH '{world.other_db}' AS o",
            "SET enable_external_access = true",
            "SET allowed_directories = ['/']",
            "INSERT INTO notes (path) VALUES ('x.md')",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(query)
        assert con.execute("SELECT count(*) FROM notes").fetchall() == [(2,)]


# --- --allow-files --------------------------------------------------------------------


def test_allow_files_reads_one_folder(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """With --allow-files DIR a query joins the mirror with the files in DIR."""
    code, out, err = sql(
        world, capsys,
        "SELECT n.path, p.owner FROM notes n JOIN read_csv('{outside}/people.csv') p "
        "USING (path)", "--allow-files", world.outside, "--format", "csv",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == "path,owner\na.md,ann\n"
    code, out, err = sql(
        world, capsys, "SELECT count(*) AS n FROM glob('{outside}/*.csv')",
        "--allow-files", world.outside, "--format", "csv",
    )  # fmt: skip
    assert (code, out) == (0, "n\n1\n"), err


@pytest.mark.parametrize(
    "query",
    [
        "COPY notes TO '{outside}/people.csv' (FORMAT csv)",
        "COPY notes TO '{outside}/new.csv' (FORMAT csv)",
        "EXPORT DATABASE '{outside}/db'",
        "SELECT * FROM read_text('{outside}/../data/index.redb')",
        "SELECT * FROM read_text('{outside}/link-to-store')",
        "SELECT * FROM read_text('{data}/index.redb')",
        "ATTACH '{outside}/x.duckdb' AS x",
        "SET allowed_directories = ['/']",
    ],
)
def test_allow_files_reads_only_that_folder_and_never_writes(
    world: World, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    """The folder is for reading: writing into it, climbing out of it (`..` or a
    symlink to the store) and widening it are refused, and nothing changes."""
    before = tree(world.root)
    code, out, err = sql(world, capsys, query, "--allow-files", world.outside)
    assert code == 1, (query, out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert tree(world.root) == before


@pytest.mark.parametrize(
    "folder", ["{data}", "{root}", "{vault}", "{vault}/sub", "{root}/missing", "{vault}/a.md"]
)
def test_allow_files_refuses_the_data_dir_the_vault_and_non_folders(
    world: World, capsys: pytest.CaptureFixture[str], folder: str
) -> None:
    """A folder that holds the store or the mirror (the data dir or above), that
    overlaps the vault (its files reach the mirror only through their classification),
    or that is no folder, is a usage error: exit 2, one line."""
    (world.vault / "sub").mkdir(exist_ok=True)
    code, out, err = sql(world, capsys, "SELECT 1", "--allow-files", world.fill(folder))
    assert code == 2, (folder, out, err)
    assert len(err.strip().splitlines()) == 1 and "--allow-files" in err, err
    (world.vault / "sub").rmdir()
