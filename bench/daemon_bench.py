"""The daemon's latencies and idle cost, measured against a real `ccc-watch run`.

    python bench/daemon_bench.py [--notes 10000] [--edits 100] [--idle 60]

1. save-to-store latency: time from a note's write until the store holds its new
   blake3 (polled read-only every 2 ms), p50 and p99 over --edits single edits;
2. save-to-mirror latency: the same until the mirror's notes row has it (polled every
   50 ms: a reader holding the DuckDB file delays the flush it waits for);
3. burst: 10,000 files written as fast as possible, time from the last write until
   `verify` is clean;
4. idle: CPU % of the daemon and its children, and RSS of the daemon alone and with
   its children (the mirror flusher lives until 30 s without a store change) over
   --idle seconds on a --notes vault;
5. start-up reconcile on the vault, and on the real hub vault (../shared/corpus), with
   nothing changed and with 100 notes edited while stopped: the reconcile itself (the
   daemon's log line) and process start until it is done (imports included).
Vaults go to /dev/shm when it exists (see bench/rebuild_bench.py for why).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from ccc_watch.mirror.mirror import Mirror, MirrorError
from ccc_watch.store import open_store

SHARED = Path(os.environ.get("CCC_WATCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, round(q * (len(values) - 1)))]


class Run:
    def __init__(self, vault: Path, data: Path, log: Path) -> None:
        self.vault, self.data, self.log = vault, data, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the daemon; seconds until its start-up reconcile was done."""
        started = time.perf_counter()
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccc_watch.cli",
                "--vault",
                str(self.vault),
                "--data-dir",
                str(self.data),
                "run",
            ],
            stdout=out,
            stderr=out,
        )
        deadline = time.monotonic() + 120
        before = self.log.read_text().count("reconciled ")
        while self.log.read_text().count("reconciled ") == before:
            if time.monotonic() > deadline:
                raise SystemExit("daemon did not start")
            time.sleep(0.005)
        return time.perf_counter() - started

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def store_has(data: Path, key: str, digest: str) -> bool:
    with open_store(data, readonly=True) as store:
        rec = store.get(key)
    return rec is not None and rec.get("blake3") == digest


def mirror_has(data: Path, key: str, digest: str) -> bool:
    try:
        with Mirror(data).connect(retry_seconds=0.5) as con:
            rows = con.execute("SELECT blake3 FROM notes WHERE path = ?", [key]).fetchall()
    except MirrorError:
        return False
    return rows == [(digest,)]


def wait(check: Callable[[], bool], timeout: float = 30, every: float = 0.002) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise SystemExit("timed out")
        time.sleep(every)
    return time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU of pid and of its reaped children (cutime/cstime) and live children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    live = 0.0
    for c in children(pid):
        try:
            live += cpu_seconds(c)
        except OSError:
            continue
    return own + live


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--burst", type=int, default=10_000)
    ap.add_argument("--hub", action="store_true", help="also time start-up on the hub vault")
    args = ap.parse_args()
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="ccc-daemon-bench-", dir=shm if shm.is_dir() else None))
    vault, data, log = root / "vault", Path(tempfile.mkdtemp()) / "data", root / "daemon.log"
    subprocess.run(
        [
            sys.executable,
            str(SHARED / "tools" / "make_vault.py"),
            "build",
            str(vault),
            "--notes",
            str(args.notes),
        ],
        check=True,
        capture_output=True,
    )
    print(f"command:  {' '.join(sys.argv)}")
    print(
        f"python:   {platform.python_version()}  cpus: {os.cpu_count()}  "
        f"vault: {args.notes:,} notes in {root}"
    )
    run = Run(vault, data, log)
    run.start()
    assert run.proc is not None
    rows: list[tuple[str, str]] = []

    store_lat, mirror_lat = [], []
    for i in range(args.edits):
        note = vault / "Projects" / f"bench-{i % 10}.md"
        body = f"# edit {i}\n[[Note 00001]] #bench\n".encode()
        digest = blake3.blake3(body).hexdigest()
        key = note.relative_to(vault).as_posix()
        note.write_bytes(body)
        t0 = time.perf_counter()
        store_lat.append(wait(lambda k=key, d=digest: store_has(data, k, d)))
        mirror_lat.append(
            time.perf_counter()
            - t0
            + wait(lambda k=key, d=digest: mirror_has(data, k, d), every=0.05)
        )
    rows.append(
        (
            "save -> store, p50 / p99 (settle 0.2 s included)",
            f"{p(store_lat, 0.5) * 1000:.0f} ms / {p(store_lat, 0.99) * 1000:.0f} ms",
        )
    )
    rows.append(
        (
            "save -> mirror, p50 / p99",
            f"{p(mirror_lat, 0.5) * 1000:.0f} ms / {p(mirror_lat, 0.99) * 1000:.0f} ms",
        )
    )

    time.sleep(2)
    cpu0, t0 = tree_cpu_seconds(run.proc.pid), time.monotonic()
    own, tree = [], []
    while time.monotonic() - t0 < args.idle:
        own.append(rss_mb(run.proc.pid))
        tree.append(own[-1] + sum(rss_mb(c) for c in children(run.proc.pid)))
        time.sleep(1)
    idle_cpu = (tree_cpu_seconds(run.proc.pid) - cpu0) / (time.monotonic() - t0) * 100
    rows.append((f"idle over {args.idle:.0f} s: CPU (daemon and children)", f"{idle_cpu:.2f} %"))
    rows.append(
        (
            "idle RSS: daemon max / with children max / with children at the end",
            f"{max(own):.0f} MB / {max(tree):.0f} MB / {tree[-1]:.0f} MB",
        )
    )

    burst = vault / "Burst"
    burst.mkdir()
    for i in range(args.burst):
        (burst / f"b{i:05d}.md").write_text(f"burst {i} #b\n")
    last_write = time.perf_counter()
    verify = [
        sys.executable,
        "-m",
        "ccc_watch.cli",
        "--vault",
        str(vault),
        "--data-dir",
        str(data),
        "verify",
    ]
    while subprocess.run(verify, capture_output=True).returncode != 0:
        if time.perf_counter() - last_write > 300:
            raise SystemExit("burst never came clean")
    rows.append(
        (
            f"burst of {args.burst:,} files: last write -> verify clean",
            f"{time.perf_counter() - last_write:.1f} s",
        )
    )

    run.stop()
    rows += startup_rows(run, vault, "Research", f"{args.notes:,}-note vault")
    if args.hub:
        archive = SHARED / "corpus" / "obsidian-hub.tar.gz"
        hub = root / "hub"
        with tarfile.open(archive) as tar:
            tar.extractall(hub, filter="data")
        top = hub
        hub_run = Run(top, root / "hub-data", root / "hub.log")
        hub_run.start()  # the first index
        hub_run.stop()
        folder = max(
            (d for d in top.rglob("*") if d.is_dir() and ".git" not in d.parts),
            key=lambda d: len(list(d.glob("*.md"))),
        )
        rows += startup_rows(hub_run, top, str(folder.relative_to(top)), "hub vault")

    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(data.parent, ignore_errors=True)
    print(
        f"(median save->store over {len(store_lat)} edits: "
        f"{statistics.median(store_lat) * 1000:.0f} ms)"
    )


def startup_rows(run: Run, vault: Path, folder: str, what: str) -> list[tuple[str, str]]:
    """Start-up reconcile with nothing changed, then with 100 notes of folder edited."""
    rows = []
    took = run.start()
    rows.append(
        (
            f"start-up reconcile, {what}, nothing changed",
            f"{_last_reconcile(run.log)}; process start -> done {took:.2f} s",
        )
    )
    run.stop()
    notes = sorted((vault / folder).glob("*.md"))[:100]
    for i, note in enumerate(notes):
        note.write_text(note.read_text() + f"\nedited while stopped {i}\n")
    took = run.start()
    rows.append(
        (
            f"start-up reconcile, {what}, {len(notes)} notes edited while stopped",
            f"{_last_reconcile(run.log)}; process start -> done {took:.2f} s",
        )
    )
    run.stop()
    return rows


def _last_reconcile(log: Path) -> str:
    found = re.findall(r"reconciled (\d+) files in ([\d.]+) s", log.read_text())
    files, seconds = found[-1]
    return f"{float(seconds):.2f} s ({int(files):,} files)"


if __name__ == "__main__":
    main()
