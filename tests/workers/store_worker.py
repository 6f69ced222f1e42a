"""A second process for the store's multi-process tests.

store_worker.py hold DATA_DIR BACKEND     open writable, print 'ready', then for
                                          each stdin line 'upsert I' upsert
                                          record I and print 'ok I'
store_worker.py batch DATA_DIR BACKEND N  open writable, print 'start', apply N
                                          upserts in one batch, print 'committed',
                                          then wait for stdin to close
store_worker.py open DATA_DIR BACKEND     open writable; print 'opened' or
                                          '<ErrorClass>: <message>'
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from records import make_record

from ccc_watch.errors import CccWatchError
from ccc_watch.store import Upsert, open_store


def main() -> int:
    mode, data_dir, backend = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    try:
        store = open_store(data_dir, backend=backend)
    except CccWatchError as e:
        print(f"{type(e).__name__}: {e}", flush=True)
        return 3
    if mode == "open":
        print("opened", flush=True)
    elif mode == "hold":
        print("ready", flush=True)
        for line in sys.stdin:
            i = int(line.split()[1])
            store.upsert(make_record(i, f"version {i}", path="shared.md"), cause="worker")
            print(f"ok {i}", flush=True)
    elif mode == "batch":
        n = int(sys.argv[4])
        ops = [Upsert(make_record(i, "x" * 2000 + str(i))) for i in range(n)]
        print("start", flush=True)
        store.apply(ops)
        print("committed", flush=True)
        sys.stdin.read()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
