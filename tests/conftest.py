"""Shared fixtures: synthetic vaults with their ground truth, and logs.

Two generators build vaults. The project's own, tests/vaultgen.py, runs everywhere.
../shared's make_vault.py, written independently of the project, and ../shared's real
hub corpus are extra comparisons: the tests that use them skip, saying so, when
../shared is absent (a fresh clone on any machine but the project's own).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import disks
import pytest
import vaultgen
from loguru import logger

# Tests send SIGINT to the commands they start (Ctrl-C). A shell starts a background
# job with SIGINT ignored, and every process it starts inherits that, Python's too (it
# then installs no KeyboardInterrupt): under a runner started that way those tests
# would fail. The commands these tests start get SIGINT's default again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Where a test's vault comes from: "own" (tests/vaultgen.py, always) or "shared"
# (../shared/tools/make_vault.py, a comparison that skips when ../shared is absent).
SOURCES = ("own", "shared")
VAULTGEN = Path(__file__).with_name("vaultgen.py")


def shared_dir() -> Path | None:
    """The project's shared/ folder: $CCC_WATCH_SHARED, or ../shared beside the repo."""
    env = os.environ.get("CCC_WATCH_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return path if path.is_dir() else None


def own_vault(dest: Path, notes: int, seed: int, bad: bool = True) -> dict[str, Any]:
    """Build a synthetic vault with the project's tests/vaultgen.py; return its truth."""
    return vaultgen.build(dest, notes, seed, bad=bad)


def shared_tool() -> Path:
    """../shared's make_vault.py; skip the test (a comparison with it) when absent."""
    shared = shared_dir()
    tool = None if shared is None else shared / "tools" / "make_vault.py"
    if tool is None or not tool.exists():
        pytest.skip(
            "comparison with ../shared's independent vault generator: make_vault.py not "
            "found (set CCC_WATCH_SHARED to the shared/ folder)"
        )
    return tool


def make_vault(dest: Path, notes: int, seed: int, bad: bool = True) -> dict[str, Any]:
    """Build a synthetic vault with ../shared's make_vault.py; return its ground truth."""
    tool = shared_tool()
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


def build_vault(source: str, dest: Path, notes: int, seed: int, bad: bool = True) -> dict[str, Any]:
    """A vault from one of SOURCES, and its ground truth."""
    if source == "own":
        return own_vault(dest, notes, seed, bad)
    assert source == "shared", source
    return make_vault(dest, notes, seed, bad)


# README "Privacy": what a record of a private level keeps of what the file holds.
PRIVATE = ("CONFIDENTIAL", "SECRET")


def as_indexed(truth: dict[str, Any]) -> dict[str, Any]:
    """A truth entry (what Obsidian reads in the file) as the index keeps it: a private
    note keeps no tags and no links, and a SECRET note not even its tasks' count, nor a
    record type that a frontmatter key gave."""
    level = truth.get("classification")
    if level not in PRIVATE:
        return truth
    kept = dict(truth)
    for field, empty in (("tags", []), ("links", []), ("resolved", [])):
        if field in kept:
            kept[field] = empty
    if level == "SECRET":
        for field in ("tasks_open", "tasks_done"):
            if field in kept:
                kept[field] = 0
        kept["record_type"] = kept.pop("path_type", kept.get("record_type"))
    return kept


def hub_corpus(dest: Path) -> Path:
    """Unpack the real obsidian-hub vault into dest; skip when the corpus is absent."""
    shared = shared_dir()
    archive = None if shared is None else shared / "corpus" / "obsidian-hub.tar.gz"
    if archive is None or not archive.exists():
        pytest.skip(
            "comparison with ../shared's real-vault corpus: obsidian-hub.tar.gz not found "
            "(set CCC_WATCH_SHARED to the shared/ folder)"
        )
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


def not_private(*roots: Path) -> dict[str, str]:
    """Each root and every entry under it that is not private: a folder not 0700, a file
    not 0600 (symlinks aside), with its mode."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                found[str(path)] = oct(stat.S_IMODE(st.st_mode))
    return found


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000 in this process for the test: what the code creates is then exactly as
    private as the code makes it, and no more."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """A small vault of one note, a.md."""
    v = tmp_path / "vault"
    v.mkdir()
    (v / "a.md").write_text("# a\n")
    return v


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment for a child process: no CCC_WATCH_*, LOGURU_* or JOURNAL_STREAM
    from the caller, and XDG_STATE_HOME (platformdirs' user log dir on Linux) and
    XDG_CONFIG_HOME inside tmp_path."""
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CCC_WATCH_", "LOGURU_")) and k != "JOURNAL_STREAM"
    }
    out["XDG_STATE_HOME"] = str(tmp_path / "state")
    out["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    return out


def cli(
    env: dict[str, str], vault: Path, data: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`ccc-watch --vault VAULT --data-dir DATA ARGS...` in a child with env."""
    return subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir", str(data),
         *args],
        capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A small real disk to fill: an 8 MiB tmpfs on tmp_path/data (see tests/disks.py)."""
    yield from disks.mounted_tmpfs(tmp_path / "data")


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Loguru messages as 'LEVEL message' lines, while the test runs."""
    out: list[str] = []
    sink = logger.add(
        lambda m: out.append(f"{m.record['level'].name} {m.record['message']}"), level="DEBUG"
    )
    yield out
    logger.remove(sink)


def pytest_addoption(parser: pytest.Parser) -> None:
    """--long-campaigns: the crash and fault campaigns at full length (README
    "Reliability"); by default they run scaled for CI."""
    parser.addoption(
        "--long-campaigns",
        action="store_true",
        help="run tests/test_campaigns.py at full length (200 kill points, 20,000 operations)",
    )


@pytest.fixture
def long_campaigns(request: pytest.FixtureRequest) -> bool:
    """Whether --long-campaigns was given."""
    return bool(request.config.getoption("--long-campaigns"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """At full length the campaigns run for many minutes: lift pytest-timeout's limit."""
    if config.getoption("--long-campaigns"):
        for item in items:
            if item.path.name == "test_campaigns.py":
                item.add_marker(pytest.mark.timeout(0))
