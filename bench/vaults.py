"""Vaults the benchmarks measure: make_vault.py's synthetic ones and the hub corpus, both
from ../shared (or $CCC_WATCH_SHARED), made under a work folder once and reused."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

SHARED = Path(os.environ.get("CCC_WATCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
HUB_ARCHIVE = SHARED / "corpus" / "obsidian-hub.tar.gz"


def synthetic(work: Path, notes: int) -> Path:
    """make_vault.py's vault of `notes` notes (seed 1) under work."""
    vault = work / f"vault-{notes}"
    if not (vault / ".obsidian").exists():
        tool = SHARED / "tools" / "make_vault.py"
        cmd = [sys.executable, str(tool), "build", str(vault), "--notes", str(notes)]
        subprocess.run([*cmd, "--seed", "1"], check=True, capture_output=True)
    return vault


def hub(work: Path) -> Path | None:
    """The hub corpus unpacked under work; None when its archive is not there."""
    vault = work / "hub"
    if not vault.is_dir():
        if not HUB_ARCHIVE.exists():
            return None
        with tarfile.open(HUB_ARCHIVE) as tar:
            tar.extractall(vault, filter="data")
    return vault
