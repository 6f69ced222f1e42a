"""The DuckDB mirror on real files and real engines: schema, link resolution, views,
confidentiality, flushes, rebuilds, and the sql / export / mirror commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SOURCES, as_indexed, build_vault, hub_corpus, not_private, own_vault

from ccc_watch.changes.rebuild import rebuild
from ccc_watch.mirror.mirror import Mirror, mirror_rows
from ccc_watch.mirror.sql import export_parquet
from ccc_watch.store import Delete, Move, Store, Upsert, open_store


def build(vault: Path, data: Path) -> tuple[Store, Mirror]:
    rebuild(vault, data)
    store = open_store(data, vault_root=vault.resolve())
    mirror = Mirror(data)
    mirror.flush(store)
    return store, mirror


def query(mirror: Mirror, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with mirror.connect() as con:
        return con.execute(sql, list(args)).fetchall()


def write(vault: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = vault / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_notes_have_every_field_of_the_record(tmp_path: Path) -> None:
    """One notes row per record, carrying each record field (mtime as a timestamp too)."""
    vault = tmp_path / "v"
    write(vault, {"F/a.md": "---\ntitle: A\naliases: [x]\ntags: [t/u]\n---\n# A\n- [x] done\n"})
    store, mirror = build(vault, tmp_path / "d")
    with store, mirror.connect() as con:
        (row,) = mirror_rows(con, "notes")
        rec = store.get("F/a.md")
    assert rec is not None
    for field in ("path", "id", "name", "extension", "kind", "record_type", "size", "mtime_ns",
                  "blake3", "frontmatter_status", "classification", "title", "aliases",
                  "tags", "word_count", "body", "error"):  # fmt: skip
        assert row[field] == rec[field], field
    assert row["folder"] == "F"
    assert json.loads(row["frontmatter"]) == rec["frontmatter"]
    assert row["mtime"].timestamp() == pytest.approx(rec["mtime_ns"] / 1e9, abs=1e-5)
    assert row["indexed_at"] is not None


def test_tags_properties_and_tasks_tables(tmp_path: Path) -> None:
    """Nested tags add their parents; properties carry JSON, text and type; tasks rows."""
    vault = tmp_path / "v"
    write(
        vault,
        {
            "a.md": "---\nrating: 4\ndone: true\nday: 2026-01-02\nkw: [x, y]\n"
            "tags: [area/sub/leaf]\n---\n- [ ] one\n- [x] two #inline\n"
        },
    )
    store, mirror = build(vault, tmp_path / "d")
    store.close()
    assert sorted(query(mirror, "SELECT tag, explicit FROM tags")) == [
        ("area", False),
        ("area/sub", False),
        ("area/sub/leaf", True),
        ("inline", True),
    ]
    props = {
        k: (json.loads(v), t, typ)
        for k, v, t, typ in query(mirror, "SELECT key, value, text, type FROM properties")
    }
    assert props["rating"] == (4, "4", "number")
    assert props["done"] == (True, "true", "checkbox")
    assert props["day"] == ("2026-01-02", "2026-01-02", "date")
    assert props["kw"] == (["x", "y"], "x, y", "list")
    assert query(mirror, "SELECT line, done, text FROM tasks ORDER BY line") == [
        (8, False, "one"),
        (9, True, "two #inline"),
    ]
    assert ("area", 1, False) in query(mirror, "SELECT * FROM tag_counts")


def test_link_resolution_follows_obsidians_rules(tmp_path: Path) -> None:
    """Bare names match file names case-insensitively, with or without .md; a
    path-qualified target matches a path suffix; ties go to the shortest path;
    attachments count; an empty target is the note itself; the rest are broken."""
    vault = tmp_path / "v"
    write(vault, {
        "a/x.md": "", "b/c/x.md": "", "img/pic.png": "", "Other Note.md": "",
        "src.md": "[[x]] [[c/x]] [[b/c/x.md]] [[X]] [[other note]] [[Other Note.md]] "
                  "![[pic.png]] [[#Heading]] [[nowhere]] [t](img/pic.png) [u](Other%20Note.md)",
    })  # fmt: skip
    store, mirror = build(vault, tmp_path / "d")
    store.close()
    got = query(mirror, "SELECT target, resolved_path FROM resolved_links ORDER BY link_no")
    assert got == [
        ("x", "a/x.md"),
        ("c/x", "b/c/x.md"),
        ("b/c/x.md", "b/c/x.md"),
        ("X", "a/x.md"),
        ("other note", "Other Note.md"),
        ("Other Note.md", "Other Note.md"),
        ("pic.png", "img/pic.png"),
        ("", "src.md"),
        ("nowhere", None),
        ("img/pic.png", "img/pic.png"),
        ("Other Note.md", "Other Note.md"),
    ]
    assert query(mirror, "SELECT target, problem FROM broken_links ORDER BY link_no") == [
        ("", "heading"),  # src.md has no heading "Heading"
        ("nowhere", "note"),
    ]
    assert ("a/x.md", "src.md") in query(mirror, "SELECT path, linked_from FROM backlinks")
    orphans = {p for (p,) in query(mirror, "SELECT path FROM orphans")}
    assert orphans == set()  # every note links or is linked; pic.png is no note


@pytest.mark.parametrize("source", SOURCES)
def test_broken_links_are_exactly_the_missing_targets(tmp_path: Path, source: str) -> None:
    """On a generator's ground truth, the links broken for want of a note are exactly the
    `Missing …` targets (its other links name headings and blocks at random)."""
    vault = tmp_path / "v"
    truth = build_vault(source, vault, notes=300, seed=11)
    store, mirror = build(vault, tmp_path / "d")
    store.close()
    kept = [as_indexed(t) for t in truth.values()]  # a private note's links are not kept
    missing = {t for v in kept for t in v.get("links", []) if t.startswith("Missing ")}
    sql = "SELECT DISTINCT target FROM broken_links WHERE problem = 'note'"
    broken = {t for (t,) in query(mirror, sql)}
    assert missing and broken == missing
    # And every other link resolves to the note its target names.
    for source_path, target, resolved in query(
        mirror,
        "SELECT source, target, resolved_path FROM resolved_links WHERE resolved_path IS NOT NULL",
    ):
        name = target.lower().removesuffix(".md")
        if not target:  # [[#Heading]]: the note itself
            assert resolved == source_path
        elif "/" in target:  # a path suffix, with or without .md
            assert resolved.lower().removesuffix(".md").endswith(name), target
        else:
            assert resolved.rsplit("/", 1)[-1].removesuffix(".md").lower() == name, target


def test_links_resolve_where_the_generator_pointed_them(tmp_path: Path) -> None:
    """Each link of the own vault resolves to the file the generator wrote it for: bare
    names in any case, with or without .md, path-qualified targets, markdown links with
    %-escapes or <angle brackets>, attachments in other folders by name, headings of the
    note itself, names with emoji, '&' and accents (one in NFD on disk), and nothing
    for a missing target. The own twin of the hub corpus's hand-checked links."""
    vault = tmp_path / "v"
    truth = own_vault(vault, notes=400, seed=12)
    store, mirror = build(vault, tmp_path / "d")
    store.close()
    got: dict[str, list[list[str | None]]] = {}
    for source_path, target, resolved in query(
        mirror, "SELECT source, target, resolved_path FROM resolved_links"
    ):
        got.setdefault(source_path, []).append([target, resolved])
    order = lambda r: (r[0] or "", r[1] or "")  # noqa: E731
    checked = 0
    for key, t in truth.items():
        if "resolved" in t:
            expected = as_indexed(t)["resolved"]  # a private note's links are not kept
            assert sorted(got.get(key, []), key=order) == expected, key
            checked += len(expected)
    assert checked > 500


def test_hub_corpus_links_resolve_as_obsidian_shows_them(tmp_path: Path) -> None:
    """Resolutions checked by hand in the real community vault."""
    vault = hub_corpus(tmp_path / "hub")
    store, mirror = build(vault, tmp_path / "d")
    store.close()
    expected = [
        ("00 - Start here.md", "README", "README.md"),
        ("00 - Start here.md", "Digital garden", "05 - Concepts/Digital garden.md"),
        ("00 - Start here.md", "🗂️ hub", "🗂️ hub.md"),
        ("03 - Showcases & Templates/Vaults/OB_Template.md", "Zektor",
         "01 - Community/People/Zektor.md"),
        # case-insensitive: the note is named Easychris.md
        ("02 - Community Expansions/02.05 All Community Expansions/Plugins/"
         "obsidian-to-notion.md", "EasyChris", "01 - Community/People/Easychris.md"),
        # path-qualified target, no extension
        ("01 - Community/People/hipstersmoothie.md",
         "02 - Community Expansions/02.05 All Community Expansions/Themes/Hipstersmoothie",
         "02 - Community Expansions/02.05 All Community Expansions/Themes/Hipstersmoothie.md"),
        # an attachment in another folder
        ("00 - Contribute to the Obsidian Hub/03 Contributor Notes/03.02 Design Decisions/"
         "Content Lists.md", "task-plugins-sorted.png",
         "00 - Contribute to the Obsidian Hub/02 Attachments/task-plugins-sorted.png"),
    ]  # fmt: skip
    for source, target, resolved in expected:
        rows = query(
            mirror,
            "SELECT DISTINCT resolved_path FROM resolved_links WHERE source = ? AND target = ?",
            source,
            target,
        )
        assert rows == [(resolved,)], (source, target)
    total, resolved_count = query(
        mirror, "SELECT count(*), count(resolved_path) FROM resolved_links"
    )[0]
    assert total > 20_000 and resolved_count / total > 0.99


def test_private_bodies_never_reach_the_mirror(tmp_path: Path) -> None:
    """CONFIDENTIAL/SECRET bodies are absent, even from a record that carries one."""
    vault = tmp_path / "v"
    write(
        vault,
        {
            "c.md": "---\nclassification: CONFIDENTIAL\n---\nhidden\n",
            "p.md": "---\nclassification: PUBLIC\n---\nshown\n",
        },
    )
    store, mirror = build(vault, tmp_path / "d")
    rec = store.get("p.md")
    assert rec is not None
    # A record that claims SECRET but still has a body (an older indexer, a bug): the
    # mirror applies the same policy again.
    store.apply([Upsert(dict(rec, path="s.md", id="s", classification="SECRET"))])
    mirror.flush(store)
    store.close()
    bodies = dict(query(mirror, "SELECT path, body FROM notes"))
    assert bodies == {"c.md": None, "p.md": "shown\n", "s.md": None}


def test_flush_applies_upserts_deletes_and_moves_once(tmp_path: Path) -> None:
    """Each change lands once: rows follow the store, events gain each sequence once."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "[[b]] #t", "b.md": "x", "c.md": "y"})
    store, mirror = build(vault, tmp_path / "d")
    a = store.get("a.md")
    assert a is not None
    store.apply(
        [
            Move("a.md", "moved/a.md"),
            Delete("c.md"),
            Upsert(dict(a, path="n.md", id="n", tags=["new"], links=[])),
        ]
    )
    result = mirror.flush(store)
    assert (result.applied, result.watermark, result.rebuilt) == (3, store.head(), False)
    assert mirror.flush(store).applied == 0
    assert sorted(p for (p,) in query(mirror, "SELECT path FROM notes")) == [
        "b.md",
        "moved/a.md",
        "n.md",
    ]
    assert query(mirror, "SELECT source FROM links") == [("moved/a.md",)]
    assert sorted(query(mirror, "SELECT path, tag FROM tags")) == [
        ("moved/a.md", "t"),
        ("n.md", "new"),
    ]
    seqs = [s for (s,) in query(mirror, "SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, store.head() + 1))
    assert query(mirror, "SELECT op, path, prev_path FROM events ORDER BY seq DESC LIMIT 3") == [
        ("upsert", "n.md", None),
        ("delete", "c.md", None),
        ("move", "moved/a.md", "a.md"),
    ]
    assert mirror.watermark() == store.head()
    store.close()


def test_a_rebuilt_store_rebuilds_the_mirror(tmp_path: Path) -> None:
    """A new store file (new store_id, changelog from 1 again) is noticed by the flush."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "a", "b.md": "b"})
    store, mirror = build(vault, tmp_path / "d")
    store.close()
    (vault / "c.md").write_text("c")
    rebuild(vault, tmp_path / "d")
    with open_store(tmp_path / "d", readonly=True) as store:
        result = mirror.flush(store)
        assert result.rebuilt
        assert query(mirror, "SELECT count(*) FROM notes") == [(3,)]
        assert mirror.watermark() == store.head() == 3


def test_mirror_rebuild_swaps_in_a_whole_file(tmp_path: Path) -> None:
    """A reader connected before the rebuild keeps its snapshot; a new one sees the
    new file; no temp file or WAL is left behind."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "a"})
    store, mirror = build(vault, tmp_path / "d")
    store.close()
    (vault / "b.md").write_text("b")
    rebuild(vault, tmp_path / "d")
    with open_store(tmp_path / "d", readonly=True) as store:
        old_reader = duckdb.connect(str(mirror.path), read_only=True)
        try:
            mirror.rebuild(store)
        except Exception:
            old_reader.close()
            raise
        assert old_reader.execute("SELECT count(*) FROM notes").fetchall() == [(1,)]
        old_reader.close()
        assert query(mirror, "SELECT count(*) FROM notes") == [(2,)]
    assert sorted(p.name for p in (tmp_path / "d").iterdir() if "duckdb" in p.name) == [
        "mirror.duckdb"
    ]


def run_cli(vault: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir", str(data),
         *args], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


def test_sql_command_formats_and_refuses_writes(tmp_path: Path) -> None:
    """table, json (an array of objects) and csv; a write exits 1 with one clear line."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "#x [[b]]", "b.md": "#x #y"})
    data = tmp_path / "d"
    assert run_cli(vault, data, "rebuild").returncode == 0
    q = "SELECT tag, notes FROM tag_counts ORDER BY tag"
    as_json = run_cli(vault, data, "sql", q, "--format", "json")
    assert json.loads(as_json.stdout) == [{"tag": "x", "notes": 2}, {"tag": "y", "notes": 1}]
    as_csv = run_cli(vault, data, "sql", q, "--format", "csv")
    assert as_csv.stdout == "tag,notes\nx,2\ny,1\n"
    table = run_cli(vault, data, "sql", q).stdout.splitlines()
    assert table[0].split() == ["tag", "notes"] and table[-1] == "(2 rows)"
    for statement in ("DELETE FROM notes", "CREATE TABLE t (a INT)", "UPDATE notes SET size=0"):
        refused = run_cli(vault, data, "sql", statement)
        assert refused.returncode == 1
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "read-only" in refused.stderr
    assert (
        run_cli(
            vault, data, "sql", "SELECT count(*) AS n FROM notes", "--format", "json"
        ).stdout.count('"n": 2')
        == 1
    )


def test_export_writes_parquet_per_table(tmp_path: Path) -> None:
    """export --parquet DIR writes one readable Parquet file per table."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "#x [[b]]\n- [ ] t", "b.md": "---\nk: v\n---\n# H\n"})
    data = tmp_path / "d"
    assert run_cli(vault, data, "rebuild").returncode == 0
    out = tmp_path / "pq"
    done = run_cli(vault, data, "export", "--parquet", str(out))
    assert done.returncode == 0, done.stderr
    counts = {
        p.stem: duckdb.execute(f"SELECT count(*) FROM '{p}'").fetchone()[0]  # type: ignore[index]
        for p in out.glob("*.parquet")
    }
    assert counts == {"notes": 2, "links": 1, "tags": 1, "properties": 1, "tasks": 1,
                      "headings": 1, "events": 2, "mirror_state": 1}  # fmt: skip


@pytest.mark.usefixtures("open_umask")
def test_mirror_files_are_private_from_creation(tmp_path: Path) -> None:
    """Under umask 000, every file a rebuild and a flush create beside the mirror (the
    temp file, its WAL, the mirror's WAL) is 0600 at every moment a poller sees it:
    created so, not made so after DuckDB wrote into it."""
    vault = tmp_path / "v"
    own_vault(vault, notes=300, seed=4, bad=False)
    data = tmp_path / "d"
    rebuild(vault, data)
    seen: dict[str, set[int]] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for entry in os.scandir(data):
                if "duckdb" in entry.name:
                    with suppress(FileNotFoundError):
                        mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                        seen.setdefault(entry.name, set()).add(mode)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with open_store(data, vault_root=vault.resolve()) as store:
            mirror = Mirror(data)
            mirror.rebuild(store)
            for round_ in range(3):
                store.apply([Upsert(dict(r, title=f"t{round_}")) for r in store.records()])
                mirror.flush(store)
    finally:
        stop.set()
        poller.join()
    assert any(name.endswith(".tmp") for name in seen), seen  # the poller saw the rebuild
    assert {name: modes for name, modes in seen.items() if modes != {0o600}} == {}
    assert not_private(data) == {}


@pytest.mark.usefixtures("open_umask")
def test_a_flush_spills_into_the_data_dir_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush or rebuild short of memory spills to disk in the data dir, privately,
    never into `./.tmp` of the folder the process runs in (DuckDB's default for an
    in-memory database), which may be the vault."""
    cwd = tmp_path / "vault"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    data = tmp_path / "d"
    data.mkdir(mode=0o700)
    mirror = Mirror(data)
    with mirror._attached(mirror.path) as con:
        con.execute("SET memory_limit = '20MB'")
        con.execute("SET threads = 1")
        con.execute("SET enable_progress_bar = false")
        big = "SELECT md5(range::VARCHAR) AS s FROM range(600000) ORDER BY s"
        assert con.execute(f"SELECT count(*) FROM ({big})").fetchall() == [(600000,)]
        assert list(cwd.iterdir()) == []
        assert [p for p in data.iterdir() if p.name.endswith(".spill")]  # it did spill
        assert not_private(data) == {}


def test_a_rebuild_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    """A temp file, its WAL and a spill folder named for a process that is gone are
    removed by the next rebuild; those of a live process are left alone."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "a"})
    data = tmp_path / "d"
    store, mirror = build(vault, data)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    left = [f".mirror.duckdb.{gone.pid}.tmp", f".mirror.duckdb.{gone.pid}.tmp.wal"]
    for name in left:
        (data / name).write_bytes(b"x")
    spill = data / f".mirror.duckdb.{gone.pid}.tmp.spill"
    spill.mkdir()
    (spill / "duckdb_temp_storage-0.tmp").write_bytes(b"x")
    alive = data / f".mirror.duckdb.{os.getppid()}.tmp.spill"
    alive.mkdir()
    with store:
        mirror.rebuild(store)
    assert sorted(p.name for p in data.iterdir() if "duckdb" in p.name) == [
        alive.name, "mirror.duckdb",
    ]  # fmt: skip


@pytest.mark.usefixtures("open_umask")
def test_export_is_private_and_writes_only_its_files(tmp_path: Path) -> None:
    """export creates a new folder (and the parents it lacks) 0700 and each file 0600,
    even under umask 000; into an existing folder it writes its files 0600 and leaves
    the folder's mode alone; a symlink planted under a table's name is replaced, its
    target untouched; nothing else is left behind."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "#x [[b]]", "b.md": "b"})
    data = tmp_path / "d"
    store, mirror = build(vault, data)
    store.close()
    fresh = tmp_path / "new" / "exports"
    written = export_parquet(mirror, fresh)
    assert sorted(p.name for p in fresh.iterdir()) == sorted(p.name for p in written)
    assert len(written) == 8
    assert not_private(tmp_path / "new") == {}

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (shared / "notes.parquet").symlink_to(victim)
    written = export_parquet(mirror, shared)
    assert victim.read_text() == "keep me"
    assert not (shared / "notes.parquet").is_symlink()
    assert sorted(p.name for p in shared.iterdir()) == sorted(p.name for p in written)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {
        p.name: 0o600 for p in written
    }
    rows = duckdb.execute(f"SELECT count(*) FROM '{shared / 'notes.parquet'}'").fetchall()
    assert rows == [(2,)]


def test_export_refuses_the_vault(tmp_path: Path) -> None:
    """export into the vault, or a folder inside it (also through a symlink), exits 2
    with one line and writes nothing there: ccc-watch never writes into the vault."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "a", "sub/b.md": "b"})
    data = tmp_path / "d"
    assert run_cli(vault, data, "rebuild").returncode == 0
    (tmp_path / "link").symlink_to(vault / "sub", target_is_directory=True)
    before = sorted(map(str, vault.rglob("*")))
    for folder in (vault, vault / "exports", tmp_path / "link"):
        done = run_cli(vault, data, "export", "--parquet", str(folder))
        assert done.returncode == 2, done
        assert len(done.stderr.strip().splitlines()) == 1 and "vault" in done.stderr
    assert sorted(map(str, vault.rglob("*"))) == before


def test_export_that_cannot_write_ends_with_one_line(tmp_path: Path) -> None:
    """An export DuckDB cannot finish (here the file size limit, as a full disk would)
    exits 1 with one line and no traceback, and leaves no half-written folder."""
    vault = tmp_path / "v"
    write(vault, {f"n{i}.md": f"# {i}\n" + "word " * 2000 for i in range(20)})
    data = tmp_path / "d"
    assert run_cli(vault, data, "rebuild").returncode == 0
    out = tmp_path / "out"
    done = subprocess.run(
        ["sh", "-c", 'ulimit -f 16 && exec "$@"', "sh", sys.executable, "-m", "ccc_watch.cli",
         "--vault", str(vault), "--data-dir", str(data), "export", "--parquet", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done
    assert len(done.stderr.strip().splitlines()) == 1 and "cannot export" in done.stderr
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_mirror_command_and_missing_mirror(tmp_path: Path) -> None:
    """`mirror` catches up, `mirror --rebuild` recreates; sql before any mirror says so."""
    vault = tmp_path / "v"
    write(vault, {"a.md": "a"})
    data = tmp_path / "d"
    rebuild(vault, data)  # the library call leaves the mirror alone
    missing = run_cli(vault, data, "sql", "SELECT 1")
    assert missing.returncode == 1 and "ccc-watch mirror" in missing.stderr
    first = run_cli(vault, data, "mirror")
    assert first.returncode == 0 and "rebuilt" in first.stdout
    again = run_cli(vault, data, "mirror")
    assert "applied: 0 changes" in again.stdout
    assert "rebuilt" in run_cli(vault, data, "mirror", "--rebuild").stdout
