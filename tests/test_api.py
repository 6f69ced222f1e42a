"""The library (ccc_watch.api): every call of Index against a real vault indexed by the
real commands (store and mirror), and the README's "Library and change feed" example,
run as it is written."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ccc_watch.api import Change, Cursor, Index, Link, ResyncNeeded, open_index
from ccc_watch.errors import ConfigError, StoreMissingError
from ccc_watch.mirror.mirror import MirrorError
from tests.conftest import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def indexed(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """A vault of notes with tags, links, folders and levels, rebuilt (store + mirror)."""
    v = tmp_path / "vault"
    (v / "Projects" / "2026").mkdir(parents=True)
    (v / "Projects" / "a.md").write_text("---\ntags: [Project]\n---\n# A\nsee [[b]] #todo\n")
    (v / "Projects" / "2026" / "b.md").write_text("# B\n#project/alpha, back to [[a]]\n")
    (v / "c.md").write_text("[[missing]] [[a#A]]\n")
    (v / "conf.md").write_text("---\nclassification: CONFIDENTIAL\n---\nsee [[a]]\n")
    (v / "s.md").write_text("---\nclassification: SECRET\n---\nthe plan [[a]]\n")
    (v / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    data = tmp_path / "data"
    got = cli(env, v, data, "rebuild")
    assert got.returncode == 0, got.stderr
    return {"vault": v, "data": data, "env": env}


@pytest.fixture
def index(indexed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Index:
    monkeypatch.setenv("XDG_CONFIG_HOME", indexed["env"]["XDG_CONFIG_HOME"])
    ix = open_index(indexed["vault"], data_dir=indexed["data"])
    yield ix
    ix.close()


def paths(records: Any) -> list[str]:
    return [r["path"] for r in records]


def test_open_index_finds_the_store_or_says_why(tmp_path: Path, indexed: dict[str, Any]) -> None:
    """No store yet: StoreMissingError naming how to make one; a bad setting: ConfigError;
    a named config file that is missing: ConfigError."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreMissingError, match="rebuild"):
        open_index(empty, data_dir=tmp_path / "nodata")
    with pytest.raises(ConfigError, match="vault"):
        open_index(tmp_path / "no-such-vault", data_dir=tmp_path / "d")
    with pytest.raises(ConfigError):
        open_index(indexed["vault"], data_dir=indexed["data"], config_file=tmp_path / "x.toml")


def test_get_len_and_head(index: Index) -> None:
    """A record by path (in any Unicode form the store keys it by), None when absent;
    len() counts records; head is the history's newest entry."""
    rec = index.get("Projects/a.md")
    assert rec is not None and rec["title"] == "A" and rec["path"] == "Projects/a.md"
    assert index.get("nope.md") is None
    assert len(index) == 6
    assert index.head == 6


def test_records_filters(index: Index) -> None:
    """Each filter, and several together; tags as Obsidian matches them."""
    assert paths(index.records()) == sorted(
        ["Projects/a.md", "Projects/2026/b.md", "c.md", "conf.md", "s.md", "pic.png"]
    )
    assert paths(index.records(tag="project")) == ["Projects/2026/b.md", "Projects/a.md"]
    assert paths(index.records(tag="#PROJECT/Alpha")) == ["Projects/2026/b.md"]
    assert paths(index.records(tag="proj")) == []  # a prefix of a name is no tag
    assert paths(index.records(folder="Projects")) == ["Projects/2026/b.md", "Projects/a.md"]
    assert paths(index.records(folder="Projects/2026/")) == ["Projects/2026/b.md"]
    assert paths(index.records(classification="secret")) == ["s.md"]
    kinds = {r["record_type"] for r in index.records()}
    one = sorted(kinds)[0]
    assert all(r["record_type"] == one for r in index.records(record_type=one))
    assert paths(index.records(tag="todo", folder="Projects")) == ["Projects/a.md"]
    secret = index.get("s.md")
    assert secret is not None and "the plan" not in str(secret)  # the store's privacy


def test_records_changed_since(indexed: dict[str, Any], index: Index) -> None:
    """changed_since: a time, an age, or a Cursor; renames count as changes, deletes
    leave nothing to list."""
    cursor = Cursor(index.head)
    time.sleep(0.05)
    cut = time.time()
    v = indexed["vault"]
    (v / "c.md").write_text("changed\n")
    (v / "Projects" / "a.md").rename(v / "Projects" / "a2.md")
    (v / "pic.png").unlink()
    assert cli(indexed["env"], v, indexed["data"], "scan").returncode == 0
    for since in (cut, cursor):
        assert paths(index.records(changed_since=since)) == ["Projects/a2.md", "c.md"], since
    assert paths(index.records(changed_since="1h")) == paths(index.records())  # the rebuild
    assert paths(index.records(changed_since=time.time() + 60)) == []
    with pytest.raises(ResyncNeeded):
        list(index.records(changed_since=Cursor(999)))


def test_links_and_backlinks(index: Index) -> None:
    """Links resolved by Obsidian's rules (a bare name, a heading link), broken ones
    with resolved None; backlinks from other notes only."""
    out = index.links("c.md")
    assert [(link.target, link.resolved, link.heading) for link in out] == [
        ("missing", None, None),
        ("a", "Projects/a.md", "A"),
    ]
    assert all(isinstance(link, Link) and link.source == "c.md" for link in out)
    back = sorted(link.source for link in index.backlinks("Projects/a.md"))
    assert "Projects/2026/b.md" in back and "c.md" in back
    assert index.links("no-such.md") == []
    # A CONFIDENTIAL note's links are its text: in no database, so in no answer.
    assert index.links("conf.md") == []
    assert "conf.md" not in {link.source for link in index.backlinks("Projects/a.md")}


def test_query_and_query_arrow(index: Index) -> None:
    """One read-only SELECT with parameters, as rows or Arrow; writes and a second
    statement are refused; the SECRET note's text is in no table."""
    names, rows = index.query("SELECT path FROM notes WHERE path LIKE $p ORDER BY path",
                              {"p": "Projects/%"})  # fmt: skip
    assert names == ["path"] and rows == [("Projects/2026/b.md",), ("Projects/a.md",)]
    table = index.query_arrow("SELECT count(*) AS n FROM notes WHERE path = $1", ["c.md"])
    assert table.to_pylist() == [{"n": 1}]
    with pytest.raises(MirrorError, match="read-only"):
        index.query("DELETE FROM notes")
    with pytest.raises(MirrorError, match="one statement"):
        index.query("SELECT 1; SELECT 2")
    _, bodies = index.query("SELECT coalesce(body, '') FROM notes")
    assert not any("the plan" in b for (b,) in bodies)


def test_health(index: Index) -> None:
    """The status report: no daemon runs here, so Unhealthy, saying so."""
    report = index.health()
    assert report["health"] == "Unhealthy"
    assert "no daemon" in report["reason"]


def test_events_and_following(indexed: dict[str, Any], index: Index) -> None:
    """events(): the history from a cursor (a Cursor, its text, a seq); follow=True
    yields new operations as a `scan` commits them, and ends when stop is set."""
    history = list(index.events())
    assert [c.seq for c in history] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(c, Change) and c.op == "upsert" for c in history)
    assert [c.seq for c in index.events(since=str(Cursor.of(history[2])))] == [4, 5, 6]
    assert [c.seq for c in index.events(since=5)] == [6]
    with pytest.raises(ResyncNeeded):
        list(index.events(since=Cursor(3, "0" * 64)))

    stop = threading.Event()
    seen: list[Change] = []

    def consume() -> None:
        for change in index.events(since=Cursor.of(history[-1]), follow=True, stop=stop):
            seen.append(change)

    t = threading.Thread(target=consume)
    t.start()
    try:
        v = indexed["vault"]
        (v / "new.md").write_text("new\n")
        assert cli(indexed["env"], v, indexed["data"], "scan").returncode == 0
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(timeout=10)
    assert not t.is_alive()
    assert [(c.seq, c.op, c.path) for c in seen] == [(7, "upsert", "new.md")]


def test_a_rebuilt_store_is_read_again(indexed: dict[str, Any], index: Index) -> None:
    """After `rebuild` replaces the store's file, the next call reads the new one."""
    assert index.get("late.md") is None
    (indexed["vault"] / "late.md").write_text("late\n")
    got = cli(indexed["env"], indexed["vault"], indexed["data"], "rebuild")
    assert got.returncode == 0, got.stderr
    assert index.get("late.md") is not None


def test_the_readme_example_runs(tmp_path: Path, env: dict[str, str]) -> None:
    """The README's library example, on the sample vault, as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Library and change feed", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    vault = tmp_path / "sample-vault"
    shutil.copytree(ROOT / "sample-vault", vault)
    data = tmp_path / "data"
    assert cli(env, vault, data, "rebuild").returncode == 0
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        scope: dict[str, Any] = {"DATA": data}
        exec(compile(code, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    assert scope["cursor"] is not None
    assert scope["note"]["path"] == "Welcome.md"
    assert scope["table"].num_rows >= 1
