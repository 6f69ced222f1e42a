"""What a backup costs: `ccc-watch backup`, plain and encrypted, of a synthetic vault
(100,000 notes by default), with `backup --verify` and `restore` for comparison.

    python bench/backup_bench.py                  # 100,000 notes
    python bench/backup_bench.py --notes 10000
    python bench/backup_bench.py --vault DIR      # an existing vault instead

The vault is built under --work (default /dev/shm/ccc-bench, RAM: the machines this
project runs on keep little page cache, so a vault on disk would measure the disk)
with ../shared/tools/make_vault.py when present, else tests/vaultgen.py, and reused
when already there. The data dir and the archives go to a temp folder on disk
(--data), so their writes and fsyncs are real. Each command runs as a real
`ccc-watch` process; the figures are wall-clock seconds of that process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CCC_WATCH_SHARED", ROOT.parent / "shared"))


def build_vault(work: Path, notes: int) -> Path:
    """A synthetic vault of `notes` notes under work, built once and reused."""
    vault = work / f"synthetic-{notes}"
    if vault.is_dir():
        return vault
    work.mkdir(parents=True, exist_ok=True)
    tool = SHARED / "tools" / "make_vault.py"
    if not tool.exists():
        tool = ROOT / "tests" / "vaultgen.py"
    subprocess.run(
        [sys.executable, str(tool), "build", str(vault), "--notes", str(notes)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return vault


def ccc(env: dict[str, str], vault: Path, data: Path, *args: str) -> tuple[float, str]:
    """Run one command; (seconds, stdout). Exits the bench when it fails."""
    started = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir", str(data),
         *args],
        capture_output=True, text=True, env=env)  # fmt: skip
    seconds = time.perf_counter() - started
    if r.returncode != 0:
        sys.exit(f"`{' '.join(args)}` failed ({r.returncode}): {r.stderr[-2000:]}")
    return seconds, r.stdout


def main() -> None:
    """Build, rebuild, then time each command and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=100_000)
    ap.add_argument("--vault", type=Path, help="an existing vault (no build)")
    shm = Path("/dev/shm")
    ap.add_argument("--work", type=Path, default=shm / "ccc-bench" if shm.is_dir() else None)
    ap.add_argument("--data", type=Path, help="folder on disk for the data dir and archives")
    args = ap.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / "ccc-bench"
    vault = args.vault or build_vault(work, args.notes)
    root = args.data or Path(tempfile.mkdtemp(prefix="ccc-bench-backup-"))
    data, dest = root / "data", root / "backups"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"  # the key file only
    env["XDG_STATE_HOME"] = str(root / "state")
    key = root / "bench.key"
    try:
        ccc(env, vault, data, "key", "new", str(key))
        rebuild_s, _ = ccc(env, vault, data, "rebuild")
        rows = []
        for label, extra in (("plain", ()), ("encrypted", ("--encrypt",))):
            seconds, out = ccc(
                env, vault, data, "backup", str(dest), "--json", "--key-file", str(key), *extra
            )
            report = json.loads(out)
            archive = Path(report["archive"])
            verify_s, _ = ccc(env, vault, data, "backup", "--verify", str(archive),
                              "--key-file", str(key))  # fmt: skip
            fresh = root / f"restored-{label}"
            restore_s, _ = ccc(env, vault, fresh, "restore", str(archive), "--key-file", str(key))
            rows.append((label, report["records"], archive.stat().st_size, seconds,
                         report["phases"], verify_s, restore_s))  # fmt: skip
            shutil.rmtree(fresh, ignore_errors=True)
        store = next(data.glob("index.*"))
        mirror = data / "mirror.duckdb"
        print(f"vault: {vault} ({rows[0][1]:,} records), {platform.machine()}, "
              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")  # fmt: skip
        print(f"rebuild {rebuild_s:.1f} s; store {store.stat().st_size / 2**20:.0f} MiB, "
              f"mirror {mirror.stat().st_size / 2**20:.0f} MiB")  # fmt: skip
        print()
        print("| archive | size | backup | of which | backup --verify | restore (+ reconcile) |")
        print("| --- | ---: | ---: | --- | ---: | ---: |")
        for label, _, size, seconds, phases, verify_s, restore_s in rows:
            print(f"| {label} | {size / 2**20:.0f} MiB | {seconds:.1f} s | {phases} | "
                  f"{verify_s:.1f} s | {restore_s:.1f} s |")  # fmt: skip
    finally:
        if args.data is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
