"""`rebuild`, `dump` and `get` against synthetic vaults with ground truth (the project's
own tests/vaultgen.py, and ../shared's independent make_vault.py when present) and the
real obsidian-hub corpus from ../shared: real files, the real redb and SQLite engines."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    SOURCES,
    as_indexed,
    build_vault,
    hub_corpus,
    not_private,
    own_vault,
    tree_digest,
)
from loguru import logger

from ccc_watch.changes.rebuild import rebuild
from ccc_watch.mirror.schema import PROPERTIES
from ccc_watch.store import Upsert, open_store
from ccc_watch.vault.ignore import IgnoreRules

KINDS = {"note": "note", "data": "data", "attachment": "attachment"}


def records_by_path(data_dir: Path, backend: str = "redb") -> dict[str, dict[str, Any]]:
    with open_store(data_dir, backend=backend, readonly=True) as store:
        return {r["path"]: r for r in store.records()}


def dumped(vault: Path, data_dir: Path) -> dict[str, dict[str, Any]]:
    """The records as `ccc-watch dump` prints them, by path."""
    proc = subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir",
         str(data_dir), "dump"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return {r["path"]: r for r in map(json.loads, proc.stdout.splitlines())}


def shown(key: str) -> str:
    """A key as reports show it: a name's bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(key).decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("source", SOURCES)
def test_rebuild_matches_the_ground_truth(tmp_path: Path, source: str, seed: int) -> None:
    """Every field the truth gives matches; every Bad/ file has a record or a reason."""
    vault = tmp_path / "vault"
    truth = build_vault(source, vault, notes=300, seed=seed)
    before = tree_digest(vault)
    report = rebuild(vault, tmp_path / "data")
    records = dumped(vault, tmp_path / "data")
    skipped = {item["path"] for item in report.skipped}
    # What the file holds, as the README's privacy rules let a record keep it.
    for key, t in ((key, as_indexed(t)) for key, t in truth.items()):
        if t["kind"] in ("symlink", "skipped"):  # skipped: a name that is not UTF-8
            assert key not in records, f"{key}: a symlink that leaves or loops was followed"
            assert any(shown(key) in s for s in skipped), f"{key}: not reported"
            continue
        assert key in records, f"{key} has no record"
        rec = records[key]
        if t["kind"] in KINDS:
            assert rec["kind"] == KINDS[t["kind"]], key
        if t.get("size") is not None:
            assert rec["size"] == t["size"], key
        if t.get("blake3") is not None:
            assert rec["blake3"] == t["blake3"], key
        if "problem" in t:  # the own truth: why a file is special, or None
            assert bool(rec["error"]) == bool(t["problem"]), (key, rec["error"])
        elif t["kind"] == "note":
            assert rec["error"] is None, (key, rec["error"])
        if "record_type" in t:
            assert rec["record_type"] == t["record_type"], key
        if "frontmatter" in t:
            assert rec["frontmatter_status"] == t["frontmatter"], key
        if "classification" in t:
            assert rec["classification"] == t["classification"], key
        if "tags" in t:
            assert rec["tags"] == t["tags"], key
        if "links" in t:
            assert sorted(link["target"] for link in rec["links"]) == t["links"], key
        if "tasks_open" in t:
            assert sum(not task["done"] for task in rec["tasks"]) == t["tasks_open"], key
            assert sum(task["done"] for task in rec["tasks"]) == t["tasks_done"], key
        if t.get("classification") in ("CONFIDENTIAL", "SECRET"):
            assert rec["body"] is None, f"{key}: a {t['classification']} body was stored"
    # Nothing outside the truth (ignored folders, .trash, .obsidian) was indexed.
    assert set(records) <= set(truth)
    assert report.seen == len(records)
    assert tree_digest(vault) == before, "rebuild modified the vault"


def test_bad_files_get_reasons(tmp_path: Path) -> None:
    """Binary, huge, non-UTF-8 (and, for a user other than root, unreadable) notes get
    records that say why they are special."""
    vault = tmp_path / "vault"
    truth = own_vault(vault, notes=20, seed=3)
    rebuild(vault, tmp_path / "data")
    records = records_by_path(tmp_path / "data")
    problems = {key: t["problem"] for key, t in truth.items() if t.get("problem")}
    assert set(problems.values()) >= {"binary", "huge", "not_utf8"}
    says = {"binary": "binary", "huge": "limit", "not_utf8": "UTF-8", "unreadable": "cannot read"}
    for key, problem in problems.items():
        rec = records[key]
        assert says[problem] in rec["error"], (key, rec["error"])
        if problem == "binary":
            assert rec["kind"] == "attachment"
        if problem == "huge":
            assert rec["blake3"] == truth[key]["blake3"]
        if problem == "not_utf8":
            assert "\ufffd" in rec["body"]
    empty = [key for key, t in truth.items() if t.get("size") == 0 and t["kind"] == "bad"]
    assert empty and all(records[key]["size"] == 0 for key in empty)


def test_rebuild_twice_gives_identical_records(tmp_path: Path) -> None:
    """I4: a second rebuild of an unchanged vault reproduces every record (ids included)."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=100, seed=4)
    first = rebuild(vault, tmp_path / "data")
    one = records_by_path(tmp_path / "data")
    second = rebuild(vault, tmp_path / "data")
    two = records_by_path(tmp_path / "data")
    for rec in [*one.values(), *two.values()]:
        rec.pop("indexed_at")
    assert one == two
    assert second.unchanged == second.indexed == first.indexed
    assert second.added == second.changed == second.removed == 0


def test_rebuild_keeps_ids_the_old_store_knew(tmp_path: Path) -> None:
    """An id the store already had for a path survives a rebuild."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("# a\n")
    rebuild(vault, tmp_path / "data")
    with open_store(tmp_path / "data") as store:
        rec = store.get("a.md")
        assert rec is not None
        store.apply([Upsert(dict(rec, id="kept-id"))])
    rebuild(vault, tmp_path / "data")
    assert records_by_path(tmp_path / "data")["a.md"]["id"] == "kept-id"


def test_frontmatter_id_wins(tmp_path: Path) -> None:
    """An `id` in the frontmatter is the record's id."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("---\nid: my-own-id\n---\nbody\n")
    rebuild(vault, tmp_path / "data")
    assert records_by_path(tmp_path / "data")["a.md"]["id"] == "my-own-id"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    """--dry-run reports what would change and leaves the store as it was."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=30, seed=5, bad=False)
    report = rebuild(vault, tmp_path / "data", dry_run=True)
    assert report.dry_run and report.added == report.seen > 0
    assert not (tmp_path / "data" / "index.redb").exists()
    rebuild(vault, tmp_path / "data")
    (vault / "Projects" / "new.md").write_text("# new\n")
    stamp = (tmp_path / "data" / "index.redb").stat().st_mtime_ns
    report = rebuild(vault, tmp_path / "data", dry_run=True)
    assert report.added == 1 and report.unchanged == report.seen - 1
    assert (tmp_path / "data" / "index.redb").stat().st_mtime_ns == stamp


@pytest.mark.usefixtures("open_umask")
@pytest.mark.parametrize("backend", ["redb", "sqlite"])
def test_first_rebuild_creates_everything_private(tmp_path: Path, backend: str) -> None:
    """A first rebuild into a data dir whose parents do not exist yet creates each of
    them, the data dir and every file 0700/0600, even under umask 000 (`mkdir -p` left
    the parents and the data dir 0777, and the data dir 0755 under umask 022); a
    second rebuild into an existing 0755 data dir tightens it."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=20, seed=9, bad=False)
    top = tmp_path / "new"
    data_dir = top / "deeper" / "data"
    rebuild(vault, data_dir, backend=backend)
    assert not_private(top) == {}
    data_dir.chmod(0o755)
    rebuild(vault, data_dir, backend=backend)
    assert not_private(top) == {}


def test_removed_files_leave_the_index(tmp_path: Path) -> None:
    """A file deleted since the last rebuild has no record after the next one."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("a\n")
    (vault / "b.md").write_text("b\n")
    rebuild(vault, tmp_path / "data")
    (vault / "b.md").unlink()
    report = rebuild(vault, tmp_path / "data")
    assert report.removed == 1
    assert set(records_by_path(tmp_path / "data")) == {"a.md"}


@pytest.mark.parametrize("backend", ["redb", "sqlite"])
def test_cli_rebuild_dump_get(tmp_path: Path, backend: str) -> None:
    """The commands: rebuild --json reports, dump prints one JSON record per line, get one."""
    vault = tmp_path / "vault"
    truth = own_vault(vault, notes=40, seed=6, bad=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    env |= {"XDG_DATA_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    base = [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--backend", backend]
    run = subprocess.run([*base, "rebuild", "--json"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["indexed"] == len(truth) and report["failed"] == []
    dump = subprocess.run([*base, "dump"], capture_output=True, text=True, env=env, check=True)
    lines = [json.loads(line) for line in dump.stdout.splitlines()]
    assert sorted(r["path"] for r in lines) == sorted(truth)
    key = next(iter(sorted(truth)))
    got = subprocess.run([*base, "get", key], capture_output=True, text=True, env=env, check=True)
    assert json.loads(got.stdout)["path"] == key
    missing = subprocess.run([*base, "get", "nope.md"], capture_output=True, text=True, env=env)
    assert missing.returncode == 1 and "nope.md" in missing.stderr


def children(pid: int) -> list[int]:
    """Pids whose parent is pid (Linux /proc)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether pid runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_kill_mid_rebuild_keeps_the_previous_index(tmp_path: Path) -> None:
    """SIGKILL during a rebuild leaves the old store whole; the next rebuild cleans up."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=3000, seed=7, bad=False)
    data = tmp_path / "data"
    rebuild(vault, data, batch_size=100)
    before = records_by_path(data)
    (vault / "Projects" / "added later.md").write_text("# later\n")
    code = (
        "import sys; from pathlib import Path; from ccc_watch.changes.rebuild import rebuild\n"
        "rebuild(Path(sys.argv[1]), Path(sys.argv[2]), batch_size=50,"
        " on_batch=lambda n: print('batch', flush=True))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(vault), str(data)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "batch"
    time.sleep(0.05)
    workers = children(proc.pid)
    assert workers, "the rebuild of 3,000 files should run worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], "worker processes outlived the rebuild"
    assert records_by_path(data).keys() == before.keys()
    report = rebuild(vault, data)
    assert report.added == 1
    assert not list(data.glob(".rebuild-*")), "the interrupted rebuild's folder was left"


def test_rebuild_of_the_hub_corpus(tmp_path: Path) -> None:
    """The real community vault: counts, broken YAML flagged, vault untouched."""
    vault = hub_corpus(tmp_path / "hub")
    before = tree_digest(vault)
    rules = IgnoreRules.load(vault)
    report = rebuild(vault, tmp_path / "data", rules=rules)
    records = records_by_path(tmp_path / "data")
    on_disk = [
        p
        for p in vault.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(vault).parts)
    ]
    assert report.seen == len(records) == len(on_disk) > 6000
    invalid = {k for k, r in records.items() if r["frontmatter_status"] == "invalid"}
    for broken in (
        "01 - Community/People/kepano.md",
        "03 - Showcases & Templates/Vaults/Periodic PARA.md",
        "02 - Community Expansions/02.05 All Community Expansions/Plugins/at-symbol-linking.md",
    ):
        assert broken in invalid, broken
        assert records[broken]["frontmatter_error"]
    assert 10 <= len(invalid) <= 40
    assert tree_digest(vault) == before


def test_rebuild_of_an_own_vault_flags_each_broken_frontmatter(tmp_path: Path) -> None:
    """The hub corpus's checks on an own vault, whose truth names every broken block:
    counts, each invalid frontmatter flagged with its error, the vault untouched."""
    vault = tmp_path / "vault"
    truth = own_vault(vault, notes=500, seed=8)
    before = tree_digest(vault)
    report = rebuild(vault, tmp_path / "data", rules=IgnoreRules.load(vault))
    records = records_by_path(tmp_path / "data")
    content = [k for k, t in truth.items() if t["kind"] not in ("symlink", "skipped")]
    assert report.seen == len(records) == len(content)
    invalid = {k for k, r in records.items() if r["frontmatter_status"] == "invalid"}
    broken = {k for k, t in truth.items() if t.get("frontmatter") == "invalid"}
    assert len(broken) >= 10 and broken <= invalid
    # Beyond those, only blocks the truth leaves open (a YAML bomb, absurd nesting).
    assert invalid - broken <= {k for k, t in truth.items() if "frontmatter" not in t}
    assert all(records[k]["frontmatter_error"] for k in invalid)
    assert tree_digest(vault) == before


@pytest.mark.parametrize("backend", ["redb", "sqlite"])
def test_dump_and_get_work_while_a_writer_holds_the_store(tmp_path: Path, backend: str) -> None:
    """dump and get open the store read-only beside the one writer (the daemon)."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("# a\n")
    data = tmp_path / "data"
    rebuild(vault, data, backend=backend)
    base = [
        sys.executable,
        "-m",
        "ccc_watch.cli",
        "--vault",
        str(vault),
        "--data-dir",
        str(data),
        "--backend",
        backend,
    ]
    with open_store(data, backend=backend, vault_root=vault.resolve()) as writer:
        rec = writer.get("a.md")
        assert rec is not None
        writer.apply([Upsert(dict(rec, path="b.md", id="b"))])
        dump = subprocess.run([*base, "dump"], capture_output=True, text=True, timeout=60)
        assert dump.returncode == 0, dump.stderr
        assert [json.loads(line)["path"] for line in dump.stdout.splitlines()] == [
            "a.md",
            "b.md",
        ]
        got = subprocess.run([*base, "get", "b.md"], capture_output=True, text=True, timeout=60)
        assert got.returncode == 0 and json.loads(got.stdout)["id"] == "b"


def _mirror_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every mirror table's rows, sorted (mirror_state without its time)."""
    import duckdb

    from ccc_watch.mirror.schema import TABLES

    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table in TABLES:
            cols = [c for c in table.names if c != "updated_at"]
            names = ", ".join(f'"{c}"' for c in cols)
            out[table.name] = con.execute(
                f"SELECT {names} FROM {table.name} ORDER BY ALL"
            ).fetchall()
        return out
    finally:
        con.close()


def _mirror_from_store(data: Path, vault: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The mirror as the store alone gives it: Mirror.rebuild, in a copy of data."""
    from ccc_watch.mirror.mirror import Mirror
    from ccc_watch.store import MIRROR_FILE, open_readonly

    copy = data.with_name(data.name + "-from-store")
    shutil.copytree(data, copy)
    with open_readonly(copy, backend="redb", vault=vault) as store:
        Mirror(copy).rebuild(store)
    return _mirror_tables(copy / MIRROR_FILE)


def _unordered_frontmatter_notes(vault: Path) -> None:
    """Notes whose frontmatter keys are not in sorted order, nested and with both a
    `Date` and a `day`: the rows must not depend on the order a parser gives keys."""
    for i in range(3):
        (vault / f"Unordered {i}.md").write_text(
            f"---\nzeta: {i}\nDate: 2024-0{i + 1}-0{i + 1}\nday: 2023-12-3{i}\n"
            f"alpha: {{y: 1, b: [2, {{z: 1, a: 2}}]}}\nMid: [c, a]\n---\n# Title {i}\n"
            f"text [[Welcome]] #Tag{i} due:: 2024-05-0{i + 1}\n- [ ] a task 📅 2024-01-0{i + 1}\n",
            encoding="utf-8",
        )


def test_the_rebuilds_mirror_equals_one_built_from_the_store(tmp_path: Path) -> None:
    """`ccc-watch rebuild` builds the mirror from the rows its workers made while
    indexing, not from a second pass over the store: every table equals what the store
    alone gives (Mirror.rebuild), private levels included, in a vault big enough for
    the worker pool; and again over the first rebuild's store (whose ids are kept, and
    whose history the new mirror gets as it is carried), and over a store whose
    history was pruned (the events then start past the pruning anchor)."""
    from ccc_watch.index.pool import PARALLEL_MIN_FILES
    from ccc_watch.store import MIRROR_FILE

    vault, data = tmp_path / "vault", tmp_path / "data"
    own_vault(vault, notes=PARALLEL_MIN_FILES + 100, seed=7, bad=True)
    _unordered_frontmatter_notes(vault)
    cli = [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir", str(data)]
    for round_ in ("fresh", "over the first", "over a pruned store"):
        if round_ == "over a pruned store":
            prune = [*cli, "audit", "prune", "--keep-entries", "50"]
            pruned = subprocess.run(prune, capture_output=True, text=True, timeout=120, check=False)
            assert pruned.returncode == 0, pruned.stderr
        proc = subprocess.run([*cli, "rebuild", "--json"], capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip
        assert proc.returncode in (0, 1), proc.stderr
        report = json.loads(proc.stdout)
        assert "beside the store failed" not in proc.stderr  # the workers' rows made it
        if round_ != "fresh":  # the workers compared with the old store
            assert report["changed"] == 1 and report["added"] == report["removed"] == 0
            assert report["unchanged"] == report["indexed"] - 1, report
        built = _mirror_tables(data / MIRROR_FILE)
        assert len(built["notes"]) == report["indexed"]
        seqs = [row[0] for row in built["events"]]
        if round_ == "over a pruned store":  # 50 kept, the prune's own entry, the change
            assert len(seqs) == 52 and seqs[0] > 1, seqs[:3]
        key = PROPERTIES.names.index("key")
        assert {row[key] for row in built["properties"]} >= {"Date", "day", "alpha", "due"}
        with open_store(data, readonly=True) as store, store.snapshot() as snap:
            hashed = [(r["path"], r["blake3"]) for r in snap.records(fields=("blake3",))]
            assert all(path in snap.paths_with_blake3(b3) for path, b3 in hashed)  # indexed
        from_store = _mirror_from_store(data, vault)
        for name, rows in from_store.items():
            assert built[name] == rows, (round_, name)
        shutil.rmtree(data.with_name(data.name + "-from-store"))
        with (vault / "Unordered 1.md").open("a", encoding="utf-8") as note:
            note.write("one more line\n")
    assert not list(data.glob(f".{MIRROR_FILE}.*")), "a working file of the build was left"


def test_a_mirror_that_fails_beside_the_store_is_built_from_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the thread loading the workers' rows fails (here an injected DuckDB error),
    the store still lands and the mirror is built from it: same tables, one warning."""
    import threading

    import duckdb

    from ccc_watch.changes.rebuild import rebuild_vault
    from ccc_watch.config import load
    from ccc_watch.mirror import mirror as mirror_module
    from ccc_watch.store import MIRROR_FILE

    vault, data = tmp_path / "vault", tmp_path / "data"
    own_vault(vault, notes=60, seed=8, bad=True)
    real = mirror_module._insert_rows

    def failing_in_the_loader(con: Any, rows: Any) -> None:
        if threading.current_thread().name == "mirror-load":
            raise duckdb.IOException("injected: no space left on device")
        real(con, rows)

    monkeypatch.setattr(mirror_module, "_insert_rows", failing_in_the_loader)
    flags = {"vault": str(vault), "data_dir": str(data)}
    cfg = load(flags, environ={}, config_file=tmp_path / "none.toml", must_exist=False)
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        report = rebuild_vault(cfg)
    finally:
        logger.remove(sink)
    assert report.indexed > 60
    assert any("beside the store failed" in w and "injected" in w for w in warnings), warnings
    built = _mirror_tables(data / MIRROR_FILE)
    assert len(built["notes"]) == report.indexed
    assert built == _mirror_from_store(data, vault)
    assert not list(data.glob(f".{MIRROR_FILE}.*"))


def test_rows_and_carried_history_start_one_mirror_load_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over an old store, the mirror's loader gets rows from the main thread and the
    old history's entries from the thread that carries it: whichever comes first starts
    the loader's thread. Seen in CI on a loaded machine: both started one, each thread
    wrote its own new file, and the one published had the events and no notes (verify
    --deep: every record a missing row). Here the making of that thread is slowed so
    that both callers meet it; one thread is made, and the mirror is whole."""
    import threading

    from ccc_watch.changes.rebuild import rebuild_vault
    from ccc_watch.config import load
    from ccc_watch.mirror import mirror as mirror_module
    from ccc_watch.store import MIRROR_FILE

    vault, data = tmp_path / "vault", tmp_path / "data"
    own_vault(vault, notes=60, seed=9, bad=False)
    cfg = load(
        {"vault": str(vault), "data_dir": str(data)},
        environ={},
        config_file=tmp_path / "none.toml",
        must_exist=False,
    )
    rebuild_vault(cfg)  # the old store, and its history to carry
    made: list[str] = []

    class SlowThread(threading.Thread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("name") == "mirror-load":
                made.append(threading.current_thread().name)
                time.sleep(0.5)  # both callers come meanwhile
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(mirror_module.threading, "Thread", SlowThread)
    report = rebuild_vault(cfg)
    monkeypatch.undo()
    assert len(made) == 1, made
    built = _mirror_tables(data / MIRROR_FILE)
    assert len(built["notes"]) == report.indexed
    assert built == _mirror_from_store(data, vault)


def test_workers_started_before_the_vault_is_known_index_each_vault_as_its_own(
    tmp_path: Path,
) -> None:
    """A rebuild forks its workers before it reads anything (so they share only the
    imports): each indexing that uses them then brings its vault, vault id and policy
    with its tasks. Two vaults through one set of workers get their own ids and
    classification, and the records equal the ones a single process makes."""
    from ccc_watch.index.policy import IndexPolicy
    from ccc_watch.index.pool import PARALLEL_MIN_FILES, packed_indexing, started

    vaults = []
    for n, level in enumerate(("PUBLIC", "SECRET")):
        vault = tmp_path / f"vault-{n}"
        vault.mkdir()
        for i in range(PARALLEL_MIN_FILES + 10):
            (vault / f"note {i}.md").write_text(f"text {n} {i} #tag{n}\n", encoding="utf-8")
        vaults.append((vault, str(uuid.UUID(int=n + 1)), IndexPolicy(default_classification=level)))
    ids: list[list[str]] = []
    with started(2) as pool:
        assert pool is not None
        pids = set(pool._processes)
        for vault, vault_id, policy in vaults:
            tasks = [(p.name, str(p), None) for p in sorted(vault.iterdir())]
            with packed_indexing(vault, vault_id, policy, len(tasks), 2, list, pool) as run:
                made = [r for parts in run([tasks]) for part in parts for r in part]
            with packed_indexing(vault, vault_id, policy, len(tasks), 1, list) as run:
                alone = [r for parts in run([tasks]) for part in parts for r in part]
            ids.append([r.record["id"] for r in made])
            assert {r.record["classification"] for r in made} == {policy.default_classification}
            volatile = ("indexed_at",)
            assert [{k: v for k, v in r.record.items() if k not in volatile} for r in made] == [
                {k: v for k, v in r.record.items() if k not in volatile} for r in alone
            ]
        assert set(pool._processes) == pids  # the same two workers served both
    assert not set(ids[0]) & set(ids[1])  # same names, each vault's own ids


def test_indexing_collects_garbage_less_often_and_the_caller_keeps_its_thresholds(
    tmp_path: Path,
) -> None:
    """Indexing allocates dicts by the hundred per file, nearly all freed by their
    reference counts: a worker raises its young generation's threshold for good, and a
    rebuild raises this process's only while it runs (a threshold of 0, collection
    off, is left as it is)."""
    import gc

    from ccc_watch.index.pool import PARALLEL_MIN_FILES, YOUNG_COLLECTION, started

    vault, data = tmp_path / "vault", tmp_path / "data"
    vault.mkdir()
    for i in range(PARALLEL_MIN_FILES + 10):
        (vault / f"note {i}.md").write_text(f"text {i} #tag\n", encoding="utf-8")
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []  # this process's thresholds at each batch
    try:
        for mine in ((700, 10, 10), (0, 10, 10)):
            gc.set_threshold(*mine)
            seen.clear()
            report = rebuild(
                vault, data, workers=2, on_batch=lambda _: seen.append(gc.get_threshold())
            )
            assert report.seen == PARALLEL_MIN_FILES + 10
            assert seen and all(
                t == (mine if not mine[0] else (YOUNG_COLLECTION, 10, 10)) for t in seen
            )
            assert gc.get_threshold() == mine
        gc.set_threshold(700, 10, 10)
        with started(2) as pool:
            assert pool is not None
            thresholds = {pool.submit(gc.get_threshold).result() for _ in range(4)}
        assert thresholds == {(YOUNG_COLLECTION, 10, 10)}  # from their start
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("own_pool", [False, True], ids=["started", "own"])
def test_a_failed_indexing_leaves_no_pool_thread_behind(tmp_path: Path, own_pool: bool) -> None:
    """When the work fails mid-way (here the store's disk fills up), the worker pool is
    shut down whole before the error goes on: its queued tasks are dropped, and no
    manager thread of it is left running. One left running closed its pipe while
    Python's exit handler wrote to it, and `rebuild` on a full disk printed a traceback
    after its one line (seen in CI)."""
    import threading
    from concurrent.futures.process import _ExecutorManagerThread

    from ccc_watch.index.policy import IndexPolicy
    from ccc_watch.index.pool import PARALLEL_MIN_FILES, TASK_FILES, packed_indexing

    vault, data = tmp_path / "vault", tmp_path / "data"
    vault.mkdir()
    n = PARALLEL_MIN_FILES * 4
    for i in range(n):
        (vault / f"note {i}.md").write_text(f"text {i} #tag\n", encoding="utf-8")

    def pool_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if isinstance(t, _ExecutorManagerThread)]

    assert pool_threads() == []
    batches_done: list[int] = []

    def full_disk(count: int) -> None:
        batches_done.append(count)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        if own_pool:  # the pool packed_indexing() starts itself (spawned, or no started())
            tasks = [(f"note {i}.md", str(vault / f"note {i}.md"), None) for i in range(n)]
            with packed_indexing(vault, str(uuid.uuid4()), IndexPolicy(), n, 2, len) as run:
                for parts in run([tasks[i : i + TASK_FILES] for i in range(0, n, TASK_FILES)]):
                    full_disk(sum(parts))
        else:  # the workers rebuild() forks before it reads the vault
            rebuild(vault, data, workers=2, batch_size=TASK_FILES, on_batch=full_disk)
    assert len(batches_done) == 1
    assert pool_threads() == []


def test_batches_indexed_while_the_history_is_copied_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over an old store, the old history is copied into the new one on a thread while
    the first files are indexed (up to _WAITING batches of them, all of these 7): no
    batch is written before the copy ends (the new
    entries follow the carried ones, the chain unbroken), none is lost, and an error of
    the copy fails the rebuild with the new store's work dir removed."""
    from ccc_watch.changes import rebuild as rebuild_module
    from ccc_watch.history.chain import verify_store

    vault, data = tmp_path / "vault", tmp_path / "data"
    own_vault(vault, notes=60, seed=11, bad=False)
    rebuild(vault, data)
    with open_store(data, readonly=True) as store, store.snapshot() as snap:
        old_entries = snap.changes_after(0)
    (vault / "new note.md").write_text("# New\nbody\n", encoding="utf-8")

    real_carry = rebuild_module._carry
    copied_at: list[float] = []

    def slow_carry(*args: Any) -> Any:
        time.sleep(1.0)  # the workers' first batches are done long before
        history = real_carry(*args)
        copied_at.append(time.monotonic())
        return history

    real_pack = rebuild_module._pack
    indexed_at: list[float] = []

    def timed_pack(*args: Any) -> Any:
        indexed_at.append(time.monotonic())
        return real_pack(*args)

    monkeypatch.setattr(rebuild_module, "_carry", slow_carry)
    monkeypatch.setattr(rebuild_module, "_pack", timed_pack)
    written_at: list[float] = []
    report = rebuild(
        vault,
        data,
        batch_size=10,
        workers=1,
        on_batch=lambda _: written_at.append(time.monotonic()),
    )
    assert report.indexed == len(old_entries) + 1 and report.added == 1
    assert len(written_at) == -(-report.indexed // 10) and min(written_at) >= copied_at[0]
    assert max(indexed_at) < copied_at[0]  # every batch was indexed during the copy
    with open_store(data, readonly=True) as store, store.snapshot() as snap:
        entries = snap.changes_after(0)
        assert entries[: len(old_entries)] == old_entries  # carried as they were
        assert [e.seq for e in entries] == list(range(1, len(old_entries) + 2))
        assert entries[-1].path == "new note.md"
        assert verify_store(snap).intact

    def failing_carry(*args: Any) -> Any:
        time.sleep(0.5)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rebuild_module, "_carry", failing_carry)
    with pytest.raises(OSError, match="No space left"):
        rebuild(vault, data, batch_size=10, workers=1)
    assert not list(data.glob(".rebuild-*")), "the new store's work dir was left"
    assert records_by_path(data).keys() == {e.path for e in entries}  # the old store kept


def test_the_walk_goes_on_while_the_first_files_are_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild indexes the files as the walk finds them (in key order), not after the
    whole walk: the first batch is written before the walk ends, and the report still
    counts every file seen and every path the walk left out."""
    from ccc_watch.changes import rebuild as rebuild_module
    from ccc_watch.index.pool import PARALLEL_MIN_FILES

    vault, data = tmp_path / "vault", tmp_path / "data"
    truth = own_vault(vault, notes=PARALLEL_MIN_FILES + 100, seed=12, bad=True)
    real_walking = rebuild_module.walking
    events: list[str] = []

    def traced_walking(*args: Any, **kwargs: Any) -> Any:
        report, found = real_walking(*args, **kwargs)

        def traced() -> Any:
            keys = []
            for f in found:
                keys.append(f.key)
                yield f
            assert keys == sorted(keys)
            events.append("walk ended")

        return report, traced()

    monkeypatch.setattr(rebuild_module, "walking", traced_walking)
    report = rebuild(
        vault, data, batch_size=50, workers=1, on_batch=lambda _: events.append("written")
    )
    assert events.index("written") < events.index("walk ended"), events[:12]
    indexed = set(records_by_path(data))
    skipped = {s["path"] for s in report.skipped}
    assert indexed | skipped >= {key for key, t in truth.items() if t["kind"] != "skipped"}
    assert report.seen == report.indexed == len(indexed) > PARALLEL_MIN_FILES
    assert {"Bad/outside.md", "Bad/dangling.md", "Bad/loop"} <= skipped
