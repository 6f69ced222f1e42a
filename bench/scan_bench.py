"""The body scan alone: the compiled scanner (ccc_watch._redb.scan_body, what
ccc_watch.index.body.scan_body runs) against its Python reference (scan_body_reference),
on the bodies the indexer would scan.

    python bench/scan_bench.py                  # vaultgen 1,000 and 10,000 notes, hub corpus
    python bench/scan_bench.py --sizes 2000 --repeat 5
    python bench/scan_bench.py --no-hub

Each vault's notes are read and split from their frontmatter first (as the indexer
does; a note over the default size limit is left out, the indexer does not scan it),
so the figures are the scan only: µs per note is the best of --repeat passes over all
of them, in one thread. "2 threads" is the compiled scanner on two threads at once
(it releases the GIL), in µs of wall time per note. Synthetic vaults come from the
project's tests/vaultgen.py (with its Bad/ files), built under --work and reused; the
hub corpus from $CCC_WATCH_SHARED/corpus/obsidian-hub.tar.gz (or ../shared beside the
repository) when it is there.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import vaultgen  # noqa: E402
from vaults import SHARED, hub  # noqa: E402

from ccc_watch.index.body import Body, scan_body, scan_body_reference  # noqa: E402
from ccc_watch.index.note import split_frontmatter  # noqa: E402
from ccc_watch.index.policy import IndexPolicy  # noqa: E402

Notes = list[tuple[str, int]]


def bodies(vault: Path) -> tuple[Notes, int]:
    """(body, first line) of every note of the vault the indexer would scan, and their
    size in bytes."""
    out: Notes = []
    size = 0
    for path in sorted(vault.rglob("*.md")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if len(data) > IndexPolicy.max_note_bytes:
            continue
        _, body, line = split_frontmatter(data.decode("utf-8", errors="replace"))
        out.append((body, line))
        size += len(data)
    return out, size


def synthetic(work: Path, notes: int) -> Path:
    vault = work / f"vaultgen-{notes}"
    if not vault.is_dir():
        vaultgen.build(vault, notes, seed=1, bad=True)
    return vault


def best(repeat: int, run: Callable[[Notes], object], notes: Notes) -> float:
    """The shortest of `repeat` runs over notes, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(notes)
        times.append(time.perf_counter() - t0)
    return min(times)


def scan_all(scan: Callable[[str, int], Body], notes: Notes) -> None:
    for body, line in notes:
        scan(body, line)


def python(notes: Notes) -> None:
    scan_all(scan_body_reference, notes)


def rust(notes: Notes) -> None:
    scan_all(scan_body, notes)


def two_threads(notes: Notes) -> None:
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(rust, (notes[0::2], notes[1::2])))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="1000,10000", help="vaultgen vaults to build (notes)")
    ap.add_argument("--no-hub", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ccc-scan-bench")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    vaults: list[tuple[str, Path]] = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        vaults.append((f"vaultgen {size:,}", synthetic(args.work, size)))
    if not args.no_hub:
        found = hub(args.work)
        if found is None:
            print(f"hub corpus: not found under {SHARED} (set CCC_WATCH_SHARED); left out")
        else:
            vaults.append(("hub corpus", found))

    print(f"command:  {' '.join(sys.argv)}")
    print(
        f"python:   {platform.python_version()}  cpus: {os.cpu_count()}  "
        f"platform: {platform.platform()}"
    )
    print(f"best of {args.repeat} passes; vaults in {args.work}")
    print()
    head = (
        f"{'vault':<16} {'notes':>7} {'MB':>7} {'Python µs':>10} {'Rust µs':>8} "
        f"{'speed-up':>9} {'2 threads µs':>13}"
    )
    print(head)
    print("-" * len(head))
    for name, vault in vaults:
        notes, size = bodies(vault)
        n = len(notes)
        py_s = best(args.repeat, python, notes)
        rust_s = best(args.repeat, rust, notes)
        both_s = best(args.repeat, two_threads, notes)
        print(
            f"{name:<16} {n:>7,} {size / 1e6:>7.1f} {py_s / n * 1e6:>10.1f} "
            f"{rust_s / n * 1e6:>8.1f} {py_s / rust_s:>8.1f}x {both_s / n * 1e6:>13.1f}"
        )


if __name__ == "__main__":
    main()
