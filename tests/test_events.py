"""The change feed (`ccc-watch events`): a real consumer process follows it while a real
daemon indexes churn (edits, creates, deletes, renames, a folder move), across a daemon
restart and a `rebuild`; applying what it read to a dict, it ends equal to `dump`. A
consumer that resumes from its cursor misses nothing and sees nothing twice; a cursor
into pruned or replaced history is refused with exit 3."""

from __future__ import annotations

import json
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from ccc_watch.api import Change, open_index
from tests.conftest import cli
from tests.daemon_harness import Daemon, wait_until

State = dict[str, tuple[str | None, str | None]]


def apply(state: State, event: dict[str, Any]) -> None:
    """What a consumer does with one event: keep path -> (id, blake3)."""
    if event["op"] == "delete":
        state.pop(event["path"], None)
        return
    if event["op"] == "move":
        state.pop(event["prev_path"], None)
    state[event["path"]] = (event["id"], event["blake3_after"])


def dumped(d: Daemon) -> State:
    out = d.cli("dump")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    return {r["path"]: (r["id"], r.get("blake3")) for r in records}


class Follower:
    """`ccc-watch events --follow --json` in its own process, its lines read by a thread."""

    def __init__(self, d: Daemon, *since: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccc_watch.cli", "--vault", str(d.vault), "--data-dir",
             str(d.data), "events", "--follow", "--json", *since],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=d.env)  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()

    def _pump(self, out: IO[str] | None) -> None:
        assert out is not None
        for line in out:
            self.lines.put(line)

    def drain(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.events.append(json.loads(self.lines.get_nowait()))
            except queue.Empty:
                return self.events

    def caught_up(self, head: int, timeout: float = 20) -> None:
        def done() -> bool:
            got = self.drain()
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            return bool(got) and int(got[-1]["seq"]) >= head

        wait_until(done, f"the follower reached seq {head}", timeout)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=15)
        assert self.proc.returncode == 0, err
        self.drain()
        return err


def head(d: Daemon) -> int:
    return int(json.loads(d.cli("info", "--json").stdout)["changelog_head"])


def churn(vault: Path, rnd: random.Random, ops: int) -> None:
    """Edits, creates, deletes and renames among vault/n*.md and vault/dir*/."""
    for _ in range(ops):
        notes = sorted(vault.rglob("*.md"))
        pick = rnd.choice(notes) if notes else None
        roll = rnd.random()
        if pick is None or roll < 0.35:
            folder = vault / rnd.choice(["", "dir1", "dir2"])
            folder.mkdir(exist_ok=True)
            (folder / f"n{rnd.randrange(10**6)}.md").write_text(f"new {rnd.random()}\n")
        elif roll < 0.65:
            with pick.open("a") as f:
                f.write(f"edit {rnd.random()}\n")
        elif roll < 0.8:
            pick.unlink()
        else:
            pick.rename(pick.with_name(f"r{rnd.randrange(10**6)}.md"))
        time.sleep(rnd.choice([0, 0, 0.01, 0.05]))


def test_a_follower_ends_equal_to_dump_across_restart_and_rebuild(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One follower through churn, a folder move, a daemon restart and a rebuild; a
    second consumer that stops half-way and resumes from its last cursor; both end
    equal to `dump`, with every sequence number seen once, in order; the library's
    iterator, following in this process all along, yields the same operations."""
    vault = tmp_path / "vault"
    (vault / "dir1").mkdir(parents=True)
    for i in range(20):
        (vault / ("dir1" if i % 2 else "") / f"n{i}.md").write_text(f"note {i}\n")
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.env = env
    d.start()
    rnd = random.Random(7)
    follower: Follower | None = None
    stop = threading.Event()
    library: list[Change] = []
    reader: threading.Thread | None = None
    try:
        d.settle()
        follower = Follower(d)
        # The same feed through the library's iterator, in this process.
        monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
        index = open_index(vault, data_dir=d.data)
        reader = threading.Thread(
            target=lambda: library.extend(index.events(follow=True, stop=stop)), daemon=True
        )
        reader.start()
        churn(vault, rnd, 60)
        (vault / "dir1").rename(vault / "moved")  # a folder move: one move per note
        d.settle()
        follower.caught_up(head(d))
        half = Follower(d)  # a second consumer, stopped half-way through the history
        half.caught_up(head(d))
        half.stop()
        cursor = half.events[-1]["cursor"]

        assert d.stop() == 0  # a daemon restart, with changes made while it was down
        churn(vault, rnd, 20)
        d.start()
        d.settle()
        churn(vault, rnd, 20)
        d.settle()
        follower.caught_up(head(d))

        assert d.stop() == 0  # a rebuild swaps the store file under the follower
        with (vault / "moved" / "after-rebuild.md").open("w") as f:
            f.write("written before the rebuild\n")
        rebuilt = cli(env, vault, d.data, "rebuild")
        assert rebuilt.returncode == 0, rebuilt.stderr
        d.start()
        d.settle()
        churn(vault, rnd, 30)
        d.settle()
        follower.caught_up(head(d))
        final = dumped(d)
        wait_until(lambda: bool(library) and library[-1].seq >= head(d), "the library caught up")
    finally:
        stop.set()
        if reader is not None:
            reader.join(timeout=15)
        err = follower.stop() if follower is not None else ""
        if d.proc is not None:
            d.stop()

    state: State = {}
    for event in follower.events:
        apply(state, event)
    assert state == final
    seqs = [int(e["seq"]) for e in follower.events]
    assert seqs == sorted(set(seqs)), "an event seen twice, or out of order"
    assert {e["op"] for e in follower.events} == {"upsert", "delete", "move"}
    assert any(e["cause"] == "rebuild" for e in follower.events)
    assert "Traceback" not in err
    assert [vars(c) for c in library] == [
        {k: v for k, v in e.items() if k != "cursor"} for e in follower.events
    ]

    # The second consumer resumes from its cursor: only what came after, once each.
    resumed = cli(env, vault, d.data, "events", "--json", "--since", cursor)
    assert resumed.returncode == 0, resumed.stderr
    later = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert [e["seq"] for e in half.events + later] == seqs
    state2: State = {}
    for event in half.events + later:
        apply(state2, event)
    assert state2 == final


def test_a_cursor_into_replaced_or_pruned_history_is_refused(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Exit 3 and one line saying to resync: a cursor past the store's history (an
    older store put back), a cursor whose entry has another hash, and a cursor older
    than the pruned part; --since TIME from before the pruning likewise. A good cursor
    and a time after the pruning answer."""
    vault = tmp_path / "vault"
    vault.mkdir()
    for i in range(5):
        (vault / f"n{i}.md").write_text(f"note {i}\n")
    data = tmp_path / "data"
    assert cli(env, vault, data, "rebuild").returncode == 0
    backup = tmp_path / "old-data"
    shutil.copytree(data, backup)
    events = cli(env, vault, data, "events", "--json")
    seen = [json.loads(line) for line in events.stdout.splitlines()]
    assert [e["seq"] for e in seen] == [1, 2, 3, 4, 5]
    for i in range(5, 8):
        (vault / f"n{i}.md").write_text(f"note {i}\n")
    assert cli(env, vault, data, "scan").returncode == 0
    last = cli(env, vault, data, "events", "--json", "--since", seen[-1]["cursor"])
    assert [json.loads(line)["path"] for line in last.stdout.splitlines()] == [
        "n5.md", "n6.md", "n7.md"
    ]  # fmt: skip
    newest = json.loads(last.stdout.splitlines()[-1])["cursor"]

    def refused(*args: str, where: Path = data) -> str:
        got = cli(env, vault, where, "events", *args)
        assert got.returncode == 3, (got.returncode, got.stderr)
        assert got.stdout == "" and "Traceback" not in got.stderr
        assert len(got.stderr.strip().splitlines()) == 1, got.stderr
        assert "ccc-watch dump" in got.stderr
        return got.stderr

    # The older store put back: it ends before the newest cursor ...
    assert "ends at seq 5" in refused("--since", newest, where=backup)
    # ... and then moves on with other changes: same seq, another hash.
    (vault / "other.md").write_text("made only in the old store's future\n")
    assert cli(env, vault, backup, "scan").returncode == 0
    assert "not the one the cursor" in refused("--since", newest, where=backup)
    # The good cursor in the current store: nothing after it yet.
    fine = cli(env, vault, data, "events", "--since", newest)
    assert fine.returncode == 0 and fine.stdout == "", fine.stderr

    time.sleep(1.1)
    cut = time.time()
    (vault / "n0.md").write_text("edited after the cut\n")
    assert cli(env, vault, data, "scan").returncode == 0
    pruned = cli(env, vault, data, "audit", "prune", "--keep-days", "0", "--keep-entries", "2")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned" in refused("--since", seen[-1]["cursor"])
    assert "pruned" in refused("--since", "2000-01-01")  # before the cut: partly pruned
    recent = cli(env, vault, data, "events", "--json", "--since", str(cut))
    assert recent.returncode == 2  # a bare float is no time (ISO or an age)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(cut))
    recent = cli(env, vault, data, "events", "--json", "--since", since)
    assert recent.returncode == 0, recent.stderr
    got = sorted(json.loads(line)["path"] for line in recent.stdout.splitlines())
    assert got == ["n0.md", "other.md"]  # other.md: written for the old store's scan
