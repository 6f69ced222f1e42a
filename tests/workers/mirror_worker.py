"""A child process for the mirror's kill -9 tests.

mirror_worker.py flush DATA_DIR BATCH   open the redb store in DATA_DIR read-only,
                                        print 'start', flush the mirror in batches of
                                        BATCH changelog entries, printing 'applied SEQ'
                                        after each batch's DuckDB transaction committed,
                                        then 'flushed APPLIED WATERMARK SECONDS', then
                                        wait for stdin to close (so the parent can also
                                        kill it after the flush)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ccc_watch.mirror.mirror import Mirror
from ccc_watch.store import open_store


class ReportingMirror(Mirror):
    """A Mirror that says on stdout when each batch's transaction has committed."""

    def _apply(self, con: Any, expected: int, changes: Any, *rest: Any) -> None:
        super()._apply(con, expected, changes, *rest)
        print(f"applied {changes[-1].seq}", flush=True)


def main() -> int:
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
