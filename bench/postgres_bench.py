"""What publishing to headquarters' PostgreSQL costs: a 100,000-path manifest published
the first time, again unchanged, then with 100 rows changed (target: under 1 s), and
server-side drift between two such nodes.

    python bench/postgres_bench.py                     # its own server (tests/pg.py)
    python bench/postgres_bench.py --rows 20000
    python bench/postgres_bench.py --url postgresql://ccc@db.example/hq --password-file F

Without --url it starts a throw-away cluster from Debian's binaries as tests/pg.py
does (unix socket only, fsync off: the figures are the client's and the server's
work, not a disk's flushes; pass --url for a real server). Each figure is the median
of --repeat runs, wall-clock seconds of PostgresCarrier.publish (reading the node's
digests, comparing, writing, committing). "changed, by COPY + merge" forces the path
publish() takes for many changed rows, to compare with the pipelined INSERT it uses
for few (publish() switches at postgres._FEW changed rows).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ccc_watch.nodes import postgres  # noqa: E402
from ccc_watch.nodes.carrier import ROW_SCHEMA, Manifest, ManifestHeader  # noqa: E402


def rows(n: int, version: int = 0, changed: int = 0) -> list[dict[str, object]]:
    """n rows of realistic paths; the first `changed` (spread out) get other content."""
    step = max(1, n // changed) if changed else 0
    out = []
    for i in range(n):
        v = version if changed and i % step == 0 and i // step < changed else 0
        out.append(
            {
                "key": f"area-{i % 37:02d}/project {i % 211:03d}/Meeting notes {i:06d}.md",
                "path": f"area-{i % 37:02d}/project {i % 211:03d}/Meeting notes {i:06d}.md",
                "id": f"{i:08x}-4c1e-4b7a-9f00-{i:012x}",
                "blake3": f"{v:02x}{i:062x}",
                "size": 2000 + i % 5000 + v,
                "mtime_ns": 1_760_000_000_000_000_000 + i * 1000 + v,
                "record_type": "note",
                "classification": "INTERNAL",
            }
        )
    out.sort(key=lambda r: str(r["key"]))
    return out


def manifest(node: str, data: list[dict[str, object]], seq: int) -> Manifest:
    header = ManifestHeader(node, "outpost", "v-" + node, time.time(), seq, None, len(data))
    return Manifest(header, pa.Table.from_pylist(data, schema=ROW_SCHEMA))


def median(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--changed", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--url", help="an existing database (else a throw-away server)")
    ap.add_argument("--password-file", type=Path)
    args = ap.parse_args()

    server = None
    if args.url:
        url, password_file = args.url, args.password_file
    else:
        import pg

        server = pg.start()
        url = server.url(server.new_database())
        password_file = Path(server.root) / "password"
        password_file.write_text(server.password)
        password_file.chmod(0o600)
    try:
        carrier = postgres.PostgresCarrier(url, password_file)
        n, c = args.rows, args.changed
        base, other = rows(n), rows(n, version=1, changed=c)
        results: list[tuple[str, float, int]] = []

        def timed(label: str, m: Manifest) -> float:
            report = carrier.publish(m)
            results.append((label, report.seconds, report.changed))
            return report.seconds

        # first: into an empty node (a plain COPY). A fresh node name per run.
        firsts = [timed("first", manifest(f"first-{k}", base, 1)) for k in range(args.repeat)]
        carrier.publish(manifest("bench", base, 1))
        same = median(lambda: timed("same", manifest("bench", base, 2)), args.repeat)

        def flip(label: str) -> Callable[[], float]:
            state = {"k": 0}

            def run() -> float:
                state["k"] += 1
                data = other if state["k"] % 2 else base
                return timed(label, manifest("bench", data, 3 + state["k"]))

            return run

        saved = postgres._FEW
        try:
            postgres._FEW = n + 1  # force the pipelined INSERT ... ON CONFLICT
            few = median(flip("few"), args.repeat)
            postgres._FEW = -1  # force COPY into a temporary table + merge
            merged = median(flip("merge"), args.repeat)
        finally:
            postgres._FEW = saved
        carrier.publish(manifest("bench", base, 100))
        carrier.publish(manifest("bench2", other, 1))
        loads, drifts, diffs = [], [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            carrier.load("bench")
            loads.append(time.perf_counter() - t)
            t = time.perf_counter()
            found = carrier.drift("bench", "bench2", stale_after=1e9)
            drifts.append(time.perf_counter() - t)
            t = time.perf_counter()
            table = carrier.diff("bench", "bench2")
            diffs.append(time.perf_counter() - t)
        assert table.num_rows == c, table.num_rows
        assert len(found) == c, len(found)
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)

    changed_of = {label: ch for label, _, ch in results}
    print(f"PostgreSQL carrier, {n:,} rows, median of {args.repeat}")
    print(f"({platform.python_version()}, psycopg {postgres.psycopg.__version__}, "
          f"{'own throw-away server' if server else url})")  # fmt: skip
    print()
    print("| publication | rows written | seconds |")
    print("| --- | ---: | ---: |")
    print(f"| first, {n:,} rows (COPY + merge) | {n:,} | {statistics.median(firsts):.2f} |")
    print(f"| again, unchanged | {changed_of['same']:,} | {same:.2f} |")
    print(f"| {c:,} rows changed (pipelined INSERT ... ON CONFLICT) | {c:,} | {few:.2f} |")
    print(f"| {c:,} rows changed, by COPY + merge | {c:,} | {merged:.2f} |")
    print(f"| load one node's {n:,} rows | | {statistics.median(loads):.2f} |")
    print(f"| drift of two {n:,}-row nodes, one SQL query | | {statistics.median(drifts):.2f} |")
    print(f"| diff of two {n:,}-row nodes, one SQL query | | {statistics.median(diffs):.2f} |")


if __name__ == "__main__":
    main()
