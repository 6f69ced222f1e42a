"""What `ccc-watch drift` costs on two 100,000-path manifests that differ in ~1% of
their paths (edits, paths missing on either side, renames, conflict copies).

    python bench/nodes_bench.py                 # 100,000 paths
    python bench/nodes_bench.py --paths 10000
    python bench/nodes_bench.py --full-records    # the store holds 3.5 KB note records

1. the comparison itself: ccc_watch.nodes.drift.compare() on two Arrow tables (DuckDB
   joins them in memory), the median of --repeat runs;
2. the whole command: a store of --paths small records (written directly, in batches;
   no vault files are needed: drift reads the store, not the vault), headquarters'
   manifest published to a manifest folder on disk, then `ccc-watch drift --against hq
   --json` as a real process (wall clock: Python start-up, reading the store, building
   this node's manifest, reading the Parquet file, comparing, printing), first with no
   mirror (this node's rows come from the store's records), then with the mirror at
   the store's head, as a running daemon keeps it (the rows come from its notes
   table); and `ccc-watch manifest publish` for comparison. With --full-records the
   store's records are full 3.5 KB note records (bench/serialization.py), as an indexed
   vault's are: reading them from the store is most of the command without a mirror.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402

from ccc_watch.nodes.carrier import ROW_SCHEMA, Manifest, ManifestHeader  # noqa: E402
from ccc_watch.nodes.drift import compare  # noqa: E402
from ccc_watch.nodes.folder import FolderCarrier  # noqa: E402
from ccc_watch.store import Upsert, open_store  # noqa: E402


def _digest(i: int, salt: str = "") -> str:
    return f"{i:016x}{salt:0>8}".ljust(64, "0")[:64]


def records(n: int) -> list[dict[str, Any]]:
    """n records of a plausible vault: folders of 200 notes."""
    now = time.time_ns()
    return [
        {
            "path": f"folder-{i // 200:04d}/note {i:06d}.md",
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "blake3": _digest(i),
            "size": 1000 + i % 5000,
            "mtime_ns": now - i * 1_000_000,
            "record_type": "note",
            "classification": "INTERNAL",
        }
        for i in range(n)
    ]


def differing(rows: list[dict[str, Any]], seed: int = 7) -> tuple[list[dict[str, Any]], int]:
    """A copy of rows with ~1% of paths changed: 0.4% edited, 0.2% missing, 0.2%
    renamed, 0.1% with a conflict copy, 0.2% added. Returns (rows, paths changed)."""
    rnd = random.Random(seed)
    out = [dict(r) for r in rows]
    n = len(out)
    picked = rnd.sample(range(n), k=n // 100)
    cut = [len(picked) * p // 10 for p in (0, 4, 6, 8, 9, 10)]
    for i in picked[cut[0] : cut[1]]:  # edited there, later
        out[i]["blake3"] = _digest(i, "e")
        out[i]["mtime_ns"] += 10**9
    for i in picked[cut[2] : cut[3]]:  # renamed there
        out[i]["path"] = out[i]["path"].replace(".md", " (renamed).md")
    for i in picked[cut[3] : cut[4]]:  # a conflict copy there
        extra = dict(out[i])
        extra["path"] = out[i]["path"].replace(".md", ".sync-conflict-20261130-101010-ABCDEFG.md")
        out.append(extra)
    gone = set(picked[cut[1] : cut[2]])  # missing there
    out = [r for i, r in enumerate(out) if i not in gone]
    out += [
        {**rows[0], "path": f"new/{i:06d}.md", "id": f"new-{i}", "blake3": _digest(i, "n")}
        for i in range(n // 500)
    ]  # added there
    return out, len(picked) + n // 500


def manifest(rows: list[dict[str, Any]], node: str, role: str) -> Manifest:
    table = pa.Table.from_pylist(
        [{**r, "key": r["path"]} for r in sorted(rows, key=lambda r: r["path"])], schema=ROW_SCHEMA
    )
    header = ManifestHeader(node, role, "bench", time.time(), 1, None, table.num_rows)
    return Manifest(header, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--full-records", action="store_true", help="3.5 KB records in the store")
    args = parser.parse_args()

    here_rows = records(args.paths)
    there_rows, changed = differing(here_rows)
    here = manifest(here_rows, "laptop", "outpost")
    there = manifest(there_rows, "hq", "headquarters")
    times, findings = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        findings = compare(here, there, stale_after=86400)
        times.append(time.perf_counter() - start)
    kinds: dict[str, int] = {}
    for f in findings:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1

    with tempfile.TemporaryDirectory(prefix="nodes-bench-") as tmp:
        work = Path(tmp)
        vault, data, folder = work / "vault", work / "data", work / "manifests"
        vault.mkdir()
        start = time.perf_counter()
        with open_store(data, backend="redb", vault_root=vault) as store:
            for i in range(0, len(here_rows), 5000):
                batch = here_rows[i : i + 5000]
                if args.full_records:
                    from serialization import sample_record

                    batch = [{**sample_record(i + k), **r} for k, r in enumerate(batch)]
                store.apply([Upsert(r) for r in batch])
        store_s = time.perf_counter() - start
        FolderCarrier(folder).publish(there)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
        env |= {"CCC_WATCH_NODE": "laptop", "CCC_WATCH_MANIFEST_DIR": str(folder),
                "XDG_CONFIG_HOME": str(work / "cfg"), "PYTHONPATH": str(ROOT)}  # fmt: skip
        base = [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault),
                "--data-dir", str(data)]  # fmt: skip

        def timed(*cmd: str) -> tuple[float, subprocess.CompletedProcess[str]]:
            start = time.perf_counter()
            proc = subprocess.run([*base, *cmd], env=env, capture_output=True, text=True)
            return time.perf_counter() - start, proc

        def drift() -> list[float]:
            whole = []
            for _ in range(args.repeat):
                seconds, proc = timed("drift", "--against", "hq", "--json")
                assert proc.returncode == 1, proc.stderr[-2000:]
                assert len(json.loads(proc.stdout)["findings"]) == len(findings)
                whole.append(seconds)
            return whole

        from_store = drift()  # no mirror: the manifest's rows come from the store
        _, proc = timed("mirror")
        assert proc.returncode == 0, proc.stderr[-2000:]
        from_mirror = drift()  # the mirror at the store's head, as a running daemon keeps it
        startup, _ = timed("--version")
        publish, proc = timed("manifest", "publish")
        assert proc.returncode == 0, proc.stderr[-2000:]

    cores, day = os.cpu_count(), time.strftime("%Y-%m-%d")
    print(f"# nodes_bench: {args.paths:,} paths, {changed:,} changed ({platform.node()}, ")
    kind = "3.5 KB" if args.full_records else "small"
    print(f"#   {cores} cores, {day}); store of {kind} records written in {store_s:.1f} s")
    rows = [
        (f"compare() of the two manifests (median of {args.repeat})", statistics.median(times)),
        (
            f"`ccc-watch drift --against hq --json`, mirror current (median of {args.repeat})",
            statistics.median(from_mirror),
        ),
        (
            f"the same, no mirror: rows read from the store (median of {args.repeat})",
            statistics.median(from_store),
        ),
        ("of which Python start-up (`ccc-watch --version`)", startup),
        ("`ccc-watch manifest publish` (for comparison)", publish),
    ]
    print("| what | seconds |")
    print("| --- | ---: |")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.3f} |")
    print("findings: " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
