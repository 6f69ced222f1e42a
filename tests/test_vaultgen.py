"""tests/vaultgen.py, the project's own vault builder: same seed, same vault; a truth
that agrees with the files on disk and with an ordinary YAML reader; a churn that is
repeatable and keeps to content; and no import of the code under test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import vaultgen
import yaml
from blake3 import blake3
from conftest import VAULTGEN


def tree(root: Path) -> dict[str, str]:
    """Every entry under root (links not followed): its bytes, link target or 'dir'."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "link:" + os.readlink(path)
            elif os.path.isdir(path):
                out[rel] = "dir"
            else:
                mode = f"{os.lstat(path).st_mode & 0o777:o}:"
                try:
                    out[rel] = mode + blake3(Path(path).read_bytes()).hexdigest()
                except PermissionError:
                    out[rel] = mode + "unreadable"
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("a") / "vault"
    return root, vaultgen.build(root, notes=300, seed=5, bad=True)


def test_same_seed_same_vault(built: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """Byte for byte, link for link, and the same truth; another seed differs."""
    root, truth = built
    again = tmp_path / "b" / "vault"
    assert vaultgen.build(again, notes=300, seed=5, bad=True) == truth
    assert tree(again) == tree(root)
    other = vaultgen.build(tmp_path / "c" / "vault", notes=300, seed=6, bad=True)
    assert other != truth


def test_truth_matches_the_files(built: tuple[Path, dict[str, Any]]) -> None:
    """Each entry is on disk with its size and blake3; each file on disk is in the truth,
    or one of the ignored files every vault has."""
    root, truth = built
    for key, t in truth.items():
        path = root / t.get("disk", key)
        if t["kind"] == "symlink":
            assert path.is_symlink(), key
            continue
        if t["kind"] == "skipped":
            assert os.path.lexists(os.fsencode(root / key)), key
            continue
        assert os.path.lexists(path), key
        assert path.is_symlink() == ("symlink" in t), key
        if t.get("problem") == "unreadable":
            assert path.stat().st_size == t["size"]
            continue
        data = path.read_bytes()
        assert (len(data), blake3(data).hexdigest()) == (t["size"], t["blake3"]), key
    on_disk = {rel for rel, what in tree(root).items() if what != "dir"}
    symlinked_dirs = {k for k, t in truth.items() if t.get("symlink") == "folder"}
    on_disk = {r for r in on_disk if not r.startswith(tuple(d + "/" for d in symlinked_dirs))}
    disk_names = {t.get("disk", k) for k, t in truth.items()}
    assert on_disk == disk_names | set(vaultgen.IGNORED)


def frontmatter_block(data: bytes) -> str | None:
    """The YAML between the first two '---' lines, as Obsidian finds it (or None)."""
    text = data.decode("utf-8", "replace").removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.startswith("---\n"):
        return None
    end = text.find("\n---\n", 3)
    if end < 0:
        end = len(text) - 4 if text.endswith("\n---") else -1
    return None if end < 0 else text[4 : end + 1]


def test_frontmatter_truth_is_what_a_yaml_reader_sees(built: tuple[Path, dict[str, Any]]) -> None:
    """Checked with PyYAML alone: valid blocks are mappings whose classification and tags
    the truth carries; invalid ones do not load as mappings; absent ones are not there."""
    root, truth = built
    counted = Counter()
    for key, t in truth.items():
        if "frontmatter" not in t or "symlink" in t or t.get("problem") == "unreadable":
            continue
        block = frontmatter_block((root / t.get("disk", key)).read_bytes())
        counted[t["frontmatter"]] += 1
        if t["frontmatter"] == "absent":
            assert block is None, key
            continue
        assert block is not None, key
        try:
            data = yaml.safe_load(block)
        except yaml.YAMLError:
            data = None
        if t["frontmatter"] == "invalid":
            assert not isinstance(data, dict), key
            # README "Privacy": the most private of the default and the levels it names.
            named = [w.upper() for w in re.findall(r"(?i)secret|confidential", block)]
            levels = [vaultgen.DEFAULT_CLASSIFICATION, *named]
            level = max(levels, key=vaultgen.CLASSIFICATIONS.index)
            assert t["classification"] == level, key
            continue
        assert isinstance(data, dict), key
        level = data.get("classification", vaultgen.DEFAULT_CLASSIFICATION)
        assert t["classification"] == level, key
        tags = data.get("tags") or []
        assert set([tags] if isinstance(tags, str) else tags) <= set(t["tags"]), key
    assert min(counted.values()) >= 5, counted


def test_links_are_written_in_the_notes(built: tuple[Path, dict[str, Any]]) -> None:
    """Every link target the truth lists appears in its note as written."""
    root, truth = built
    for key, t in truth.items():
        if not t.get("links") or t.get("problem"):
            continue
        text = (root / t.get("disk", key)).read_bytes().decode("utf-8")
        for target in t["links"]:
            assert target in text or quote(target) in text, (key, target)
        assert sorted(target for target, _ in t["resolved"]) == t["links"]


def test_the_vault_covers_what_the_tests_need(built: tuple[Path, dict[str, Any]]) -> None:
    """Every record type, frontmatter state, level, link shape and bad input is there."""
    root, truth = built
    notes = [t for t in truth.values() if t["kind"] == "note"]
    assert {t["record_type"] for t in truth.values() if "record_type" in t} == {
        "Log", "Template", "AgentPrompt", "StructuredData", "Index", "Metadata",
    }  # fmt: skip
    assert {t["frontmatter"] for t in notes} == {"valid", "invalid", "absent"}
    assert {t.get("classification") for t in notes} >= set(vaultgen.CLASSIFICATIONS)
    assert {t["kind"] for t in truth.values()} >= {"note", "data", "attachment", "bad", "symlink"}
    assert any("/" in tag for t in notes for tag in t["tags"])
    resolved = [r for t in notes for r in t["resolved"]]
    assert any(r[1] is None for r in resolved) and any(r[0] == "" for r in resolved)
    assert any(r[1] in vaultgen.IGNORED for r in resolved) is False
    assert any(str(r[1]).endswith(".png") for r in resolved)
    assert sum(t["tasks_open"] for t in notes) and sum(t["tasks_done"] for t in notes)
    problems = {t.get("problem") for t in truth.values()}
    assert problems >= {"binary", "huge", "not_utf8"}
    assert ("unreadable" in problems) == (os.geteuid() != 0)
    assert {t["symlink"] for t in truth.values() if t["kind"] == "symlink"} == {
        "folder", "outside", "dangling",
    }  # fmt: skip
    assert any("disk" in t for t in notes)  # a note named in NFD on disk
    raw = [(root / t.get("disk", k)).read_bytes() for k, t in truth.items() if t["kind"] == "note"]
    assert any(b"\r\n" in data for data in raw) and any(data[:3] == b"\xef\xbb\xbf" for data in raw)
    assert all((root / rel).exists() for rel in vaultgen.IGNORED)


def run_churn(vault: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, str(VAULTGEN), "churn", str(vault), *args],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_churn_is_repeatable_and_keeps_to_content(tmp_path: Path) -> None:
    """Run as a process, the same seed makes the same edits on the same vault, every kind
    of operation runs, and Bad/ and the dot-folders are never touched."""
    logs = []
    for name in ("a", "b"):
        vaultgen.build(tmp_path / name / "vault", notes=60, seed=2, bad=True)
    before = tree(tmp_path / "a" / "vault")
    for name in ("a", "b"):
        log = tmp_path / f"{name}.log"
        run_churn(tmp_path / name / "vault", "--ops", "400", "--seed", "9", "--log", str(log))
        logs.append(log.read_text())
    assert logs[0] == logs[1]
    after = tree(tmp_path / "a" / "vault")
    assert after == tree(tmp_path / "b" / "vault")
    ops = Counter(json.loads(line)["op"] for line in logs[0].splitlines())
    assert set(ops) == set(vaultgen.CHURN_OPS) and sum(ops.values()) == 400
    # Notes in excluded folders are notes a user edits too, and a folder moves with its
    # litter; Bad/ and the dot-folders at the top are not churn's to touch.
    kept = [r for r in before if r.startswith(("Bad/", "."))]
    assert {r: after.get(r) for r in kept} == {r: before[r] for r in kept}


def test_build_from_the_command_line(tmp_path: Path) -> None:
    """`vaultgen.py build` writes DIR.truth.json: the truth build() returns."""
    subprocess.run(
        [sys.executable, str(VAULTGEN), "build", str(tmp_path / "v"), "--notes", "30",
         "--seed", "4", "--bad"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    written = json.loads((tmp_path / "v.truth.json").read_text())
    assert written == vaultgen.build(tmp_path / "w", notes=30, seed=4, bad=True)


def test_vaultgen_never_imports_the_code_under_test(tmp_path: Path) -> None:
    """The truth must not come from ccc_watch."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import vaultgen\n"
        "vaultgen.build(Path(sys.argv[2]), 20, 1, bad=True)\n"
        "vaultgen.churn(Path(sys.argv[2]), 50, 1)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ccc_watch'))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(VAULTGEN.parent), str(tmp_path / "v")],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert run.stdout.strip() == "[]"
