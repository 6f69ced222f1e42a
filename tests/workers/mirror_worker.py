"""A child process for the mirror's kill -9 tests.

mirror_worker.py flush DATA_DIR BATCH   open the redb store in DATA_DIR read-only,
                                        print 'start', flush the mirror in batches of
                                        BATCH changelog entries, printing 'applied SEQ'
                                        after each batch's DuckDB transaction committed,
                                        then 'flushed APPLIED WATERMARK SECONDS', then
                                        wait for stdin to close (so the parent can also
                                        kill it after the flush)
mirror_worker.py crash DATA_DIR STEP    print 'start', flush the mirror and SIGKILL
                                        itself at STEP of making or publishing the
                                        working file, printing 'dying at STEP': 'copy'
                                        (half the published file copied), 'link'
                                        (before the hard link that keeps the published
                                        file), 'replace' (before the rename that
                                        publishes), 'old' (after it, before the old file
                                        becomes the working file)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ccc_watch import procs
from ccc_watch.mirror.mirror import Mirror
from ccc_watch.store import open_store


class ReportingMirror(Mirror):
    """A Mirror that says on stdout when each batch's transaction has committed."""

    def _apply(self, con: Any, expected: int, changes: Any, *rest: Any) -> None:
        super()._apply(con, expected, changes, *rest)
        print(f"applied {changes[-1].seq}", flush=True)


def die(step: str) -> None:
    print(f"dying at {step}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def crash(data_dir: Path, step: str) -> int:
    """Flush, and die at `step` (this process's os, shutil and procs are patched)."""
    link, replace = os.link, procs.replace_durably

    def half_copy(src: Any, dst: Any) -> None:
        data = Path(src).read_bytes()
        Path(dst).write_bytes(data[: len(data) // 2])
        die(step)

    def dying_link(src: Any, dst: Any) -> None:
        die(step)
        link(src, dst)

    def dying_replace(new: Path, old: Path) -> None:
        if step == "replace":
            die(step)
        replace(new, old)
        die(step)

    if step == "copy":
        shutil.copyfile = half_copy  # type: ignore[assignment]
    elif step == "link":
        os.link = dying_link
    elif step in ("replace", "old"):
        procs.replace_durably = dying_replace
    else:
        print(f"unknown step {step!r}", flush=True)
        return 2
    store = open_store(data_dir, readonly=True)
    print("start", flush=True)
    Mirror(data_dir).flush(store)
    print("flushed without dying", flush=True)
    return 1


def main() -> int:
    if sys.argv[1] == "crash":
        return crash(Path(sys.argv[2]), sys.argv[3])
    mode, data_dir, batch = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if mode != "flush":
        print(f"unknown mode {mode!r}", flush=True)
        return 2
    store = open_store(data_dir, readonly=True)
    mirror = ReportingMirror(data_dir, batch_changes=batch)
    print("start", flush=True)
    started = time.perf_counter()
    result = mirror.flush(store)
    elapsed = time.perf_counter() - started
    print(f"flushed {result.applied} {result.watermark} {elapsed:.3f}", flush=True)
    sys.stdin.read()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
