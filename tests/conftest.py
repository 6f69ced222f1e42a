"""Shared fixtures: the synthetic-vault generator and the real hub corpus from ../shared."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger


def shared_dir() -> Path | None:
    """The project's shared/ folder: $CCC_WATCH_SHARED, or ../shared beside the repo."""
    env = os.environ.get("CCC_WATCH_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return path if path.is_dir() else None


def make_vault(dest: Path, notes: int, seed: int, bad: bool = True) -> dict[str, Any]:
    """Build a synthetic vault with shared/tools/make_vault.py; return its ground truth."""
    shared = shared_dir()
    tool = None if shared is None else shared / "tools" / "make_vault.py"
    if tool is None or not tool.exists():
        pytest.skip("make_vault.py not found: set CCC_WATCH_SHARED to the shared/ folder")
    args = [
        sys.executable,
        str(tool),
        "build",
        str(dest),
        "--notes",
        str(notes),
        "--seed",
        str(seed),
    ]
    subprocess.run(args + (["--bad"] if bad else []), check=True, capture_output=True)
    truth: dict[str, Any] = json.loads(Path(f"{dest}.truth.json").read_text())
    return truth


def hub_corpus(dest: Path) -> Path:
    """Unpack the real obsidian-hub vault into dest; skip when the corpus is absent."""
    shared = shared_dir()
    archive = None if shared is None else shared / "corpus" / "obsidian-hub.tar.gz"
    if archive is None or not archive.exists():
        pytest.skip("obsidian-hub.tar.gz not found: set CCC_WATCH_SHARED to the shared/ folder")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under root (not following links) with a digest of its bytes and mode."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                try:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                except PermissionError:
                    digest = "unreadable"
                out[str(path)] = f"{st.st_mode:o}:{st.st_mtime_ns}:{digest}"
            else:
                out[str(path)] = f"{st.st_mode:o}"
    return out


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Loguru messages as 'LEVEL message' lines, while the test runs."""
    out: list[str] = []
    sink = logger.add(
        lambda m: out.append(f"{m.record['level'].name} {m.record['message']}"), level="DEBUG"
    )
    yield out
    logger.remove(sink)
