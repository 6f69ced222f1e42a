"""Benchmark of the DuckDB mirror: full rebuilds, incremental flushes, and publishing.

Run: python bench/mirror_bench.py [--records N] [--flush-records N] [--compare-records N]
                                  [--rounds N] [--changes N] [--batch N] [--dir PATH]

A hand-run benchmark, not a test. Records are note records shaped like the indexer's
(sample_record() of bench/serialization.py: 8 links, 3 tags and 1 implied parent, 6
properties, 4 tasks, a 2 KB body), written into a fresh redb store in batches of
--batch through store.apply(). It measures:

1. Rebuild: the time to build a store of --records records (reported apart), then
   Mirror.rebuild() of that store, as notes rows/s and all-tables rows/s (notes,
   links, tags, properties, tasks and events).
2. Incremental flush: on a mirror of --flush-records notes, --rounds rounds of
   "upsert --changes changed records into the store (not timed), Mirror.flush()
   (timed)": median and p99 of the flush, and of FlushResult.held_seconds, how long
   the DuckDB file was held read-write (readers are locked out meanwhile).
3. The README's two designs for letting readers in, on a mirror of --compare-records
   notes, the same rounds each:
   (a) what Mirror does: ATTACH the published file read-write, apply the changes,
       DETACH; readers are locked out for the whole flush;
   (b) a private working database (a Mirror on a private file, flushed the same way)
       published after each flush by copying the whole file to a temporary name beside
       the published one, fsync, and os.replace(); readers are never locked out, and a
       reader with an open connection keeps the snapshot it opened.

Machine facts and the command line are printed first. The figures depend on the disk
under --dir (default: the system temp dir; its file system is printed).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package

import duckdb
import pyarrow as pa
from serialization import sample_record
from store_bench import filesystem_of

from ccc_watch.mirror.mirror import Mirror
from ccc_watch.store import Store, Upsert, open_store

Record = dict[str, Any]
ROW_TABLES = ("notes", "links", "tags", "properties", "tasks", "events")


def build_store(data_dir: Path, vault: Path, n: int, batch: int) -> tuple[Store, float]:
    """A fresh redb store of n sample records; returns it and the seconds the writes
    took (records are built before the clock starts)."""
    records = [sample_record(i) for i in range(n)]
    store = open_store(data_dir, vault_root=vault)
    started = time.perf_counter()
    for i in range(0, n, batch):
        store.apply([Upsert(r) for r in records[i : i + batch]])
    return store, time.perf_counter() - started


def changed_rounds(n: int, rounds: int, changes: int) -> list[list[Record]]:
    """For each round, `changes` distinct records of 0..n-1 with a new body and blake3
    (so each upsert appends one changelog entry)."""
    out = []
    for r in range(rounds):
        start = (r * changes * 7919) % n  # spread the rounds over the vault
        picks = sorted({(start + k * 104_729) % n for k in range(changes * 2)})[:changes]
        batch = []
        for i in picks:
            rec = sample_record(i)
            rec["body"] += f" Edited in round {r}."
            rec["size"] = len(rec["body"])
            rec["blake3"] = hashlib.sha256(f"{i}:{r}".encode()).hexdigest()
            batch.append(rec)
        out.append(batch)
    return out


def table_counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ROW_TABLES}


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (q=0.99 of 100 values is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Table:
    """Printed rows: (section, metric, value text)."""

    rows: list[tuple[str, str, str]]

    def add(self, section: str, metric: str, value: str) -> None:
        self.rows.append((section, metric, value))
        print(f"  {metric}: {value}", flush=True)

    def print(self) -> None:
        w1 = max(len(r[0]) for r in self.rows)
        w2 = max(len(r[1]) for r in self.rows)
        w3 = max(len(r[2]) for r in self.rows)
        rule = "-" * (w1 + w2 + w3 + 4)
        print(rule)
        print(f"{'part':<{w1}}  {'metric':<{w2}}  value")
        print(rule)
        last = None
        for section, metric, value in self.rows:
            shown = section if section != last else ""
            if last is not None and section != last:
                print()
            print(f"{shown:<{w1}}  {metric:<{w2}}  {value}")
            last = section
        print(rule)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def dist(values: list[float]) -> str:
    return f"{ms(statistics.median(values))} / {ms(quantile(values, 0.99))}"


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def flush_rounds(
    store: Store,
    mirror: Mirror,
    rounds: list[list[Record]],
    after: Callable[[], dict[str, float]] | None = None,
) -> dict[str, list[float]]:
    """Per round: upsert the round's records (untimed), then time mirror.flush() and,
    when given, after() (which returns its own named timings)."""
    out: dict[str, list[float]] = {"flush": [], "held": []}
    for batch in rounds:
        changes = store.apply([Upsert(r) for r in batch])
        if len(changes) != len(batch):
            raise SystemExit(f"expected {len(batch)} changes, the store appended {len(changes)}")
        started = time.perf_counter()
        result = mirror.flush(store)
        out["flush"].append(time.perf_counter() - started)
        out["held"].append(result.held_seconds)
        if result.rebuilt or result.applied != len(batch) or result.watermark != store.head():
            raise SystemExit(f"unexpected flush result {result} (head {store.head()})")
        if after is not None:
            for name, seconds in after().items():
                out.setdefault(name, []).append(seconds)
    return out


def part_rebuild(args: argparse.Namespace, root: Path, table: Table) -> None:
    section = f"1. rebuild, {args.records:,} records"
    print(f"\n{section}", flush=True)
    data, vault = root / "rebuild" / "data", root / "rebuild" / "vault"
    vault.mkdir(parents=True)
    started = time.perf_counter()
    store, write_s = build_store(data, vault, args.records, args.batch)
    with store:
        table.add(
            section, "store build (records + apply)", f"{time.perf_counter() - started:.1f} s"
        )
        table.add(section, "  of which store.apply", f"{write_s:.1f} s")
        table.add(section, "  store writes", f"{args.records / write_s:,.0f} rec/s")
        mirror = Mirror(data)
        started = time.perf_counter()
        result = mirror.rebuild(store)
        seconds = time.perf_counter() - started
        if not result.rebuilt or result.watermark != store.head():
            raise SystemExit(f"unexpected rebuild result {result}")
    counts = table_counts(mirror.path)
    if counts["notes"] != args.records:
        raise SystemExit(f"mirror has {counts['notes']} notes, expected {args.records}")
    total = sum(counts.values())
    table.add(section, "Mirror.rebuild", f"{seconds:.1f} s")
    table.add(section, "notes rows/s", f"{counts['notes'] / seconds:,.0f}")
    table.add(section, f"all-tables rows/s ({total:,} rows)", f"{total / seconds:,.0f}")
    table.add(section, "mirror file", mib(mirror.path.stat().st_size))
    shutil.rmtree(root / "rebuild")


def part_flush(args: argparse.Namespace, root: Path, table: Table) -> None:
    section = f"2. flush {args.changes} changes, {args.flush_records:,}-note mirror"
    print(f"\n{section}", flush=True)
    data, vault = root / "flush" / "data", root / "flush" / "vault"
    vault.mkdir(parents=True)
    store, _ = build_store(data, vault, args.flush_records, args.batch)
    rounds = changed_rounds(args.flush_records, args.rounds, args.changes)
    with store:
        mirror = Mirror(data)
        table.add(section, "initial Mirror.rebuild", f"{mirror.rebuild(store).held_seconds:.1f} s")
        size = mirror.path.stat().st_size
        t = flush_rounds(store, mirror, rounds)
    table.add(section, f"Mirror.flush, median / p99 ({args.rounds} rounds)", dist(t["flush"]))
    table.add(section, "file held (held_seconds), median / p99", dist(t["held"]))
    table.add(
        section, "mirror file before / after", f"{mib(size)} / {mib(mirror.path.stat().st_size)}"
    )
    shutil.rmtree(root / "flush")


def publish(private: Path, published: Path) -> dict[str, float]:
    """Copy the private database to a temporary name beside `published`, fsync it,
    and rename it over `published`; the time of each step."""
    tmp = published.with_name(f".{published.name}.{os.getpid()}.publish")
    t0 = time.perf_counter()
    shutil.copyfile(private, tmp)
    t1 = time.perf_counter()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    t2 = time.perf_counter()
    os.replace(tmp, published)
    t3 = time.perf_counter()
    return {"copy": t1 - t0, "fsync": t2 - t1, "replace": t3 - t2, "publish": t3 - t0}


def part_compare(args: argparse.Namespace, root: Path, table: Table) -> None:
    n = args.compare_records
    section = f"3. designs, {args.changes} changes, {n:,}-note mirror"
    print(f"\n{section}", flush=True)
    base = root / "compare"
    data, vault = base / "data", base / "vault"
    vault.mkdir(parents=True)
    store, _ = build_store(data, vault, n, args.batch)
    rounds = changed_rounds(n, args.rounds, args.changes)
    with store:
        # (a) attach read-write, apply, detach: the published file itself
        mirror = Mirror(data)
        mirror.rebuild(store)
        a = flush_rounds(store, mirror, rounds)
        # (b) a private working file, flushed the same way, then published by copy +
        # rename. The store gets new changes for the same paths, so (b) applies the
        # same amount of work as (a).
        private_dir = base / "private"
        private_dir.mkdir()
        working = Mirror(private_dir)
        working.rebuild(store)
        published = base / "published.duckdb"
        shutil.copyfile(working.path, published)
        rounds_b = changed_rounds(n, args.rounds, args.changes)
        for r, batch in enumerate(rounds_b):  # new contents, so every upsert changes
            for rec in batch:
                rec["blake3"] = hashlib.sha256(f"b:{rec['path']}:{r}".encode()).hexdigest()
        b = flush_rounds(store, working, rounds_b, lambda: publish(working.path, published))
        size = working.path.stat().st_size
        with duckdb.connect(str(published), read_only=True) as con:
            head = con.execute("SELECT watermark FROM mirror_state").fetchall()[0][0]
        if head != store.head():
            raise SystemExit(f"published snapshot at {head}, store at {store.head()}")
    total_b = [f + p for f, p in zip(b["flush"], b["publish"], strict=True)]
    table.add(section, "mirror file size", mib(size))
    table.add(section, "(a) attach/apply/detach, median / p99", dist(a["flush"]))
    table.add(section, "(a)   readers locked out, median / p99", dist(a["held"]))
    table.add(section, "(b) apply to private file, median / p99", dist(b["flush"]))
    table.add(section, "(b)   copy whole file, median / p99", dist(b["copy"]))
    table.add(section, "(b)   fsync copy, median / p99", dist(b["fsync"]))
    table.add(section, "(b)   os.replace, median / p99", dist(b["replace"]))
    table.add(section, "(b) apply + publish, median / p99", dist(total_b))
    table.add(section, "(b)   readers locked out", "0 (readers of the old file keep it)")
    table.add(section, "(b)   bytes written per flush (copy)", mib(size))
    shutil.rmtree(base)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000, help="records for part 1")
    parser.add_argument("--flush-records", type=int, default=50_000, help="notes for part 2")
    parser.add_argument("--compare-records", type=int, default=10_000, help="notes for part 3")
    parser.add_argument("--rounds", type=int, default=100, help="flush rounds in parts 2 and 3")
    parser.add_argument("--changes", type=int, default=50, help="changed notes per round")
    parser.add_argument("--batch", type=int, default=1_000, help="records per store.apply")
    parser.add_argument("--parts", default="1,2,3", help="comma-separated parts to run")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dir")
    args = parser.parse_args(argv)
    sizes = (args.records, args.flush_records, args.compare_records, args.batch)
    if min(*sizes, args.rounds, args.changes) < 1:
        parser.error("sizes, --rounds and --changes must be at least 1")
    if args.changes > min(args.flush_records, args.compare_records):
        parser.error("--changes must not exceed the mirror sizes")
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"1", "2", "3"}:
        parser.error("--parts takes a comma-separated subset of 1,2,3")

    parent = args.dir if args.dir is not None else Path(tempfile.gettempdir())
    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal:")),
        None,
    ) if Path("/proc/meminfo").exists() else None  # fmt: skip
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(f"python:   {platform.python_version()} ({platform.python_implementation()})")
    print(f"platform: {platform.platform()}")
    print(f"cpus:     {os.cpu_count()} ({platform.machine()} {platform.processor() or ''})")
    print(f"memory:   {'?' if mem is None else f'{int(mem) / 2**20:.1f} GiB'}")
    print(f"load:     {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    print(f"duckdb:   {duckdb.__version__}; pyarrow {pa.__version__}")
    print(f"temp dir: {parent} on {filesystem_of(parent)}")

    started = time.perf_counter()
    table = Table([])
    with tempfile.TemporaryDirectory(prefix="mirror_bench_", dir=parent) as tmp:
        root = Path(tmp)
        if "1" in parts:
            part_rebuild(args, root, table)
        if "2" in parts:
            part_flush(args, root, table)
        if "3" in parts:
            part_compare(args, root, table)
    print()
    table.print()
    print(f"total:    {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
