"""Where the store's bytes go after a rebuild, and what compression costs and saves.

    python bench/store_size.py --vault DIR                # a vault you have
    python bench/store_size.py --notes 20000              # built with make_vault.py
    python bench/store_size.py --notes 20000 --modes zstd # only the stored form of today

For each mode it rebuilds the vault into a fresh data dir (ccc_watch.changes.rebuild,
in this process, one worker pool as the CLI uses) and prints:
1. per table: rows, bytes of keys, of values as stored and of their JSON (decompressed);
2. the file: its size as the rebuild leaves it, after Database.compact() of a copy (and
   how long that took), the free pages compact gave back, and what is left above the keys
   and values: redb's B-tree overhead (page headers, entry offsets, part-filled pages);
3. reads: Store.get of --gets random paths (each its own read transaction), a full
   scan (list(store.records())) and a projected scan (records(fields=("blake3",
   "size")), what the daemon's start-up scan reads), best of --repeat.
Modes: "before" is the store before bench/store_size.py's findings: every value as JSON
(codec.COMPRESS_AT set past any value) and no compaction at the end of the rebuild;
"json" compacts; "zstd" compacts and compresses, as ccc-watch does today;
"zstd-nocompact" compresses only. The vault's bytes are the
sum of its files' sizes. Other processes on the machine make times noisy: compare
modes within one run, and run it twice.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vaults import synthetic

from ccc_watch import _redb
from ccc_watch.changes.rebuild import rebuild
from ccc_watch.store import Store, codec, open_store, store_file
from ccc_watch.store.backend import TABLES

MB = 1e6
MODES = ("before", "json", "zstd-nocompact", "zstd")


@dataclass
class Table:
    rows: int = 0
    keys: int = 0
    stored: int = 0
    json: int = 0


@dataclass
class Result:
    mode: str
    rebuild_s: float = 0.0
    file: int = 0
    compacted: int = 0
    compact_s: float = 0.0
    tables: dict[str, Table] = field(default_factory=dict)
    reads: dict[str, float] = field(default_factory=dict)


def vault_bytes(vault: Path) -> tuple[int, int]:
    """(files, bytes) of the vault's regular files, dot folders left out."""
    n = total = 0
    for dirpath, dirnames, filenames in os.walk(vault):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                n += 1
                total += os.path.getsize(p)
    return n, total


def table_bytes(path: Path) -> dict[str, Table]:
    out: dict[str, Table] = {}
    db = _redb.Database(path, readonly=True)
    try:
        with db.begin_read() as tx:
            for name, kind in TABLES.items():
                t = Table()
                table = tx.str_table(name) if kind == "str" else tx.u64_table(name)
                start = None
                while rows := table.range(start, limit=5000):
                    for k, v in rows[1:] if start is not None else rows:
                        t.rows += 1
                        t.keys += len(k.encode()) if isinstance(k, str) else 8
                        t.stored += len(v)
                        t.json += len(codec.plain(v))
                    if len(rows) < 5000:
                        break
                    start = rows[-1][0]
                out[name] = t
    finally:
        db.close()
    return out


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(mode: str, vault: Path, data: Path, gets: int, repeat: int) -> Result:
    saved, compact = codec.COMPRESS_AT, Store.compact
    codec.COMPRESS_AT = saved if mode.startswith("zstd") else sys.maxsize
    if mode in ("before", "zstd-nocompact"):
        Store.compact = lambda self: False  # type: ignore[method-assign]
    try:
        shutil.rmtree(data, ignore_errors=True)
        report = rebuild(vault, data)
    finally:
        codec.COMPRESS_AT, Store.compact = saved, compact
    res = Result(mode, rebuild_s=report.seconds)
    path = store_file(data, "redb")
    res.file = path.stat().st_size
    res.tables = table_bytes(path)
    store = open_store(data, readonly=True)
    try:
        with store.snapshot() as snap:
            paths = [r["path"] for r in snap.records(fields=())]
            picks = random.Random(1).choices(paths, k=gets)
            res.reads["get"] = best(lambda: [store.get(p) for p in picks], repeat) / gets
            res.reads["scan"] = best(lambda: list(store.records()), repeat) / len(paths)
            res.reads["projected"] = best(
                lambda: list(snap.records(fields=("blake3", "size"))), repeat
            ) / len(paths)
    finally:
        store.close()
    copy = data / "compacted.redb"
    shutil.copyfile(path, copy)
    db = _redb.Database(copy)
    t0 = time.perf_counter()
    db.compact()
    res.compact_s = time.perf_counter() - t0
    db.close()
    res.compacted = copy.stat().st_size
    copy.unlink()
    return res


def show(results: list[Result], vault_size: int) -> None:
    print("bytes per table (MB): keys, values as stored, values as JSON")
    head = (
        f"{'mode':<14} {'table':<11} {'rows':>8} {'keys':>8} {'stored':>8} {'JSON':>8} {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        for name, t in r.tables.items():
            ratio = t.stored / t.json if t.json else 1.0
            print(
                f"{r.mode:<14} {name:<11} {t.rows:>8,} {t.keys / MB:>8.2f} {t.stored / MB:>8.2f} "
                f"{t.json / MB:>8.2f} {ratio:>6.2f}"
            )
    print()
    print("the file (MB); x vault: the file against the vault's bytes")
    head = (
        f"{'mode':<14} {'rebuild s':>9} {'file':>7} {'x vault':>7} {'free':>7} {'compacted':>9} "
        f"{'x vault':>7} {'compact s':>9} {'k+v':>7} {'B-tree':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        kv = sum(t.keys + t.stored for t in r.tables.values())
        print(
            f"{r.mode:<14} {r.rebuild_s:>9.2f} {r.file / MB:>7.1f} {r.file / vault_size:>7.2f} "
            f"{(r.file - r.compacted) / MB:>7.1f} {r.compacted / MB:>9.1f} "
            f"{r.compacted / vault_size:>7.2f} {r.compact_s:>9.2f} {kv / MB:>7.1f} "
            f"{(r.compacted - kv) / MB:>7.1f}"
        )
    print()
    print("reads (µs per record, best of --repeat)")
    head = f"{'mode':<14} {'get':>8} {'full scan':>10} {'projected':>10}"
    print(head)
    print("-" * len(head))
    for r in results:
        g, s, p = (r.reads[k] * 1e6 for k in ("get", "scan", "projected"))
        print(f"{r.mode:<14} {g:>8.1f} {s:>10.1f} {p:>10.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--vault", type=Path, help="a vault to rebuild")
    src.add_argument("--notes", type=int, help="build a make_vault.py vault of N notes")
    ap.add_argument("--modes", default="before,json,zstd-nocompact,zstd")
    ap.add_argument("--gets", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    shm = Path("/dev/shm")
    ap.add_argument(
        "--work",
        type=Path,
        default=shm / "ccc-bench" if shm.is_dir() else Path(tempfile.gettempdir()),
        help="where --notes vaults are built and kept",
    )
    ap.add_argument("--data", type=Path, help="where the stores go (default: a temp dir)")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        ap.error(f"unknown modes: {', '.join(sorted(unknown))} ({', '.join(MODES)})")
    if args.vault is not None:
        vault = args.vault
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        vault = synthetic(args.work, args.notes)
    files, size = vault_bytes(vault)
    data_root = args.data or Path(tempfile.mkdtemp(prefix="ccc-size-"))
    print(f"command: {' '.join(sys.argv)}")
    print(f"python:  {platform.python_version()}  cpus: {os.cpu_count()}  load: {os.getloadavg()}")
    print(f"vault:   {vault}: {files:,} files, {size / MB:.1f} MB; stores in {data_root}")
    print()
    try:
        results = [
            measure(m, vault, data_root / f"data-{m}", args.gets, args.repeat) for m in modes
        ]
    finally:
        if args.data is None:
            shutil.rmtree(data_root, ignore_errors=True)
    show(results, size)


if __name__ == "__main__":
    main()
