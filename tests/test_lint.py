"""The code stays clean: ruff, mypy, cargo fmt and clippy, run as tests so CI runs them.

Each skips with its reason when its tool is not installed (the test extra installs
ruff and mypy; cargo comes with the Rust toolchain that builds the extension).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*cmd: str, cwd: Path = ROOT) -> None:
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} is not installed")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"


def test_ruff_lint() -> None:
    """ruff finds nothing to complain about."""
    run("ruff", "check", ".")


def test_ruff_format() -> None:
    """Every Python file is ruff-formatted."""
    run("ruff", "format", "--check", ".")


def test_mypy_strict() -> None:
    """The package type-checks under mypy --strict (configured in pyproject.toml)."""
    run("mypy")


def test_cargo_fmt() -> None:
    """The Rust extension is rustfmt-formatted."""
    run("cargo", "fmt", "--check", cwd=ROOT / "rust")


def test_cargo_clippy() -> None:
    """clippy with -D warnings is clean on the Rust extension."""
    run("cargo", "clippy", "--quiet", "--", "-D", "warnings", cwd=ROOT / "rust")
