"""Rebuild wall time and peak memory, next to the floor.

The floor is a plain loop over the same files that only reads, blake3-hashes and
parses the frontmatter: what any indexer must at least do. It parses with yaml_rs,
the loader ccc-watch uses; the PyYAML column shows the same loop with PyYAML's
CSafeLoader, the usual choice.
Each measurement runs in a fresh process, so its peak RSS is its own.

    python bench/rebuild_bench.py                      # hub corpus, 10k and 100k notes
    python bench/rebuild_bench.py --sizes 10000        # synthetic sizes to build
    python bench/rebuild_bench.py --no-hub --backend sqlite

Vaults are built under --work with ../shared/tools/make_vault.py and reused when
already there; the hub corpus comes from ../shared/corpus. --work defaults to
/dev/shm/ccc-bench (RAM): the machines this project runs on keep only ~200 MB of page
cache, so a 400 MB vault on disk measures the disk, not ccc-watch. The databases go
to a temp dir on disk (--data), so the store's writes and fsyncs are real.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("CCC_WATCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))

FLOOR = r"""
import os, sys, time, json, resource
from pathlib import Path
import blake3, yaml, yaml_rs
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
if sys.argv[2] == "pyyaml":
    def load(text):
        return yaml.load(text, Loader=Loader)
else:
    load = yaml_rs.loads
vault = Path(sys.argv[1])
t0 = time.perf_counter()
n = 0
for dirpath, dirnames, filenames in os.walk(vault):
    dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    for name in filenames:
        if name.startswith("."):
            continue
        path = os.path.join(dirpath, name)
        if os.path.islink(path):
            continue
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        blake3.blake3(data).hexdigest()
        n += 1
        if name.endswith(".md") and data.startswith(b"---\n"):
            end = data.find(b"\n---\n", 4)
            if end > 0:
                try:
                    load(data[4:end].decode("utf-8", "replace"))
                except Exception:
                    pass
print(json.dumps({"files": n, "seconds": time.perf_counter() - t0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

REBUILD = r"""
import sys, json, resource
from pathlib import Path
from ccc_watch.changes.rebuild import rebuild
r = rebuild(Path(sys.argv[1]), Path(sys.argv[2]), backend=sys.argv[3])
print(json.dumps({"files": r.indexed, "seconds": r.seconds,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def synthetic(work: Path, notes: int) -> Path:
    vault = work / f"vault-{notes}"
    if not (vault / ".obsidian").exists():
        subprocess.run(
            [
                sys.executable,
                str(SHARED / "tools" / "make_vault.py"),
                "build",
                str(vault),
                "--notes",
                str(notes),
                "--seed",
                "1",
            ],
            check=True,
            capture_output=True,
        )
    return vault


def hub(work: Path) -> Path:
    vault = work / "hub"
    if not vault.exists():
        with tarfile.open(SHARED / "corpus" / "obsidian-hub.tar.gz") as tar:
            tar.extractall(vault, filter="data")
    return vault


def drop_caches_hint() -> str:
    return "warm page cache (each vault is read once before timing)"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--no-hub", action="store_true")
    ap.add_argument("--backend", default="redb")
    shm = Path("/dev/shm")
    ap.add_argument(
        "--work",
        type=Path,
        default=shm / "ccc-bench" if shm.is_dir() else Path(tempfile.gettempdir()),
    )
    ap.add_argument("--data", type=Path, help="where the databases go (default: a temp dir)")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    data_root = args.data or Path(tempfile.mkdtemp(prefix="ccc-bench-data-"))
    vaults: list[tuple[str, Path]] = []
    if not args.no_hub:
        vaults.append(("hub corpus", hub(work)))
    for size in [int(s) for s in args.sizes.split(",") if s]:
        vaults.append((f"synthetic {size:,}", synthetic(work, size)))

    print(f"command:  {' '.join(sys.argv)}")
    print(
        f"python:   {platform.python_version()}  cpus: {os.cpu_count()}  "
        f"platform: {platform.platform()}"
    )
    print(
        f"backend:  {args.backend}; vaults in {work}, databases in {data_root}; "
        f"{drop_caches_hint()}"
    )
    print()
    head = (
        f"{'vault':<18} {'files':>8} {'PyYAML s':>9} {'floor s':>8} {'rebuild s':>10} {'ratio':>6} "
        f"{'files/s':>9} {'floor MB':>9} {'peak MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for name, vault in vaults:
        run(FLOOR, str(vault), "yaml_rs")  # warm the page cache
        floor = run(FLOOR, str(vault), "yaml_rs")
        pyyaml = run(FLOOR, str(vault), "pyyaml")
        data = data_root / f"data-{vault.name}"
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.perf_counter()
        rb = run(REBUILD, str(vault), str(data), args.backend)
        wall = time.perf_counter() - t0
        print(
            f"{name:<18} {rb['files']:>8,.0f} {pyyaml['seconds']:>9.2f} "
            f"{floor['seconds']:>8.2f} {rb['seconds']:>10.2f} "
            f"{rb['seconds'] / floor['seconds']:>6.2f} {rb['files'] / rb['seconds']:>9,.0f} "
            f"{floor['peak_mb']:>9.0f} {rb['peak_mb']:>8.0f}   (process wall {wall:.1f} s)"
        )
    if args.data is None:
        shutil.rmtree(data_root, ignore_errors=True)


if __name__ == "__main__":
    main()
