"""Benchmark of the DuckDB mirror: full rebuilds, incremental flushes, and publishing.

Run: python bench/mirror_bench.py [--records N] [--flush-records N] [--compare-records N]
                                  [--rounds N] [--changes N] [--copy-rounds N]
                                  [--batch N] [--parts 1,2,3] [--dir PATH]

A hand-run benchmark, not a test. Records are note records shaped like the indexer's
(sample_record() of bench/serialization.py: 8 links, 3 tags and 1 implied parent, 6
properties, 4 tasks, a 2 KB body), written into a fresh redb store in batches of
--batch through store.apply(). It measures:

1. Rebuild: the time to build a store of --records records (reported apart), then
   Mirror.rebuild() of that store, as notes rows/s and all-tables rows/s (notes,
   links, tags, properties, tasks and events).
2. Incremental flush: on a mirror of --flush-records notes, --rounds rounds of
   "upsert --changes changed records into the store (not timed), Mirror.flush()
   (timed)": median and p99 of the flush (apply to the working file, checkpoint,
   fsync, rename over mirror.duckdb), and of FlushResult.held_seconds, how long the
   working file was held read-write (readers of mirror.duckdb are never locked out);
   then --copy-rounds rounds in which a reader process holds the working file, so
   that the flush must copy the published file first (the copy spacing is switched
   off): the flush, the copy itself, and the bytes copied.
3. Publishing, on a mirror of --compare-records notes, the same rounds each, after
   the design this replaced for comparison (attach mirror.duckdb read-write, apply,
   detach: readers locked out meanwhile, and a reader holding the file stops it):
   (a) no reader: the working file is the previous generation, nothing is copied;
   (b) a reader process holding mirror.duckdb for the whole part: one copy (the flush
       after it opened), then as (a);
   (c) readers that hold every generation for two flushes (the worst case, spacing
       off; played by a reader holding the working file): a copy on every flush,
       which is also what "a private working database copied to the published name on
       every flush" would cost.

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
import subprocess
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
from loguru import logger
from serialization import sample_record
from store_bench import filesystem_of

from ccc_watch.mirror.mirror import Mirror
from ccc_watch.store import Store, Upsert, open_store

Record = dict[str, Any]

# A plain-duckdb reader: "open PATH" closes the connection it has and opens PATH
# read-only (and says "ok"); end of input ends it.
PINNER = r"""
import sys
import duckdb
con = None
for line in sys.stdin:
    if con is not None:
        con.close()
    con = duckdb.connect(line.strip().split(" ", 1)[1], read_only=True)
    con.execute("SELECT count(*) FROM notes").fetchall()
    print("ok", flush=True)
"""


class Pinner:
    """A reader process that holds whichever mirror file it was last told to open."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PINNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def open(self, path: Path) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"open {path}\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            raise SystemExit(f"the reader could not open {path}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


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
    before: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Per round: upsert the round's records and call before() (untimed), then time
    mirror.flush(); also collects held_seconds and whether the flush copied."""
    out: dict[str, list[float]] = {"flush": [], "held": [], "copied": []}
    for batch in rounds:
        changes = store.apply([Upsert(r) for r in batch])
        if len(changes) != len(batch):
            raise SystemExit(f"expected {len(batch)} changes, the store appended {len(changes)}")
        if before is not None:
            before()
        started = time.perf_counter()
        result = mirror.flush(store)
        out["flush"].append(time.perf_counter() - started)
        out["held"].append(result.held_seconds)
        out["copied"].append(float(result.copied))
        if result.rebuilt or result.applied != len(batch) or result.watermark != store.head():
            raise SystemExit(f"unexpected flush result {result} (head {store.head()})")
    return out


def copy_seconds(mirror: Mirror) -> float:
    """One copy of the published file to the working file, as a reader-forced flush
    makes it (copy + fsync + rename)."""
    started = time.perf_counter()
    mirror._copy_published()
    return time.perf_counter() - started


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
    rounds = changed_rounds(args.flush_records, args.rounds + args.copy_rounds, args.changes)
    with store:
        mirror = Mirror(data)
        table.add(section, "initial Mirror.rebuild", f"{mirror.rebuild(store).held_seconds:.1f} s")
        size = mirror.path.stat().st_size
        flush_rounds(store, mirror, rounds[:1])  # makes the working file (a copy)
        t = flush_rounds(store, mirror, rounds[1 : args.rounds])
        pinner = Pinner()

        def pin_the_working_file() -> None:
            pinner.open(mirror.work)
            mirror.copy_due = 0.0  # no spacing: every one of these flushes copies

        c = flush_rounds(store, mirror, rounds[args.rounds :], pin_the_working_file)
        pinner.close()
        copies = [copy_seconds(mirror) for _ in range(args.copy_rounds)]
    if sum(t["copied"]) or not all(c["copied"]):
        raise SystemExit("the flushes did not copy when expected")
    n = args.rounds - 1
    table.add(section, f"Mirror.flush, median / p99 ({n} rounds)", dist(t["flush"]))
    table.add(section, "working file held, median / p99", dist(t["held"]))
    table.add(section, "readers of mirror.duckdb locked out", "never")
    table.add(
        section, f"flush with a copy (reader holds the working file), {args.copy_rounds} rounds",
        dist(c["flush"]),
    )  # fmt: skip
    table.add(section, "  the copy alone (copy + fsync + rename)", dist(copies))
    table.add(section, "  bytes copied", mib(mirror.path.stat().st_size))
    table.add(
        section, "mirror file before / after", f"{mib(size)} / {mib(mirror.path.stat().st_size)}"
    )
    shutil.rmtree(root / "flush")


def in_place(mirror: Mirror, store: Store) -> dict[str, float]:
    """The design this replaced, for comparison: attach mirror.duckdb itself read-write
    (readers locked out meanwhile), apply, detach. Returns the flush's seconds."""
    started = time.perf_counter()
    with mirror._attached(mirror.path) as con:
        state = mirror.state(con)
        assert state is not None
        watermark = state[0]
        while changes := store.changes_after(watermark, mirror.batch_changes):
            touched = {c.path for c in changes} | {c.prev_path for c in changes if c.prev_path}
            records = [r for r in map(store.get, sorted(touched)) if r is not None]
            mirror._apply(con, watermark, changes, touched, records)
            watermark = changes[-1].seq
    return {"flush": time.perf_counter() - started}


def part_compare(args: argparse.Namespace, root: Path, table: Table) -> None:
    n = args.compare_records
    section = f"3. publishing, {args.changes} changes, {n:,}-note mirror"
    print(f"\n{section}", flush=True)
    base = root / "compare"
    data, vault = base / "data", base / "vault"
    vault.mkdir(parents=True)
    store, _ = build_store(data, vault, n, args.batch)
    rounds = changed_rounds(n, args.rounds * 4 + 1, args.changes)
    with store:
        mirror = Mirror(data)
        mirror.rebuild(store)
        old = []
        for batch in rounds[: args.rounds]:
            store.apply([Upsert(r) for r in batch])
            old.append(in_place(mirror, store)["flush"])
        rounds = rounds[args.rounds :]
        flush_rounds(store, mirror, rounds[:1])  # makes the working file (a copy)
        rest = rounds[1:]
        a = flush_rounds(store, mirror, rest[: args.rounds])
        holder = Pinner()
        holder.open(mirror.path)  # holds this generation for the rest of (b)
        b = flush_rounds(store, mirror, rest[args.rounds : 2 * args.rounds])
        pinner = Pinner()

        def pin_every_generation() -> None:  # as if each had been held since it was published
            pinner.open(mirror.work)
            mirror.copy_due = 0.0

        c = flush_rounds(store, mirror, rest[2 * args.rounds :], pin_every_generation)
        holder.close()
        pinner.close()
        size = mirror.path.stat().st_size
    table.add(section, "mirror file size", mib(size))
    table.add(section, "in place (the old design): readers locked out", dist(old))
    table.add(section, "(a) no reader, median / p99", dist(a["flush"]))
    table.add(section, "(a)   copies", f"{sum(a['copied']):.0f} of {args.rounds}")
    table.add(section, "(b) a reader holds mirror.duckdb, median / p99", dist(b["flush"]))
    table.add(section, "(b)   copies", f"{sum(b['copied']):.0f} of {args.rounds}")
    table.add(section, "(c) a reader pins every generation, median / p99", dist(c["flush"]))
    table.add(section, "(c)   copies", f"{sum(c['copied']):.0f} of {args.rounds}")
    table.add(section, "(c)   bytes copied per flush", mib(size))
    table.add(section, "readers locked out, or a flush refused", "never, in all three")
    shutil.rmtree(base)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000, help="records for part 1")
    parser.add_argument("--flush-records", type=int, default=50_000, help="notes for part 2")
    parser.add_argument("--compare-records", type=int, default=10_000, help="notes for part 3")
    parser.add_argument("--rounds", type=int, default=100, help="flush rounds in parts 2 and 3")
    parser.add_argument("--changes", type=int, default=50, help="changed notes per round")
    parser.add_argument(
        "--copy-rounds", type=int, default=10, help="part 2's flushes that must copy"
    )
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

    logger.remove()  # the mirror's debug lines (one per copy) would drown the figures
    logger.add(sys.stderr, level="INFO")
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
