"""The whole `ccc-watch rebuild` command next to the floor, and what it leaves on disk.

The floor is one plain Python process that only walks the vault, reads each file,
blake3-hashes it and parses the frontmatter of each note with python-frontmatter: what
any indexer must at least do. A second floor does the same with yaml_rs, the YAML
loader ccc-watch uses (faster than python-frontmatter's PyYAML).

The rebuild is the real command, `python -m ccc_watch.cli --vault V --data-dir D
rebuild`, timed from its start to its exit (interpreter start-up, imports, the store
and the mirror included): first into an empty data dir, then again over the store it
made (the usual case: ids are kept, unchanged files are counted). Memory is the peak
of the whole command: the proportional set size (PSS) of the command and its worker
processes summed, sampled every 20 ms, and the largest single process's peak RSS, in
one more pair of runs (sampling costs CPU, so the timed runs are not sampled); those
runs also sample the data dir's bytes (every file under it: old and new store, the
mirror's WAL and working files), the disk the command needs at its peak.
Sizes: the store file and the mirror file(s) after the first rebuild, against the
vault's bytes (every regular file under it).
Last, the fixed cost: the same command on a vault of one note (start-up, imports,
the workers, an empty store and mirror made and swapped in), which every rebuild pays.

    pip install -e '.[bench]'                           # python-frontmatter, for the floor
    python bench/rebuild_bench.py                       # hub corpus and 100,000 notes
    python bench/rebuild_bench.py --sizes 10000 --runs 3
    python bench/rebuild_bench.py --no-hub --sizes 20000

The package's bytecode is compiled first, as pip compiles an installed package's: an
editable install writes it at the first import, unless PYTHONDONTWRITEBYTECODE is set,
and then every run would parse ~19,000 lines of source again (~0.13 s of start-up).

Vaults are built under --work with ../shared/tools/make_vault.py (`build DIR --notes N
--seed 1`) and reused when already there; the hub corpus comes from ../shared/corpus.
--work defaults to /dev/shm/ccc-bench (RAM): a vault on disk with little page cache
measures the disk. The databases go to a temp dir on disk (--data), so the store's
writes and fsyncs are real. Each figure is the median of --runs runs.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from vaults import HUB_ARCHIVE, hub, synthetic

ROOT = Path(__file__).resolve().parents[1]

FLOOR = r"""
import os, sys, time, json
import blake3
if sys.argv[2] == "python-frontmatter":
    import frontmatter
    def parse(data):
        frontmatter.loads(data.decode("utf-8", "replace"))
else:
    import yaml_rs
    def parse(data):
        if data.startswith(b"---\n"):
            end = data.find(b"\n---\n", 4)
            if end > 0:
                yaml_rs.loads(data[4:end].decode("utf-8", "replace"))
t0 = time.perf_counter()
n = 0
for dirpath, dirnames, filenames in os.walk(sys.argv[1]):
    dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    for name in filenames:
        if name.startswith("."):
            continue
        path = os.path.join(dirpath, name)
        if os.path.islink(path):
            continue
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        blake3.blake3(data).hexdigest()
        n += 1
        if name.endswith(".md"):
            try:
                parse(data)
            except Exception:
                pass
print(json.dumps({"files": n, "seconds": time.perf_counter() - t0}))
"""


def floor(vault: Path, parser: str) -> float:
    """Seconds the floor loop takes (measured inside its process, start-up aside)."""
    out = subprocess.run(
        [sys.executable, "-c", FLOOR, str(vault), parser], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    seconds: float = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    return seconds


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(p) for p in text.split()]
    return kids + [g for k in kids for g in _children(k)]


def _kb(pid: int, file: str, field: str) -> int:
    """A `Field:  N kB` line of a /proc/PID file, 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rebuild(vault: Path, data: Path, sample: bool) -> dict[str, float]:
    """Run the whole command once; its wall seconds and, when sampled, the peak PSS of
    its process tree and the peak RSS of its largest process (MB). Sampling reads
    /proc every 20 ms, which costs the command CPU: timed runs are not sampled."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir",
            str(data), "rebuild", "--json"]  # fmt: skip
    peak = [0, 0, 0]  # PSS of the tree, the largest VmHWM (a process's own peak RSS), disk
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = threading.Event()

    def sampler_loop() -> None:
        while not done.wait(0.02):
            pids = [proc.pid, *_children(proc.pid)]
            peak[0] = max(peak[0], sum(_kb(p, "smaps_rollup", "Pss:") for p in pids))
            peak[1] = max(peak[1], *(_kb(p, "status", "VmHWM:") for p in pids))
            peak[2] = max(peak[2], _tree_bytes(data))

    sampler = threading.Thread(target=sampler_loop, daemon=True)
    if sample:
        sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    if sample:
        sampler.join()
    if proc.returncode not in (0, 1):  # 1: some files could not be read (the Bad/ ones)
        raise SystemExit(f"rebuild failed ({proc.returncode}): {err.decode()[-2000:]}")
    report = json.loads(out)
    return {
        "files": report["indexed"],
        "wall": wall,
        "pss_mb": peak[0] / 1024,
        "rss_mb": peak[1] / 1024,
        "disk_mb": peak[2] / 1e6,
    }  # fmt: skip (0 when not sampled)


def _tree_bytes(folder: Path) -> int:
    """The bytes of the files under folder now (files that go meanwhile count 0)."""
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def vault_bytes(vault: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(vault):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.stat(path).st_size
    return total


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="100000", help="synthetic vaults, notes (comma list)")
    ap.add_argument("--no-hub", action="store_true")
    ap.add_argument("--runs", type=int, default=1, help="runs per figure (median)")
    shm = Path("/dev/shm")
    ap.add_argument(
        "--work", type=Path,
        default=shm / "ccc-bench" if shm.is_dir() else Path(tempfile.gettempdir()) / "ccc-bench",
    )  # fmt: skip
    ap.add_argument("--data", type=Path, help="where the databases go (default: a temp dir)")
    args = ap.parse_args()
    if importlib.util.find_spec("frontmatter") is None:
        raise SystemExit(
            "the floor needs python-frontmatter: pip install -e '.[bench]' (then run again)"
        )
    args.work.mkdir(parents=True, exist_ok=True)
    data_root = args.data or Path(tempfile.mkdtemp(prefix="ccc-bench-data-"))
    vaults: list[tuple[str, Path]] = []
    if not args.no_hub:
        found = hub(args.work)
        if found is None:
            raise SystemExit(
                f"the hub corpus is not at {HUB_ARCHIVE}: set CCC_WATCH_SHARED, or --no-hub"
            )
        vaults.append(("hub corpus", found))
    for size in [int(s) for s in args.sizes.split(",") if s]:
        vaults.append((f"synthetic {size:,}", synthetic(args.work, size)))

    compiled = compileall.compile_dir(ROOT / "ccc_watch", quiet=1)
    print(f"command:  {' '.join(sys.argv)}")
    print(f"python:   {platform.python_version()}  cpus: {os.cpu_count()}  "
          f"platform: {platform.platform()}")  # fmt: skip
    print(f"bytecode: {'compiled' if compiled else 'NOT all compiled'} "
          "(python -m compileall ccc_watch), as in an installed package")  # fmt: skip
    print(f"vaults in {args.work} (warm page cache), databases in {data_root}; "
          f"median of {args.runs} run(s)")  # fmt: skip
    times = []
    sizes = []
    for name, vault in vaults:
        floor(vault, "yaml_rs")  # warm the page cache
        pf = statistics.median(floor(vault, "python-frontmatter") for _ in range(args.runs))
        yf = statistics.median(floor(vault, "yaml_rs") for _ in range(args.runs))
        fresh: list[dict[str, float]] = []
        again: list[dict[str, float]] = []
        memory: list[dict[str, float]] = []
        data = data_root / f"data-{vault.name}"
        for run in range(args.runs + 1):  # the last pair only for memory
            sample = run == args.runs
            shutil.rmtree(data, ignore_errors=True)
            (memory if sample else fresh).append(rebuild(vault, data, sample))
            store = (data / "index.redb").stat().st_size  # sizes after a fresh rebuild
            mirror = sum(p.stat().st_size for p in data.glob("mirror.duckdb*") if p.is_file())
            (memory if sample else again).append(rebuild(vault, data, sample))
        vbytes = vault_bytes(vault)

        def med(runs: list[dict[str, float]], key: str) -> float:
            return statistics.median(r[key] for r in runs)

        times.append((name, fresh[0]["files"], pf, yf, med(fresh, "wall"), med(again, "wall"),
                      max(r["pss_mb"] for r in memory),
                      max(r["rss_mb"] for r in memory),
                      max(r["disk_mb"] for r in memory)))  # fmt: skip
        sizes.append((name, vbytes, store, mirror))
    print()
    head = (
        f"{'vault':<18} {'files':>8} {'floor s':>8} {'yaml_rs':>8} {'rebuild s':>10} "
        f"{'ratio':>6} {'again s':>8} {'ratio':>6} {'peak PSS':>9} {'peak RSS':>9} "
        f"{'peak disk':>10}"
    )
    print(head)
    print("-" * len(head))
    for name, files, pf, yf, first, second, pss, rss, disk in times:
        print(f"{name:<18} {files:>8,.0f} {pf:>8.2f} {yf:>8.2f} {first:>10.2f} "
              f"{first / pf:>5.1f}x {second:>8.2f} {second / pf:>5.1f}x "
              f"{pss:>6.0f} MB {rss:>6.0f} MB {disk:>7.0f} MB")  # fmt: skip
    print()
    head = f"{'vault':<18} {'vault':>10} {'store':>10} {'mirror':>10} {'(store+mirror)/vault':>21}"
    print(head)
    print("-" * len(head))
    for name, vbytes, sbytes, mbytes in sizes:
        print(f"{name:<18} {mb(vbytes):>10} {mb(sbytes):>10} {mb(mbytes):>10} "
              f"{(sbytes + mbytes) / vbytes:>20.2f}x")  # fmt: skip
    print(
        "\nratio: rebuild wall seconds / the python-frontmatter floor's; 'again': a rebuild "
        "over the store the first one made"
    )
    # What every rebuild pays whatever the vault's size: start-up, imports, workers,
    # an empty store and mirror made and swapped in.
    one = args.work / "one-note"
    one.mkdir(exist_ok=True)
    (one / "note.md").write_text("# One\n\nA note.\n", encoding="utf-8")
    fixed = []
    for _ in range(max(args.runs, 3)):
        shutil.rmtree(data_root / "data-one-note", ignore_errors=True)
        fixed.append(rebuild(one, data_root / "data-one-note", False)["wall"])
    print(f"fixed cost: a rebuild of a one-note vault takes {statistics.median(fixed):.2f} s "
          f"(median of {len(fixed)}; {min(fixed):.2f}-{max(fixed):.2f} s)")  # fmt: skip
    if args.data is None:
        shutil.rmtree(data_root, ignore_errors=True)


if __name__ == "__main__":
    main()
