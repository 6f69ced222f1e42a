"""Invariant I8: the text of a CONFIDENTIAL or SECRET note is in no file under the data
dir, and a note whose level cannot be known for sure counts as the most private level
its frontmatter's text could mean. On real files, with the real indexer, store, mirror
and (in test_daemon_privacy.py) daemon; every check greps raw bytes for marker words.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from records import searchable

from ccc_watch.changes.rebuild import rebuild
from ccc_watch.changes.reconcile import reconcile
from ccc_watch.index.indexer import Indexer
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.mirror.mirror import Mirror
from ccc_watch.store import Upsert, open_store
from ccc_watch.vault.ignore import IgnoreRules

VAULT_ID = str(uuid.uuid4())
# Every place a note's text can reach a record: body, H1 title, frontmatter title,
# alias, frontmatter tag, inline tag, task, link target, link alias, link heading,
# another property's value and key; Dataview's: a lower heading, an inline field's key
# and value (whole-line and bracketed), a field on the task, a block id.
CHANNELS = (
    "body", "h1", "fmtitle", "alias", "fmtag", "tag", "task", "target", "linkalias",
    "heading", "property", "key", "h2", "fieldkey", "fieldvalue", "bracketkey",
    "bracketvalue", "taskfield", "block",
)  # fmt: skip


def markers(note: str) -> dict[str, str]:
    """A unique word per channel of one note (letters and digits: valid in every channel)."""
    salt = uuid.uuid4().hex[:8]
    return {c: f"mk{note}{c}{salt}" for c in CHANNELS}


def note_text(m: dict[str, str], frontmatter: str = "") -> str:
    """A note whose every channel carries its own marker; `frontmatter` goes first in the
    block (the level, or something broken)."""
    return (
        f"---\n{frontmatter}title: {m['fmtitle']}\naliases: [{m['alias']}]\n"
        f"tags: [{m['fmtag']}]\nproject: {m['property']}\n{m['key']}: 1\n---\n"
        f"# {m['h1']}\n\n{m['body']} text #{m['tag']}\n\n- [ ] {m['task']}\n"
        f"See [[{m['target']}#{m['heading']}|{m['linkalias']}]].\n"
        f"## {m['h2']}\n{m['fieldkey']}:: {m['fieldvalue']}\n"
        f"A [{m['bracketkey']}:: {m['bracketvalue']}] field. ^{m['block']}\n"
        f"- [/] later 📅 2030-01-02 [owner:: {m['taskfield']}]\n"
    )


def leaked(blob: bytes, m: dict[str, str]) -> list[str]:
    """The channels whose marker is in blob."""
    return [c for c, word in m.items() if word.encode() in blob]


def files_under(data: Path) -> dict[Path, bytes]:
    """Every file under the data dir (hidden and temporary ones too), as raw bytes and
    what the compressed values in them hold (records.searchable). A file a running
    daemon removes between the listing and the read (its mirror's working copy) holds
    nothing any more, and is left out."""
    found = {}
    for p in sorted(data.rglob("*")):
        try:
            if p.is_file():
                found[p] = searchable(p.read_bytes())
        except FileNotFoundError:
            continue
    return found


def leaks_in(data: Path, m: dict[str, str]) -> dict[str, list[str]] | None:
    """{file name: channels whose marker it holds} for every file under data; None when
    no file holds any."""
    found = {p.name: leaked(blob, m) for p, blob in files_under(data).items()}
    return {name: channels for name, channels in found.items() if channels} or None


def index(vault: Path, name: str, text: str | bytes, policy: IndexPolicy | None = None) -> Any:
    """The IndexResult of a note written into vault (the test's temp folder)."""
    path = vault / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return Indexer(vault, VAULT_ID, policy).index(name)


# --- what each level keeps ------------------------------------------------------


def test_confidential_keeps_structure_and_no_text(tmp_path: Path) -> None:
    """CONFIDENTIAL: file facts, the level, and the note's shape (word count, each task's
    line and state), but no text from any channel."""
    m = markers("c")
    result = index(tmp_path, "c.md", note_text(m, "classification: CONFIDENTIAL\n"))
    rec = result.record
    assert leaked(orjson.dumps(rec), m) == []
    assert rec["classification"] == "CONFIDENTIAL" and result.unsure is None
    assert rec["tasks"] == [
        {"line": 13, "done": False, "text": None},
        {"line": 18, "done": True, "text": None},  # no status, date or section either
    ]
    assert (rec["fields"], rec["headings"], rec["blocks"]) == ([], [], [])
    assert rec["word_count"] > 0
    assert rec["frontmatter_status"] == "valid"
    assert (rec["frontmatter"], rec["title"], rec["aliases"], rec["tags"], rec["links"]) == (
        {}, None, [], [], [],
    )  # fmt: skip
    assert rec["body"] is None


def test_secret_keeps_only_the_file_facts_and_the_level(tmp_path: Path) -> None:
    """SECRET: path (and what the path gives), id, size, times, blake3 and the level."""
    m = markers("s")
    (tmp_path / "Logs").mkdir()
    text = note_text(m, "classification: SECRET\ntimestamp: 2026-01-01\n")
    rec = index(tmp_path, "Logs/s.md", text).record
    assert leaked(orjson.dumps(rec), m) == []
    assert rec["classification"] == "SECRET"
    assert rec["record_type"] == "Log"  # from the path, which the record keeps anyway
    assert (rec["tasks"], rec["word_count"], rec["links"], rec["tags"]) == ([], None, [], [])
    assert (rec["fields"], rec["headings"], rec["blocks"]) == ([], [], [])
    assert rec["frontmatter"] == {} and rec["title"] is None and rec["body"] is None
    assert rec["size"] > 0 and rec["blake3"] and rec["mtime_ns"] and rec["id"]


def test_a_secret_note_s_marker_key_does_not_set_its_record_type(tmp_path: Path) -> None:
    """A frontmatter key (`system_prompt`) is text of the note: a SECRET note's type comes
    from its path alone; a CONFIDENTIAL note keeps it (a key's presence is structure)."""
    text = "---\nclassification: {}\nsystem_prompt: x\n---\nbody\n"
    assert index(tmp_path, "a.md", text.format("SECRET")).record["record_type"] == "Metadata"
    assert index(tmp_path, "b.md", text.format("CONFIDENTIAL")).record["record_type"] == (
        "AgentPrompt"
    )


def test_a_private_note_s_yaml_error_keeps_only_its_line(tmp_path: Path) -> None:
    """The parser's message can quote the note (`cannot read 'x' as int`): a private
    note keeps only where its frontmatter broke."""
    m = markers("e")
    text = f"---\nclassification: SECRET\ncode: !!int {m['property']}\n---\n{m['body']}\n"
    rec = index(tmp_path, "e.md", text).record
    assert rec["frontmatter_status"] == "invalid"
    assert rec["frontmatter_error"].startswith("line 3:")
    assert leaked(orjson.dumps(rec), m) == []


@pytest.mark.parametrize("level", ["classification: PUBLIC\n", ""])
def test_public_and_internal_keep_everything(tmp_path: Path, level: str) -> None:
    """A PUBLIC note, and one of the default level (INTERNAL), keep every channel (so
    the greps above can see a marker that is there)."""
    m = markers("p")
    rec = index(tmp_path, "p.md", note_text(m, level)).record
    assert set(leaked(orjson.dumps(rec), m)) == set(CHANNELS)


# --- when the level cannot be known for sure ----------------------------------

_DEEP = "deep: " + "[" * 80 + "]" * 80 + "\n"
_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def _wide(text: str) -> str:
    """text in fullwidth letters (NFKC makes them ASCII again)."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


# (frontmatter lines, the level they must give, whether that level is unsure)
UNSURE = {
    "capitalised key": ('Classification: "secret"\n', "SECRET", False),
    "upper-case key, mixed-case value": ("CLASSIFICATION: Confidential\n", "CONFIDENTIAL", False),
    "in a list": ("classification: [SECRET]\n", "SECRET", True),
    "in a block list": ("classification:\n  - confidential\n", "CONFIDENTIAL", True),
    "in a mapping": ("classification: {level: SECRET}\n", "SECRET", True),
    "inside a longer value": ("classification: top secret\n", "SECRET", True),
    "a value that names no level": ("classification: restricted\n", "SECRET", True),
    "a number": ("classification: 3\n", "SECRET", True),
    "fullwidth letters": (f"classification: {_wide('SECRET')}\n", "SECRET", True),
    "a zero-width space in the value": ("classification: SE\u200bCRET\n", "SECRET", True),
    "a BOM before the key": ("\ufeffclassification: SECRET\n", "SECRET", True),
    "a tab before the key": ("\tclassification: SECRET\n", "SECRET", True),
    "a tab after the colon": ("classification:\tCONFIDENTIAL\n", "CONFIDENTIAL", False),
    "two keys": ("classification: SECRET\nclassification: PUBLIC\n", "SECRET", True),
    "two spellings": ("classification: PUBLIC\nClassification: SECRET\n", "SECRET", True),
    "nested under another key": ("meta:\n  classification: SECRET\n", "SECRET", True),
    "an escaped key in a broken block": ('"cl\\u0061ssification": SECRET\nx: [\n', "SECRET", True),
    "a broken flow list": ("tags: [one, two\nclassification: SECRET\n", "SECRET", True),
    "a broken block that names a level elsewhere": ("title: [confidential\n", "CONFIDENTIAL", True),
    "a broken key line": ("x: 'open\nclassification: CONFIDENTIAL\n", "CONFIDENTIAL", True),
    "too deep": (_DEEP + "classification: CONFIDENTIAL\n", "CONFIDENTIAL", True),
    "too many values": (_BOMB + "classification: SECRET\n", "SECRET", True),
    "a broken block that says PUBLIC": ('title: "open\nclassification: PUBLIC\n', "INTERNAL", True),
    "fullwidth PUBLIC": (f"classification: {_wide('PUBLIC')}\n", "INTERNAL", True),
    "a broken block that names no level": ("title: [open\n", "INTERNAL", False),
    "a broken block too long to read": ("x: [\n" + "y: 1\n" * 60_000, "SECRET", True),
    "a value too long to read": ("classification: >\n" + "  public\n" * 1000, "SECRET", True),
    "valid and PUBLIC": ("classification: PUBLIC\n", "PUBLIC", False),
}


@pytest.mark.parametrize("case", UNSURE)
def test_an_unsure_level_is_the_most_private_the_text_could_mean(tmp_path: Path, case: str) -> None:
    """Any case, quoting, shape, BOM, tab, escape or breakage of the frontmatter: the note
    gets the most private level its frontmatter's text could mean, and says so."""
    lines, level, unsure = UNSURE[case]
    m = markers("u")
    result = index(tmp_path, "u.md", note_text(m, lines))
    rec = result.record
    assert rec["classification"] == level, case
    assert (result.unsure is not None) == unsure, result.unsure
    if level in ("CONFIDENTIAL", "SECRET"):
        assert leaked(orjson.dumps(rec), m) == [], case
        assert result.unsure is None or not leaked(result.unsure.encode(), m)


def test_an_unclosed_block_with_a_level_line_fails_closed(tmp_path: Path) -> None:
    """A block opened and never closed is no frontmatter to Obsidian, but a
    `classification:` line in it may be what the user meant."""
    m = markers("o")
    result = index(tmp_path, "o.md", f"---\nclassification: SECRET\n\n# {m['h1']}\n{m['body']}\n")
    assert result.record["classification"] == "SECRET" and result.unsure
    assert leaked(orjson.dumps(result.record), m) == []
    plain = index(tmp_path, "h.md", "---\n\nA note that opens with a rule. It is secret.\n")
    assert plain.record["classification"] == "INTERNAL" and plain.unsure is None
    # Thousands of nested classification lines: read within bounds, and SECRET.
    nested = "---\n" + "".join(" " * i + "classification:\n" for i in range(3000))
    assert index(tmp_path, "n.md", nested).record["classification"] == "SECRET"


def test_a_note_too_big_to_parse_still_gets_its_level(tmp_path: Path) -> None:
    """A note over max_note_bytes is checksummed, not parsed: its level still comes from
    its frontmatter, so manifests never call a SECRET note INTERNAL."""
    text = "---\nclassification: SECRET\n---\n" + "filler words\n" * 200
    rec = index(tmp_path, "big.md", text, IndexPolicy(max_note_bytes=1000)).record
    assert rec["classification"] == "SECRET" and "limit" in rec["error"]


# --- callers report unsure levels as drift --------------------------------------


def test_reconcile_reports_unsure_levels_as_drift_without_their_text(tmp_path: Path) -> None:
    """One `classification-unsure` drift line per unsure note, naming the level; none for
    a note whose level is certain (or whose broken block names no level)."""
    vault = tmp_path / "vault"
    vault.mkdir()
    m = markers("d")
    (vault / "sure.md").write_text(note_text(m, "classification: SECRET\n"))
    (vault / "broken.md").write_text(note_text(m, "x: [\nclassification: SECRET\n"))
    (vault / "listed.md").write_text(note_text(m, "classification: [confidential]\n"))
    (vault / "typo.md").write_text(note_text(m, "x: [\n"))
    with open_store(tmp_path / "data", vault_root=vault) as store:
        result = reconcile(
            vault, store, Indexer(vault, VAULT_ID), IgnoreRules.load(vault), offline=True
        )
    unsure = {d.path: d for d in result.drift if d.kind == "classification-unsure"}
    assert sorted(unsure) == ["broken.md", "listed.md"]
    assert "SECRET" in unsure["broken.md"].detail
    assert "CONFIDENTIAL" in unsure["listed.md"].detail
    assert not any(leaked(d.line().encode(), m) for d in result.drift)


# --- nothing private under the data dir ---------------------------------------


@pytest.mark.parametrize("backend", ["redb", "sqlite"])
def test_rebuild_writes_no_private_text_anywhere(tmp_path: Path, backend: str) -> None:
    """After `rebuild` and a mirror rebuild, no file under the data dir holds a marker of
    a private note, whichever way its level was written; a PUBLIC note's all are there
    (so the grep can find them)."""
    vault, data = tmp_path / "vault", tmp_path / "data"
    vault.mkdir()
    private: dict[str, dict[str, str]] = {}
    for name, lines in {
        "secret": "classification: SECRET\n",
        "confidential": "classification: confidential\n",
        "broken": "tags: [a\nclassification: SECRET\n",
        "listed": "classification: [SECRET]\n",
    }.items():
        private[name] = markers(name)
        (vault / f"{name}.md").write_text(note_text(private[name], lines))
    public = markers("public")
    (vault / "public.md").write_text(note_text(public, "classification: PUBLIC\n"))
    rebuild(vault, data, backend=backend)
    with open_store(data, backend=backend, readonly=True) as store:
        Mirror(data).rebuild(store)
    assert set(CHANNELS) <= {c for cs in (leaks_in(data, public) or {}).values() for c in cs}
    assert {name: leaks_in(data, m) for name, m in private.items()} == dict.fromkeys(private)


@pytest.mark.parametrize("backend", ["redb", "sqlite"])
def test_scrub_leaves_no_freed_page_with_old_text(tmp_path: Path, backend: str) -> None:
    """Store.scrub(): after records are overwritten, no byte of their old values is left
    in any file of the store, and every record, changelog entry and meta value is kept."""
    data = tmp_path / "data"
    m = markers("f")
    store = open_store(data, backend=backend)
    filler = [Upsert({"path": f"f{i}.md", "id": f"f{i}", "body": "filler " * 300})
              for i in range(300)]  # fmt: skip
    store.apply(filler[:150])
    for version in range(5):  # an editor's autosaves, each a new record
        store.apply([Upsert({"path": "n.md", "id": "n", "body": f"{m['body']} {version} " * 40})])
    store.apply(filler[150:])
    store.apply([Upsert({"path": "n.md", "id": "n", "body": None, "classification": "SECRET"})])
    before = (list(store.records()), store.changes_after(0), dict(store.meta))
    store.scrub()
    assert leaks_in(data, m) is None
    assert (list(store.records()), store.changes_after(0), dict(store.meta)) == before
    store.apply([Upsert({"path": "after.md", "id": "a"})])  # still writable
    store.close()
    with open_store(data, backend=backend, readonly=True) as again:
        assert len(again) == 302 and again.head() == len(before[1]) + 1
    assert leaks_in(data, m) is None


def test_a_policy_change_reindexes_and_scrubs(tmp_path: Path) -> None:
    """default_classification raised from INTERNAL to CONFIDENTIAL: the next scan
    re-reads notes whose files did not change, and their old text leaves the store."""
    from ccc_watch.changes.reconcile import scan
    from ccc_watch.config import load

    vault, data = tmp_path / "vault", tmp_path / "data"
    vault.mkdir()
    m = markers("x")
    (vault / "plain.md").write_text(note_text(m))
    (vault / "public.md").write_text("---\nclassification: PUBLIC\n---\nshown\n")
    flags = {"vault": str(vault), "data_dir": str(data)}
    scan(load(flags, environ={}, config_file=tmp_path / "none.toml", must_exist=False))
    assert leaks_in(data, m), "the INTERNAL note's text should be indexed at first"
    flags["default_classification"] = "CONFIDENTIAL"
    scan(load(flags, environ={}, config_file=tmp_path / "none.toml", must_exist=False))
    with open_store(data, readonly=True) as store:
        plain, public = store.get("plain.md"), store.get("public.md")
    assert plain is not None and plain["classification"] == "CONFIDENTIAL"
    assert public is not None and public["body"] == "shown\n"
    assert leaks_in(data, m) is None
