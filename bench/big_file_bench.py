"""Indexing one huge file: wall time and peak memory (VmHWM) of the process.

A sparse file of --size bytes (3 GiB by default: a video attachment, or a note far
over max_note_bytes) is indexed by the Indexer in a fresh process, which reports how
much its peak resident memory grew and how long the read and hash took. A sparse
file reads as zeros from the page cache, so the time is blake3's and the syscalls',
not the disk's.

    python bench/big_file_bench.py                 # 3 GiB, as attachment and as note
    python bench/big_file_bench.py --size 200M
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
from ccc_watch.index.indexer import Indexer

def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

vault, key = Path(sys.argv[1]), sys.argv[2]
indexer = Indexer(vault, "6f7e3d1c-4c2b-4a55-9a7e-000000000001")
start, t0 = peak_kb(), time.perf_counter()
rec = indexer.index(key).record
print(json.dumps({"seconds": time.perf_counter() - t0, "growth_mb": (peak_kb() - start) / 1024,
                  "error": rec["error"]}))
"""


def size_arg(text: str) -> int:
    """A size such as 3G, 200M or 12345."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1:].isalpha() else int(text)


def main() -> None:
    """Index a sparse file as an attachment and as a note; print one line for each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=size_arg, default=3 << 30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp)
        for name in ("big.mp4", "big.md"):
            with (vault / name).open("wb") as f:
                f.write(b"# heading\n" * 1000)  # text past the binary check
                f.truncate(args.size)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(vault), name],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout)
            print(
                f"{name}: {args.size / (1 << 30):.2f} GiB in {r['seconds']:.2f} s, "
                f"peak memory +{r['growth_mb']:.1f} MB ({r['error'] or 'no error'})"
            )
            (vault / name).unlink()


if __name__ == "__main__":
    main()
