"""The Indexer on real files: stable reads, errors with reasons, record fields, policy."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import blake3
import pytest

from ccc_watch import cli
from ccc_watch.index.indexer import Indexer, record_id
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.vault import read as read_module
from ccc_watch.vault.read import read_file

VAULT_ID = str(uuid.uuid4())


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    return root


def test_a_note_record_has_every_field(vault: Path) -> None:
    """blake3 of the raw bytes, stat fields, parsed fields, deterministic id."""
    data = b"---\ntitle: T\ntags: [x]\n---\n# Heading\n[[Other]] #y\n- [ ] task\n"
    (vault / "n.md").write_bytes(data)
    rec = Indexer(vault, VAULT_ID).index("n.md").record
    assert rec is not None
    st = os.stat(vault / "n.md")
    assert rec["blake3"] == blake3.blake3(data).hexdigest()
    assert (rec["size"], rec["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    assert rec["id"] == record_id(VAULT_ID, "n.md", rec["inode"])
    assert (rec["kind"], rec["extension"], rec["mime"]) == ("note", ".md", "text/markdown")
    assert rec["title"] == "T"
    assert rec["tags"] == ["x", "y"]
    assert [link["target"] for link in rec["links"]] == ["Other"]
    assert rec["tasks"] == [
        {"line": 7, "done": False, "text": "task", "status": " ", "section": "Heading",
         **dict.fromkeys(("due", "scheduled", "start", "created", "completion", "priority"))}
    ]  # fmt: skip
    assert rec["headings"] == [{"level": 1, "text": "Heading", "line": 5}]
    assert rec["body"] == "# Heading\n[[Other]] #y\n- [ ] task\n"
    assert rec["classification"] == "INTERNAL" and rec["error"] is None


@pytest.mark.parametrize(
    ("path", "frontmatter", "expected"),
    [
        ("Templates/Daily.md", "", "Template"),
        ("Logs/2026/01/x.md", "", "Log"),
        ("2026-11-27 log.md", "", "Log"),
        ("Catalog/blog.md", "", "Metadata"),
        ("notes/x.md", "timestamp: 2026-01-01T00:00:00Z\n", "Log"),
        ("Prompts/agent.md", "", "AgentPrompt"),
        ("notes/y.md", "system_prompt: be brief\n", "AgentPrompt"),
        ("Data/x.json", None, "StructuredData"),
        ("Data/x.yaml", None, "StructuredData"),
        ("Maps/index.md", "", "Index"),
        ("Research/paper.md", "", "Metadata"),
    ],
)
def test_record_types_follow_the_design_heuristics(
    vault: Path, path: str, frontmatter: str | None, expected: str
) -> None:
    """Path words and frontmatter markers decide the record type; the rest is Metadata."""
    file = vault / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("{}\n" if frontmatter is None else f"---\n{frontmatter}---\nbody\n")
    rec = Indexer(vault, VAULT_ID).index(path).record
    assert rec is not None and rec["record_type"] == expected


@pytest.mark.parametrize("level", ["CONFIDENTIAL", "SECRET", "secret"])
def test_private_bodies_are_never_kept(vault: Path, level: str) -> None:
    """A CONFIDENTIAL or SECRET note keeps its file facts and loses its body and every
    other text (tests/test_privacy.py looks at each channel)."""
    (vault / "p.md").write_text(f"---\nclassification: {level}\n---\nthe secret #tag\n")
    rec = Indexer(vault, VAULT_ID).index("p.md").record
    assert rec is not None
    assert rec["classification"] == level.upper()
    assert rec["body"] is None
    assert rec["tags"] == [] and rec["size"] > 0


def test_body_policy_and_default_classification_are_configurable(vault: Path) -> None:
    """The policy decides which classifications lose their body, and the default."""
    (vault / "a.md").write_text("plain\n")
    policy = IndexPolicy(default_classification="SECRET")
    rec = Indexer(vault, VAULT_ID, policy).index("a.md").record
    assert rec is not None and rec["classification"] == "SECRET" and rec["body"] is None
    keep_all = IndexPolicy(private_classifications=frozenset())
    (vault / "b.md").write_text("---\nclassification: SECRET\n---\nkept\n")
    rec = Indexer(vault, VAULT_ID, keep_all).index("b.md").record
    assert rec is not None and rec["body"] == "kept\n"


def test_a_vanished_file_gives_no_record(vault: Path) -> None:
    """A file deleted before it is read is simply gone: no record, no error."""
    result = Indexer(vault, VAULT_ID).index("gone.md")
    assert result.record is None and result.error is None


def test_a_file_that_keeps_changing_is_an_error(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written to during every read attempt is never stable: OSError, not a torn
    read. (The write is injected into os.open so that every attempt is raced.)"""
    path = vault / "busy.md"
    path.write_text("start\n")
    race_opens(monkeypatch, path, times=None)
    with pytest.raises(OSError, match="kept changing"):
        read_file(vault, path, keep=1 << 20)


def test_a_file_changed_once_during_a_read_is_read_again(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first read races a write; the retry returns the final content whole."""
    path = vault / "n.md"
    path.write_text("old\n")
    race_opens(monkeypatch, path, times=1)
    content = read_file(vault, path, keep=1 << 20)
    assert content.data == b"old\nnew\n" and content.stat.size == 8
    assert content.blake3 == blake3.blake3(b"old\nnew\n").hexdigest()


def race_opens(monkeypatch: pytest.MonkeyPatch, target: Path, times: int | None) -> None:
    """Append a line to target right after it is opened, the first `times` times (None:
    every time), as an editor writing while the file is read. Injected into os.open, so
    the read takes read.py's own path (the compiled one opens without os.open: see
    test_reads.py for it under real concurrent writes)."""
    monkeypatch.setattr(read_module, "_compiled_read", None)
    real_open = os.open
    calls = {"n": 0}

    def racing_open(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(file, flags, *args, **kwargs)
        if os.fspath(file) in (target.name, str(target)) and (times is None or calls["n"] < times):
            calls["n"] += 1
            time.sleep(0.01)
            with target.open("a") as f:
                f.write("new\n")
        return fd

    monkeypatch.setattr(os, "open", racing_open)


def test_an_unreadable_file_gets_a_record_with_the_reason(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied is injected (CI runs as root): a record says why, no crash."""
    path = vault / "locked.md"
    path.write_text("secret\n")
    deny(monkeypatch, path)
    result = Indexer(vault, VAULT_ID).index("locked.md")
    assert result.record is not None
    assert result.error is not None and "Permission denied" in result.error
    assert result.record["error"] == result.error and result.record["blake3"] is None


def test_rebuild_exits_1_when_a_file_cannot_be_read(
    tmp_path: Path, vault: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rest still lands; the failure is listed with its path and reason."""
    (vault / "ok.md").write_text("fine\n")
    (vault / "locked.md").write_text("secret\n")
    deny(monkeypatch, vault / "locked.md")
    code = cli.main(["--vault", str(vault), "--data-dir", str(tmp_path / "data"), "rebuild"])
    out = capsys.readouterr().out
    assert code == 1
    assert "failed: locked.md: cannot read: Permission denied" in out
    assert "indexed 2 of 2 files" in out


def deny(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Make opening target raise PermissionError, as for a user without read access
    (read.py's own path: test_reads.py denies the compiled one for real)."""
    monkeypatch.setattr(read_module, "_compiled_read", None)
    real_open = os.open

    def guarded(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(file) in (target.name, str(target)):
            raise PermissionError(13, "Permission denied", str(target))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)
