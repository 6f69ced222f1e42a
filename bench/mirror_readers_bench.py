"""Save -> visible to a new DuckDB connection, while readers hold the mirror.

    python bench/mirror_readers_bench.py [--notes 10000] [--saves 100] [--hop 1.0]

A real `ccc-watch run` (default settings: settle 0.2 s, flush interval 1 s) on a
synthetic vault (/work/shared/tools/make_vault.py build DIR --notes N --seed 1, in
/dev/shm when it exists; the data dir on disk). A plain-duckdb reader process keeps
one read-only connection on mirror.duckdb open for the whole run, querying it every
20 ms. Then two phases of --saves saves each, a random 0-0.5 s apart:

1. holder: only that reader;
2. holder + hopper: a second reader reconnects every --hop seconds and holds each
   connection, so it keeps pinning working files: the copies (and the waits between
   copies) that readers can force.

Each save appends a line to a note; its latency is the time until a new read-only
connection (a fresh `duckdb.connect(..., read_only=True)` every 10 ms) sees the note's
new size. Printed: p50 / p99 / max per phase, failed connections (expected 0), and
each reader's query count and errors (expected 0). A hand-run benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from ccc_watch.store import MIRROR_FILE, open_store

SHARED = Path(os.environ.get("CCC_WATCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))

# Holds a read-only connection for `hop` seconds (0: for its whole life), querying
# it every 20 ms; on end of input prints {"queries", "connections", "errors"}.
READER = r"""
import json, select, sys, time
import duckdb
path, hop = sys.argv[1], float(sys.argv[2])
con, opened, queries, connections, errors = None, 0.0, 0, 0, []
while not select.select([sys.stdin], [], [], 0.02)[0]:
    try:
        if con is None:
            con = duckdb.connect(path, read_only=True)
            opened, connections = time.monotonic(), connections + 1
        con.execute("SELECT watermark FROM mirror_state").fetchall()
        con.execute("SELECT count(*), count(DISTINCT folder) FROM notes").fetchall()
        queries += 1
        if hop and time.monotonic() - opened >= hop:
            con.close()
            con = None
    except Exception as e:
        errors.append(f"{type(e).__name__}: {e}")
        con = None
print(json.dumps({"queries": queries, "connections": connections, "errors": errors[:5]}))
"""


class Reader:
    def __init__(self, path: Path, hop: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, str(path), str(hop)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def summary(self) -> dict[str, object]:
        out, _ = self.proc.communicate("stop\n", timeout=60)
        got: dict[str, object] = json.loads(out)
        return got


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def new_connection_size(path: Path, key: str) -> int | None:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("SELECT size FROM notes WHERE path = ?", [key]).fetchall()
    return int(rows[0][0]) if rows else None


def saves(
    vault: Path, mirror: Path, notes: list[Path], n: int, rng: random.Random
) -> dict[str, Any]:
    """n saves, each timed until a new connection sees it."""
    latencies: list[float] = []
    failed: list[str] = []
    for i in range(n):
        note = rng.choice(notes)
        with note.open("a") as f:
            f.write(f"\nsaved {i} at {time.time()}\n")
        size = note.stat().st_size
        key = note.relative_to(vault).as_posix()
        saved = time.perf_counter()
        while True:
            try:
                if new_connection_size(mirror, key) == size:
                    break
            except duckdb.Error as e:
                failed.append(f"{type(e).__name__}: {e}")
            if time.perf_counter() - saved > 60:
                raise SystemExit(f"save {i} of {key} not visible after 60 s")
            time.sleep(0.01)
        latencies.append(time.perf_counter() - saved)
        time.sleep(rng.uniform(0, 0.5))
    return {"latencies": latencies, "failed": failed}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--saves", type=int, default=100, help="saves per phase")
    ap.add_argument("--hop", type=float, default=1.0, help="seconds per hopper connection")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="ccc-readers-", dir=shm if shm.is_dir() else None))
    disk = Path(tempfile.mkdtemp(prefix="ccc-readers-data-"))
    vault, data, log = root / "vault", disk / "data", disk / "daemon.log"
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(f"python:   {platform.python_version()}  cpus: {os.cpu_count()}")
    print(f"duckdb:   {duckdb.__version__}")
    print(f"load:     {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    tool = SHARED / "tools" / "make_vault.py"
    subprocess.run(
        [sys.executable, str(tool), "build", str(vault), "--notes", str(args.notes),
         "--seed", str(args.seed)],
        check=True, capture_output=True,
    )  # fmt: skip
    notes = sorted(p for p in vault.rglob("*.md") if "Bad" not in p.parts)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir", str(data),
         "run"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    mirror = data / MIRROR_FILE
    readers: list[Reader] = []
    try:
        deadline = time.monotonic() + 600
        while True:  # the start-up reconcile done and mirrored
            time.sleep(0.5)
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not come up: see {log}")
            if "reconciled " not in log.read_text(errors="replace") or not mirror.exists():
                continue
            with open_store(data, readonly=True) as store:
                head = store.head()
            with duckdb.connect(str(mirror), read_only=True) as con:
                if con.execute("SELECT watermark FROM mirror_state").fetchall()[0][0] == head:
                    break
        print(f"vault:    {args.notes:,} notes, mirror {mirror.stat().st_size / 2**20:.1f} MiB")
        rng = random.Random(args.seed)
        holder = Reader(mirror, 0)
        readers.append(holder)
        time.sleep(1)
        phases = {"holder": saves(vault, mirror, notes, args.saves, rng)}
        hopper = Reader(mirror, args.hop)
        readers.append(hopper)
        phases["holder + hopper"] = saves(vault, mirror, notes, args.saves, rng)
        summaries = [r.summary() for r in readers]
    finally:
        for r in readers:
            if r.proc.poll() is None:
                r.proc.kill()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    text = log.read_text(errors="replace")
    print(f"flush failures in the log: {text.count('mirror flush ')}")
    print()
    print(f"{'phase':<18} {'saves':>5} {'p50':>8} {'p99':>8} {'max':>8} {'failed connects':>16}")
    for name, got in phases.items():
        lat = got["latencies"]
        print(
            f"{name:<18} {len(lat):>5} {quantile(lat, 0.5) * 1000:>6.0f}ms "
            f"{quantile(lat, 0.99) * 1000:>6.0f}ms {max(lat) * 1000:>6.0f}ms "
            f"{len(got['failed']):>16}"
        )
        for failure in got["failed"][:5]:
            print(f"  failed connect: {failure}")
    for name, summary in zip(("holder", "hopper"), summaries, strict=True):
        print(f"{name} reader: {summary}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(disk, ignore_errors=True)


if __name__ == "__main__":
    main()
