"""Save -> a following consumer sees the operation: how long `ccc-watch events --follow`
takes to print an edit, beyond the daemon's settle window.

    python bench/feed_bench.py                # 1,000-note vault, 200 saves
    python bench/feed_bench.py --notes 10000 --saves 500

A real daemon (`ccc-watch run`, default settings but the settle window, printed) indexes
a synthetic vault; a real consumer process follows the feed as JSON lines. Each round
appends a line to a random note and waits for the consumer's line naming it; the time
from the write to that line, less the settle window, is the figure. Rounds are spaced
past the settle window so that each save is its own batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=1000)
    parser.add_argument("--saves", type=int, default=200)
    parser.add_argument("--settle", type=float, default=0.2, help="the daemon's settle window")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="feed-bench-") as tmp:
        work = Path(tmp)
        vault, data = work / "vault", work / "data"
        for i in range(args.notes):
            folder = vault / f"f{i // 100:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"n{i:05d}.md").write_text(f"# note {i}\n\nsome text [[n{i + 1:05d}]]\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
        env |= {"XDG_CONFIG_HOME": str(work / "cfg"), "XDG_STATE_HOME": str(work / "state"),
                "PYTHONPATH": str(ROOT)}  # fmt: skip
        base = [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault),
                "--data-dir", str(data)]  # fmt: skip
        subprocess.run([*base, "rebuild"], env=env, check=True, capture_output=True)
        daemon = subprocess.Popen([*base, "run", "--settle", str(args.settle)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        follower = subprocess.Popen([*base, "events", "--follow", "--json", "--since",
                                     str(args.notes)], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
        assert follower.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(follower.stdout, selectors.EVENT_READ)
        pending = b""

        def line_for(path: str, deadline: float) -> float | None:
            nonlocal pending
            while time.monotonic() < deadline:
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    if json.loads(raw)["path"] == path:
                        return time.monotonic()
                if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    chunk = os.read(follower.stdout.fileno(), 65536)  # type: ignore[union-attr]
                    if not chunk:
                        return None
                    pending += chunk
            return None

        try:
            time.sleep(2.0)  # the daemon's start-up reconcile, the follower's first read
            rnd = random.Random(1)
            seen: list[float] = []
            lost = 0
            for k in range(args.saves):
                i = rnd.randrange(args.notes)
                rel = f"f{i // 100:03d}/n{i:05d}.md"
                start = time.monotonic()
                with (vault / rel).open("a") as f:
                    f.write(f"edit {k}\n")
                got = line_for(rel, start + 10)
                if got is None:
                    lost += 1
                else:
                    seen.append(got - start)
                time.sleep(args.settle + 0.05 + rnd.random() * 0.1)
        finally:
            follower.terminate()
            daemon.terminate()
            follower.wait(10)
            daemon.wait(10)

    seen.sort()
    p50 = statistics.median(seen)
    p99 = seen[min(len(seen) - 1, int(len(seen) * 0.99))]
    print(f"# feed_bench: {args.notes:,} notes, {args.saves} saves, settle {args.settle} s "
          f"({platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})")  # fmt: skip
    print("| what | p50 | p99 | max |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| save -> follower's line | {p50 * 1000:.0f} ms | {p99 * 1000:.0f} ms | "
          f"{seen[-1] * 1000:.0f} ms |")  # fmt: skip
    beyond = [(t - args.settle) * 1000 for t in (p50, p99, seen[-1])]
    print(
        "| the same, beyond the settle window | {:.0f} ms | {:.0f} ms | {:.0f} ms |".format(*beyond)
    )
    p90 = seen[int(len(seen) * 0.9)]
    print(f"p90 {p90 * 1000:.0f} ms; over 1 s: {sum(t > 1 for t in seen)} of {len(seen)}")
    print(f"saves never seen within 10 s: {lost}")


if __name__ == "__main__":
    main()
