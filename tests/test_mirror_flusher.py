"""The daemon's mirror flusher and its child process, on a real store and mirror: the
policy the child gets as a JSON document, and stopping in a hurry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from records import make_record

from ccc_watch.index.policy import IndexPolicy, TypeRule, policy_from_json, policy_json
from ccc_watch.mirror.flusher import TERM_GRACE, MirrorFlusher
from ccc_watch.mirror.mirror import Mirror, mirror_rows
from ccc_watch.store import Store, Upsert, open_store

CUSTOM = IndexPolicy(
    max_note_bytes=1234,
    default_classification="SECRET",
    private_classifications=frozenset({"INTERNAL", "CONFIDENTIAL", "SECRET"}),
    type_rules=(
        TypeRule("Log", path_pattern=r"^journal/", marker="when"),
        TypeRule("StructuredData", extensions=frozenset({".csv", ".json"})),
    ),
    fallback_type="Index",
)


def wait_until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A writable redb store in tmp_path/data holding one PUBLIC and one INTERNAL note."""
    vault = tmp_path / "vault"
    vault.mkdir()
    store = open_store(tmp_path / "data", vault_root=vault)
    store.apply([
        Upsert(make_record(1, classification="PUBLIC")),
        Upsert(make_record(2, classification="INTERNAL")),
    ])  # fmt: skip
    yield store
    store.close()


def test_the_policy_reaches_the_child_as_plain_json_unchanged() -> None:
    """policy_json writes plain JSON values, and policy_from_json gives back an equal
    policy, the default one and one that differs from it in every field."""
    for policy in (IndexPolicy(), CUSTOM):
        doc = json.loads(policy_json(policy))
        assert doc["max_note_bytes"] == policy.max_note_bytes
        assert policy_from_json(policy_json(policy)) == policy


def _edited(edit: Callable[[dict[str, Any]], None]) -> str:
    doc = json.loads(policy_json(IndexPolicy()))
    edit(doc)
    return json.dumps(doc)


MALFORMED = [
    ("{", "the policy is not JSON"),
    ("[]", "the policy must be a JSON object, not \\[\\]"),
    (_edited(lambda d: d.pop("fallback_type")), "missing keys \\['fallback_type'\\]$"),
    (_edited(lambda d: d.update(body="x")), "unknown keys \\['body'\\]$"),
    (_edited(lambda d: d.update(max_note_bytes="8")), "max_note_bytes must be a JSON integer"),
    (_edited(lambda d: d.update(max_note_bytes=True)), "max_note_bytes must be a JSON integer"),
    (_edited(lambda d: d.update(max_note_bytes=0)), "max_note_bytes must be positive"),
    (_edited(lambda d: d.update(default_classification="secret")), "must be one of PUBLIC"),
    (_edited(lambda d: d.update(private_classifications="SECRET")), "must be a JSON array"),
    (_edited(lambda d: d["type_rules"][1].update(path_pattern="(")), "type_rules\\[1\\]\\.path_"),
    (_edited(lambda d: d["type_rules"][3].update(extensions=[1])), "type_rules\\[3\\]\\.extens"),
    (_edited(lambda d: d["type_rules"][0].pop("marker")), "type_rules\\[0\\]: missing keys"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_a_malformed_policy_is_refused_saying_what_is_wrong(text: str, message: str) -> None:
    """Anything but a complete, well-typed policy document is a ValueError naming the
    field at fault."""
    with pytest.raises(ValueError, match=message):
        policy_from_json(text)


def test_the_child_refuses_a_malformed_policy_with_one_clear_line(tmp_path: Path) -> None:
    """The child exits 2 (a usage error) and says why, before it reads any request."""
    proc = subprocess.run(
        [sys.executable, "-m", "ccc_watch.mirror.flusher", str(tmp_path), "redb", "{}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "error: malformed policy: the policy: missing keys" in proc.stderr


def test_the_childs_flushes_follow_the_daemons_policy(store: Store, tmp_path: Path) -> None:
    """A policy that makes INTERNAL private reaches the child: the INTERNAL note's body
    stays out of the mirror, the PUBLIC one's is there."""
    flusher = MirrorFlusher(tmp_path / "data", "redb", CUSTOM, interval=0.05)
    flusher.start()
    try:
        wait_until(lambda: flusher.last_flush is not None)
    finally:
        flusher.stop()
    with Mirror(tmp_path / "data").connect() as con:
        bodies = {r["classification"]: r["body"] for r in mirror_rows(con, "notes")}
    assert bodies == {"PUBLIC": "note 1", "INTERNAL": None}


def started(data_dir: Path) -> tuple[MirrorFlusher, subprocess.Popen[bytes]]:
    """A flusher that has built the mirror, and its child, still running (idle)."""
    flusher = MirrorFlusher(data_dir, "redb", IndexPolicy(), interval=0.05)
    flusher.start()
    wait_until(lambda: flusher.last_flush is not None)
    child = flusher._child
    assert child is not None and child.poll() is None
    return flusher, child


def stopped_in_a_hurry(flusher: MirrorFlusher) -> float:
    """Seconds stop(hurry=True) took; the thread is gone when it returns."""
    began = time.monotonic()
    flusher.stop(hurry=True)
    assert not flusher._thread.is_alive()
    return time.monotonic() - began


def test_stop_in_a_hurry_flushes_nothing_more_and_terminates_the_child(
    store: Store, tmp_path: Path
) -> None:
    """A change nobody poked about is what an ordinary stop flushes last; in a hurry it
    stays for the next run, and the idle child ends on SIGTERM at once."""
    data_dir = tmp_path / "data"
    flusher, child = started(data_dir)
    store.apply([Upsert(make_record(3))])
    assert stopped_in_a_hurry(flusher) < TERM_GRACE
    assert child.returncode == -signal.SIGTERM
    assert Mirror(data_dir).watermark() == 2 < store.head()

    flusher, _ = started(data_dir)  # the next run catches up; an ordinary stop flushes
    store.apply([Upsert(make_record(4))])
    flusher.stop()
    assert Mirror(data_dir).watermark() == store.head() == 4


def test_stop_in_a_hurry_kills_a_child_stuck_in_a_flush(store: Store, tmp_path: Path) -> None:
    """A child that does not answer (SIGSTOPped mid-flush, so SIGTERM cannot end it)
    is killed after TERM_GRACE, and the flush it was in is abandoned."""
    data_dir = tmp_path / "data"
    flusher, child = started(data_dir)
    os.kill(child.pid, signal.SIGSTOP)
    store.apply([Upsert(make_record(3))])
    flusher.poke()
    wait_until(flusher._busy.locked)  # the thread waits for the frozen child's answer
    assert TERM_GRACE <= stopped_in_a_hurry(flusher) < TERM_GRACE + 3
    assert child.returncode == -signal.SIGKILL
    assert Mirror(data_dir).watermark() == 2 < store.head()


# Holds a read-only connection on argv[1] until its stdin closes.
HOLDER = r"""
import sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM notes").fetchall()
print("open", flush=True)
sys.stdin.read()
"""


def test_readers_pinning_working_files_defer_publishing_without_failures(
    store: Store, tmp_path: Path
) -> None:
    """Two reader processes each hold a generation of the mirror, so that the third
    flush finds the working file held again right after a copy made for that reason:
    the child answers 'deferred' (publishing waits for the copy spacing), which the
    flusher neither counts as a failure nor logs; it flushes again when the wait is
    over and the mirror reaches the store's head."""
    data_dir = tmp_path / "data"
    flusher, _ = started(data_dir)
    readers: list[subprocess.Popen[str]] = []
    try:

        def pin() -> None:
            proc = subprocess.Popen(
                [sys.executable, "-c", HOLDER, str(data_dir / "mirror.duckdb")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            readers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline() == "open\n"

        def change(n: int) -> None:
            store.apply([Upsert(make_record(n))])
            flusher.poke()
            wait_until(lambda: flusher.watermark == store.head() or flusher.deferred > 0)

        pin()
        change(3)  # makes the working file
        pin()
        change(4)  # the first reader holds the working file: a copy
        assert flusher.deferred == 0
        change(5)  # the second reader holds it, and the last copy was just now
        assert flusher.deferred > 0 and flusher.watermark == 4
        assert flusher.failures == 0 and not flusher.degraded
        wait_until(lambda: flusher.watermark == store.head(), timeout=30)
        assert flusher.failures == 0 and flusher.last_error is None
    finally:
        flusher.stop()
        for proc in readers:
            proc.communicate("", timeout=30)
    assert Mirror(data_dir).watermark() == store.head() == 5
