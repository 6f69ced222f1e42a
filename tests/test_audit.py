"""The history: an audit chain that shows tampering, survives rebuilds and pruning,
and answers what happened to a note and what existed when.

Everything runs the real CLI against real stores (both backends) and a real DuckDB
mirror; tampering goes through the engines themselves, as someone with a database tool
and write access to the data dir would do it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import cli
from daemon_harness import Daemon, wait_until

from ccc_watch.store import BACKENDS, codec, open_store, store_file
from ccc_watch.store.chain import ANCHOR, GENESIS, TIP, link

BACKEND_NAMES = tuple(BACKENDS)


def iso(ts: float) -> str:
    """A moment as ISO 8601 with microseconds and the local offset."""
    return datetime.fromtimestamp(ts).astimezone().isoformat()


def run_ok(env: dict[str, str], vault: Path, data: Path, backend: str, *args: str) -> str:
    done = cli(env, vault, data, "--backend", backend, *args)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def audit(env: dict[str, str], vault: Path, data: Path, backend: str) -> tuple[int, list[Any]]:
    done = cli(env, vault, data, "--backend", backend, "audit", "verify", "--json")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


def history_of(vault: Path, data: Path, env: dict[str, str], backend: str) -> list[dict[str, Any]]:
    """Five notes written, edited, renamed and deleted through rebuilds: a history."""
    for i in range(5):
        (vault / f"n{i}.md").write_text(f"# note {i}\n")
    run_ok(env, vault, data, backend, "rebuild")
    (vault / "n1.md").write_text("# note 1, edited\n")
    (vault / "n2.md").rename(vault / "renamed.md")
    (vault / "n3.md").unlink()
    run_ok(env, vault, data, backend, "scan")
    with open_store(data, backend=backend, readonly=True) as store:
        return [vars(c) for c in store.changes_after(0)]


def tamper(data: Path, backend: str, how: str) -> None:
    """Change the changelog through the engine, as a person with a database tool could."""
    impl = BACKENDS[backend][0](store_file(data, backend))
    try:
        with impl.writing() as tx:
            rows = tx.scan("changelog")
            seqs = [int(k) for k, _ in rows]
            if how == "edit":  # one entry's content, hash left as it was
                entry = codec.decode(rows[2][1])
                entry["path"] = "someone else.md"
                tx.put("changelog", seqs[2], codec.encode(entry))
            elif how == "edit-and-rehash":  # content and its own hash: the next one breaks
                entry = codec.decode(rows[2][1])
                prev = codec.decode(rows[1][1])["hash"]
                entry["cause"] = "watch"
                entry["hash"] = link(prev, entry)
                tx.put("changelog", seqs[2], codec.encode(entry))
            elif how == "delete":
                tx.delete("changelog", seqs[3])
            elif how == "reorder":
                tx.put("changelog", seqs[2], rows[3][1])
                tx.put("changelog", seqs[3], rows[2][1])
            elif how == "truncate":  # the newest two entries gone
                tx.delete("changelog", seqs[-1])
                tx.delete("changelog", seqs[-2])
    finally:
        impl.close()


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize(
    ("how", "broken_at"),
    [("edit", 3), ("edit-and-rehash", 4), ("delete", 4), ("reorder", 3), ("truncate", -1)],
)
def test_the_chain_shows_an_entry_edited_deleted_reordered_or_cut_off_in_the_store(
    tmp_path: Path, vault: Path, env: dict[str, str], backend: str, how: str, broken_at: int
) -> None:
    data = tmp_path / "data"
    entries = history_of(vault, data, env, backend)
    assert len(entries) >= 8
    code, reports = audit(env, vault, data, backend)
    assert code == 0 and all(r["intact"] for r in reports), reports
    assert reports[0]["checked"] == len(entries) and reports[0]["head"] == entries[-1]["hash"]
    assert [r["where"] for r in reports] == ["store", "mirror"]
    tamper(data, backend, how)
    code, reports = audit(env, vault, data, backend)
    store_report = reports[0]
    assert code == 1 and not store_report["intact"], reports
    expected = len(entries) - 1 if broken_at == -1 else broken_at
    assert store_report["broken_at"] == expected, store_report
    text = cli(env, vault, data, "--backend", backend, "audit", "verify")
    assert text.returncode == 1 and f"store: broken at seq {expected}:" in text.stdout


@pytest.mark.parametrize("how", ["edit", "delete", "reorder", "truncate"])
def test_the_chain_shows_a_row_edited_deleted_or_reordered_in_the_mirror(
    tmp_path: Path, vault: Path, env: dict[str, str], how: str
) -> None:
    data = tmp_path / "data"
    entries = history_of(vault, data, env, "redb")
    con = duckdb.connect(str(data / "mirror.duckdb"))
    try:
        if how == "edit":
            con.execute("UPDATE events SET path = 'elsewhere.md' WHERE seq = 3")
        elif how == "delete":
            con.execute("DELETE FROM events WHERE seq = 4")
        elif how == "reorder":  # two rows swap their numbers
            con.execute("UPDATE events SET seq = CASE seq WHEN 3 THEN 4 ELSE 3 END "
                        "WHERE seq IN (3, 4)")  # fmt: skip
        else:  # the newest row cut off (the watermark still says it was applied)
            con.execute("DELETE FROM events WHERE seq = ?", [len(entries)])
    finally:
        con.close()
    code, reports = audit(env, vault, data, "redb")
    assert code == 1 and reports[0]["intact"] and not reports[1]["intact"], reports
    assert reports[1]["broken_at"] == {"edit": 3, "delete": 4, "reorder": 3}.get(
        how, len(entries)
    ), reports[1]


def test_history_survives_two_rebuilds_which_add_only_what_changed(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """A rebuild starts from the old history and adds entries (cause rebuild) only for
    what differs from it; a rebuild of an unchanged vault adds none. The mirror's
    events hold the whole history; the chain stays intact across both."""
    data = tmp_path / "data"
    before = history_of(vault, data, env, "redb")
    run_ok(env, vault, data, "redb", "rebuild")
    with open_store(data, readonly=True) as store:
        after_one = [vars(c) for c in store.changes_after(0)]
    assert after_one == before  # nothing changed since the scan: nothing to add
    (vault / "n0.md").write_text("# note 0, changed while nobody watched\n")
    (vault / "n4.md").unlink()
    (vault / "new.md").write_text("# new\n")
    run_ok(env, vault, data, "redb", "rebuild")
    with open_store(data, readonly=True) as store:
        after_two = [vars(c) for c in store.changes_after(0)]
    assert after_two[: len(before)] == before
    added = [(c["op"], c["path"], c["cause"]) for c in after_two[len(before) :]]
    assert sorted(added) == [
        ("delete", "n4.md", "rebuild"),
        ("upsert", "n0.md", "rebuild"),
        ("upsert", "new.md", "rebuild"),
    ]
    rows = run_ok(env, vault, data, "redb", "sql", "SELECT seq, hash FROM events ORDER BY seq",
                  "--format", "json")  # fmt: skip
    assert [(r["seq"], r["hash"]) for r in json.loads(rows)] == [
        (c["seq"], c["hash"]) for c in after_two
    ]
    code, reports = audit(env, vault, data, "redb")
    assert code == 0, reports


def test_history_follows_renames_and_manifest_tells_what_existed_when(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    history_of(vault, data, env, "redb")
    lines = run_ok(env, vault, data, "redb", "history", "renamed.md", "--json")
    ops = [(c["op"], c["path"], c["prev_path"]) for c in json.loads(lines)]
    # the move keeps the id; the upsert after it is the fields that follow the name
    assert ops == [
        ("upsert", "n2.md", None), ("move", "renamed.md", "n2.md"), ("upsert", "renamed.md", None)
    ]  # fmt: skip
    first = json.loads(run_ok(env, vault, data, "redb", "history", "n1.md", "--json"))
    assert [c["op"] for c in first] == ["upsert", "upsert"]
    since = json.loads(
        run_ok(env, vault, data, "redb", "history", "n1.md", "--json", "--since",
               iso(first[1]["ts"] + 0.001))
    )  # fmt: skip
    assert since == []
    then = first[0]["ts"]  # right after the first rebuild
    as_of = json.loads(
        run_ok(env, vault, data, "redb", "manifest", "--json", "--as-of",
               iso(then + 0.001))
    )  # fmt: skip
    assert [r["path"] for r in as_of] == ["a.md", "n0.md", "n1.md", "n2.md", "n3.md", "n4.md"]
    assert {r["path"]: r["blake3"] for r in as_of}["n1.md"] == first[0]["blake3_after"]
    now = run_ok(env, vault, data, "redb", "manifest")
    assert [line.split("  ", 1)[1] for line in now.splitlines()] == [
        "a.md",
        "n0.md",
        "n1.md",
        "n4.md",
        "renamed.md",
    ]
    assert f"{first[1]['blake3_after']}  n1.md" in now.splitlines()
    bad = cli(env, vault, data, "manifest", "--as-of", "last tuesday")
    assert bad.returncode == 2 and "no time" in bad.stderr and "Traceback" not in bad.stderr


def test_pruning_is_audited_keeps_the_chain_and_a_checkpoint(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """`audit prune` lets old entries go as one audited entry; the chain still verifies
    (from the anchor), the mirror lets go of the same rows, the vault as of a time after
    the anchor is still told (from the checkpoint), before it is refused."""
    data = tmp_path / "data"
    entries = history_of(vault, data, env, "redb")
    nothing = run_ok(env, vault, data, "redb", "audit", "prune")
    assert "kept whole" in nothing
    said = run_ok(env, vault, data, "redb", "audit", "prune", "--keep-entries", "3")
    cut = len(entries) - 3
    assert f"prune: {cut} entries through seq {cut}" in said
    with open_store(data, readonly=True) as store:
        kept = store.changes_after(0)
    assert [c.seq for c in kept] == [*range(cut + 1, len(entries) + 1), len(entries) + 1]
    assert kept[-1].op == "prune" and kept[-1].path == ""
    run_ok(env, vault, data, "redb", "mirror")
    rows = json.loads(run_ok(env, vault, data, "redb", "sql",
                             "SELECT min(seq) AS lo, max(seq) AS hi FROM events",
                             "--format", "json"))  # fmt: skip
    assert rows == [{"lo": cut + 1, "hi": len(entries) + 1}]
    code, reports = audit(env, vault, data, "redb")
    assert code == 0 and reports[0]["first"] == cut + 1, reports
    now = run_ok(env, vault, data, "redb", "manifest")
    past = run_ok(env, vault, data, "redb", "manifest", "--as-of", "0s")  # i.e. now
    assert past == now
    early = cli(env, vault, data, "manifest", "--as-of", "2020-01-01")
    assert early.returncode == 1 and "was pruned" in early.stderr
    # the prune entry itself links on: a new change after it still verifies
    (vault / "after.md").write_text("# after\n")
    run_ok(env, vault, data, "redb", "scan")
    assert audit(env, vault, data, "redb")[0] == 0


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_a_store_of_schema_1_is_chained_by_the_first_writable_open(
    tmp_path: Path, vault: Path, env: dict[str, str], backend: str
) -> None:
    """Entries written before the chain existed get their hashes in place, in order,
    and the history goes on from them."""
    data = tmp_path / "data"
    entries = history_of(vault, data, env, backend)
    impl = BACKENDS[backend][0](store_file(data, backend))
    try:
        with impl.writing() as tx:
            for seq, blob in tx.scan("changelog"):
                entry = codec.decode(blob)
                del entry["hash"]
                tx.put("changelog", seq, codec.encode(entry))
            tx.delete("meta", TIP)
            tx.put("meta", "schema_version", codec.encode({"value": 1}))
    finally:
        impl.close()
    code, reports = audit(env, vault, data, backend)  # read-only: not chained yet
    assert code == 1 and "no chain hash" in reports[0]["reason"]
    with open_store(data, backend=backend) as store:
        assert store.meta["schema_version"] == 2
        chained = [vars(c) for c in store.changes_after(0)]
    assert chained == entries  # the same hashes the entries had when written
    prev = GENESIS
    for entry in chained:
        assert entry["hash"] == link(prev, entry)
        prev = entry["hash"]
    assert audit(env, vault, data, backend)[0] == 0


def test_a_running_daemon_prunes_by_its_settings_and_rebuilds_keeping_the_history(
    tmp_path: Path,
) -> None:
    """With history_keep_entries set, the daemon prunes at start-up (then daily); a
    rebuild it does on request carries the history forward; both chains stay intact."""
    vault = tmp_path / "vault"
    vault.mkdir()
    for i in range(12):
        (vault / f"n{i:02d}.md").write_text(f"# note {i}\n")
    daemon = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    daemon.run_args = ["--history-keep-entries", "5"]
    daemon.start()
    try:
        daemon.settle()
        wait_until(lambda: _anchor(daemon.data) is not None, "the start-up prune")
        with open_store(daemon.data, readonly=True) as store:
            kept = [vars(c) for c in store.changes_after(0)]
        assert len(kept) == 6 and kept[-1]["op"] == "prune", kept
        assert _anchor(daemon.data)["seq"] == kept[0]["seq"] - 1 == 12 - 5
        (vault / "n00.md").write_text("# note 0, edited\n")
        daemon.settle()
        done = daemon.cli("rebuild")
        assert done.returncode == 0, done.stderr[-2000:]
        daemon.settle()
        with open_store(daemon.data, readonly=True) as store:
            after = [vars(c) for c in store.changes_after(0)]
        assert after[: len(kept)] == kept and len(after) == len(kept) + 1, after
        wait_until(lambda: _audit_clean(daemon), "both chains intact")
    finally:
        daemon.stop()


def _anchor(data: Path) -> dict[str, Any] | None:
    with open_store(data, readonly=True) as store, store.snapshot() as snap:
        value = snap.meta_value(ANCHOR)
    return value if isinstance(value, dict) else None


def _audit_clean(daemon: Daemon) -> bool:
    done = daemon.cli("audit", "verify", "--json")
    return done.returncode == 0 and len(json.loads(done.stdout)) == 2
