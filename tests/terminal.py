"""Running ccc-watch with its stdout on a terminal (a pseudo-terminal), as a person
runs it: what it shows there. POSIX only, as the tests that use it."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path


def on_a_terminal(
    vault: Path, data: Path, env: dict[str, str], *args: str, columns: int | None = None
) -> str:
    """What `ccc-watch --vault vault --data-dir data ARGS` prints to a pseudo-terminal
    (`columns` wide when given; otherwise of no known size), which must exit 0."""
    master, slave = pty.openpty()
    try:
        if columns is not None:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        done = subprocess.run(
            [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir",
             str(data), *args], stdout=slave, stderr=subprocess.PIPE, env=env, timeout=120,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        assert done.returncode == 0, done.stderr[-2000:]
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode().replace("\r\n", "\n")
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
