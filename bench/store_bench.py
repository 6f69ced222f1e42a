"""Micro-benchmark of the Store on its two backends, redb and SQLite, side by side.

Run: python bench/store_bench.py [--records N] [--backends redb,sqlite]
                                 [--single N] [--batch N] [--reads N] [--dir PATH]

A hand-run benchmark, not a test. For each backend it opens a fresh store in its own
temporary directory (open_store(data_dir, backend=name, vault_root=...)) and measures,
with note records shaped like the indexer's (sample_record() of bench/serialization.py):

1. upserts/s with one record per write transaction (store.upsert(rec)); every commit
   is durable (redb's commit, SQLite's synchronous=FULL), so this is bound by fsync;
2. upserts/s in batches of --batch records per transaction (store.apply([Upsert...]))
   of --records new records;
3. no-op re-upserts/s of those same records in the same batches, each with a newer
   'indexed_at' as a rescan produces: the idempotent path that writes no record and
   appends no changelog entry (checked: the changelog head must not move); and the
   same one record per transaction for the --single records;
4. point reads/s (store.get(path) of random stored paths, each its own read
   transaction) and records/s of a full iteration (list(store.records()));
5. the size of the database file after the store is closed, of the whole data dir
   (SQLite's WAL included) just before, and of the file after the backend's compact().

Records are built before any timing starts; the garbage collector stays on, as in
real use (it is a large part of the full-iteration time once records number 10,000s).
fsync cost depends on the file system under the temporary directory (printed in the
header; tmpfs makes fsync free): use --dir to benchmark another disk.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package

from serialization import sample_record

from ccc_watch.store import BACKENDS, Upsert, open_store, store_file

Record = dict[str, Any]


@dataclass
class Result:
    """What one backend measured, metric name -> (value, unit)."""

    backend: str
    rows: dict[str, tuple[float, str]] = field(default_factory=dict)
    seconds: float = 0.0


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _batches(records: Sequence[Record], size: int) -> list[list[Upsert]]:
    return [[Upsert(r) for r in records[i : i + size]] for i in range(0, len(records), size)]


def filesystem_of(path: Path) -> str:
    """The file system type holding path, from /proc/mounts (Linux), else 'unknown'."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    target = str(path.resolve())
    best, kind = "", "unknown"
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, parts[2]
    return kind


def bench_backend(
    name: str,
    single: list[Record],
    bulk: list[Record],
    *,
    batch: int,
    reads: int,
    parent: Path | None,
) -> Result:
    """Run every measurement on a fresh store of one backend."""
    result = Result(name)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"store_bench_{name}_", dir=parent) as tmp:
        data_dir = Path(tmp) / "data"
        vault = Path(tmp) / "vault"
        vault.mkdir()
        store = open_store(data_dir, backend=name, vault_root=vault)
        try:
            # 1. one record per transaction
            def one_by_one() -> None:
                for rec in single:
                    store.upsert(rec)

            t = _timed(one_by_one)
            result.rows["upsert, 1 per txn"] = (_rate(len(single), t), "rec/s")

            # 2. batches of new records
            ops = _batches(bulk, batch)
            t = _timed(lambda: [store.apply(b) for b in ops])
            result.rows[f"upsert, {batch} per txn"] = (_rate(len(bulk), t), "rec/s")

            # 3. the same records again, only 'indexed_at' newer: must write nothing
            later = [dict(r, indexed_at=r["indexed_at"] + 3600.0) for r in bulk]
            again = _batches(later, batch)
            head = store.head()
            written: list[int] = []
            t = _timed(lambda: written.extend(len(store.apply(b)) for b in again))
            if sum(written) or store.head() != head:
                raise SystemExit(f"{name}: no-op re-upserts wrote {sum(written)} changes")
            result.rows[f"no-op re-upsert, {batch}/txn"] = (_rate(len(bulk), t), "rec/s")

            # 3b. the same, one per transaction, as the watcher sends them
            later_single = [dict(r, indexed_at=r["indexed_at"] + 3600.0) for r in single]
            t = _timed(lambda: written.extend(store.upsert(r) is not None for r in later_single))
            if sum(written) or store.head() != head:
                raise SystemExit(f"{name}: no-op re-upserts wrote {sum(written)} changes")
            result.rows["no-op re-upsert, 1 per txn"] = (_rate(len(single), t), "rec/s")

            # 4. reads
            paths = [r["path"] for r in single + bulk]
            picks = random.Random(42).choices(paths, k=reads)

            def point_reads() -> None:
                for p in picks:
                    if store.get(p) is None:
                        raise SystemExit(f"{name}: stored record missing: {p}")

            t = _timed(point_reads)
            result.rows["point get (1 read txn each)"] = (_rate(reads, t), "get/s")

            got: list[Record] = []
            t = _timed(lambda: got.extend(store.records()))
            if len(got) != len(paths):
                raise SystemExit(f"{name}: iterated {len(got)} records of {len(paths)}")
            result.rows["full iteration records()"] = (_rate(len(got), t), "rec/s")

            result.rows["data dir size before close"] = (_dir_size(data_dir) / 2**20, "MiB")
        finally:
            store.close()
        db_file = store_file(data_dir, name)
        size = db_file.stat().st_size
        result.rows["db file size after close"] = (size / 2**20, "MiB")
        result.rows["db bytes per record"] = (size / (len(single) + len(bulk)), "B")
        # 5b. how much of that is free space: compact() is on both backends, not the Store
        store = open_store(data_dir, backend=name, vault_root=vault)
        try:
            store.backend.compact()  # type: ignore[attr-defined]
        finally:
            store.close()
        result.rows["db file size after compact()"] = (db_file.stat().st_size / 2**20, "MiB")
    result.seconds = time.perf_counter() - started
    return result


def _fmt(value: float, unit: str) -> str:
    if unit == "MiB":
        return f"{value:,.2f} {unit}"
    return f"{value:,.0f} {unit}"


def print_table(results: list[Result]) -> None:
    """Metrics as rows, backends as columns, and redb/sqlite when both ran."""
    metrics = list(results[0].rows)
    names = [r.backend for r in results]
    by_name = {r.backend: r for r in results}
    ratio = "redb" in by_name and "sqlite" in by_name
    width = max(len(m) for m in metrics)
    header = f"{'metric':<{width}}" + "".join(f"  {n:>16}" for n in names)
    if ratio:
        header += f"  {'redb/sqlite':>11}"
    print(header)
    print("-" * len(header))
    for m in metrics:
        line = f"{m:<{width}}" + "".join(f"  {_fmt(*by_name[n].rows[m]):>16}" for n in names)
        if ratio:
            a, b = by_name["redb"].rows[m][0], by_name["sqlite"].rows[m][0]
            line += f"  {a / b if b else float('nan'):>10.2f}x"
        print(line)
    print("-" * len(header))
    print(f"{'wall time (s)':<{width}}" + "".join(f"  {r.seconds:>16.1f}" for r in results))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000, help="records written in batches")
    parser.add_argument("--single", type=int, default=2_000, help="records written 1 per txn")
    parser.add_argument("--batch", type=int, default=1_000, help="records per batch txn")
    parser.add_argument("--reads", type=int, default=20_000, help="random point reads")
    parser.add_argument("--backends", default="redb,sqlite", help="comma-separated")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dirs")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        parser.error(f"unknown backend(s) {unknown}; choose from {sorted(BACKENDS)}")
    if min(args.records, args.single, args.batch, args.reads) < 1:
        parser.error("--records, --single, --batch and --reads must be at least 1")

    parent = args.dir if args.dir is not None else Path(tempfile.gettempdir())
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(f"python:   {platform.python_version()} ({platform.python_implementation()})")
    print(f"platform: {platform.platform()}")
    print(f"cpus:     {os.cpu_count()} ({platform.machine()} {platform.processor() or ''})")
    print(f"temp dir: {parent} on {filesystem_of(parent)}")
    print(
        f"records:  {args.single:,} one per txn, then {args.records:,} in batches of "
        f"{args.batch:,}; {args.reads:,} point reads"
    )

    single = [sample_record(i) for i in range(args.single)]
    bulk = [sample_record(i) for i in range(args.single, args.single + args.records)]
    started = time.perf_counter()
    results = []
    for name in backends:
        results.append(
            bench_backend(name, single, bulk, batch=args.batch, reads=args.reads, parent=args.dir)
        )
    print()
    print_table(results)
    print(f"total:    {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
