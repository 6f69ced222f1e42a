"""A real full disk for tests: a small tmpfs mounted on the data dir (conftest's
`small_disk` fixture), and a filler file.

CI runs as root, which may mount; elsewhere the tests that need it skip, and say why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mounted_tmpfs(mount: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted on mount (made 0700), unmounted afterwards; skips the test
    without root and mount rights."""
    mount.mkdir(mode=0o700)
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError as e:
        pytest.skip(f"cannot run mount: {e}")
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs was refused: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30, check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Write a file until the disk has not one block left (or only about `leave` bytes);
    return it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while free(folder) - size >= leave and os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    assert free(folder) <= leave
    return filler


def free(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on folder's disk."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize
