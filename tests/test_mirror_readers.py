"""Other processes reading the DuckDB mirror while ccc-watch keeps it up to date.

ccc-watch never opens mirror.duckdb for writing: a flush applies the changes to a
private working file and renames it over mirror.duckdb. So any process may open the
mirror read-only with plain DuckDB (no ccc_watch import) and keep its connection as
long as it likes: flushes go on publishing, its view stays the file it opened, and a
new connection sees the newest file. Readers and holders here are real subprocesses
driven over stdin/stdout, and the daemon test runs the real daemon. Another program
that holds the file read-write makes readers retry (Mirror.connect). The last test
reads a mirror with DuckDB 1.4 LTS, installed into a virtualenv of its own (skipped
offline).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import own_vault
from daemon_harness import start_daemon
from records import make_record

from ccc_watch.mirror.mirror import COPY_SPACING, LOCK_FILE, WORK_FILE, Mirror, MirrorBusyError
from ccc_watch.mirror.sql import run_query
from ccc_watch.store import MIRROR_FILE, Delete, Move, Store, Upsert, open_store

WORKER = Path(__file__).resolve().parent / "workers" / "mirror_worker.py"

# --- plain-duckdb child processes (they never import ccc_watch) ------------------

# Opens the mirror read-only, prints what it sees as one JSON object, and proves that
# it is a plain DuckDB reader: no ccc_watch module, writes refused.
SNAPSHOT_READER = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
def one(sql):
    return con.execute(sql).fetchall()[0][0]
out = {
    "watermark": one("SELECT watermark FROM mirror_state"),
    "state_rows": one("SELECT count(*) FROM mirror_state"),
    "notes": one("SELECT count(*) FROM notes"),
    "distinct_paths": one("SELECT count(DISTINCT path) FROM notes"),
    "events": one("SELECT count(*) FROM events"),
    "max_event_seq": one("SELECT coalesce(max(seq), 0) FROM events"),
    "blake3": dict(con.execute("SELECT path, blake3 FROM notes").fetchall()),
    "links": one("SELECT count(*) FROM links"),
    "dangling": {
        "links": one("SELECT count(*) FROM links WHERE source NOT IN (SELECT path FROM notes)"),
        "tags": one("SELECT count(*) FROM tags WHERE path NOT IN (SELECT path FROM notes)"),
        "properties": one(
            "SELECT count(*) FROM properties WHERE path NOT IN (SELECT path FROM notes)"
        ),
        "tasks": one("SELECT count(*) FROM tasks WHERE path NOT IN (SELECT path FROM notes)"),
    },
}
try:
    con.execute("DELETE FROM notes")
    out["write"] = "allowed"
except duckdb.Error as e:
    out["write"] = type(e).__name__
con.close()
out["ccc_watch_imported"] = any(m.split(".")[0] == "ccc_watch" for m in sys.modules)
print(json.dumps(out))
"""

# Keeps a read-only connection (and so DuckDB's shared lock) open; obeys stdin:
# "read" prints the watermark and note count it sees, "close" closes the connection,
# "exit" (or end of input) ends the process.
HOLDING_READER = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "read":
        w = con.execute("SELECT watermark FROM mirror_state").fetchall()[0][0]
        n = con.execute("SELECT count(*) FROM notes").fetchall()[0][0]
        print(json.dumps({"watermark": w, "notes": n}), flush=True)
    elif cmd == "close":
        con.close()
        print("closed", flush=True)
    elif cmd == "exit":
        break
"""

# Plays another program (an older ccc-watch, a tool) that attaches the file read-write
# (DuckDB's exclusive lock): says "held",
# holds it for argv[2] seconds or until a line arrives on stdin, then detaches.
WRITE_HOLDER = r"""
import select, sys
import duckdb
path, hold = sys.argv[1], float(sys.argv[2])
con = duckdb.connect()
con.execute("ATTACH '" + path.replace("'", "''") + "' AS held")
print("held", flush=True)
select.select([sys.stdin], [], [], hold)
con.execute("DETACH held")
con.close()
print("released", flush=True)
"""

# Everything a reader of the mirror can query, each table and view in a stable order,
# as JSON (values that JSON lacks, such as timestamps, as str()).
FULL_READER = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
def rows(name):
    cur = con.execute(f"SELECT * FROM {name} ORDER BY ALL")
    names = [d[0] for d in cur.description]
    return {"columns": names, "rows": cur.fetchall()}
tables = ["notes", "links", "tags", "properties", "tasks", "headings", "events", "mirror_state"]
views = ["link_keys", "resolved_links", "broken_links", "backlinks", "orphans", "tag_counts"]
out = {
    "version": duckdb.__version__,
    "tables": {t: rows(t) for t in tables},
    "views": {v: rows(v) for v in views},
    "catalog": sorted(
        con.execute(
            "SELECT table_name, table_type FROM information_schema.tables"
        ).fetchall()
    ),
}
print(json.dumps(out, default=str))
"""


class Child:
    """A child process driven line by line: send() writes to its stdin, line() waits
    (with a timeout) for the next line of its stdout."""

    def __init__(self, script: str, *args: str | Path, python: str | Path = sys.executable):
        self.proc = subprocess.Popen(
            [str(python), "-c", script, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def line(self, timeout: float = 30.0) -> str:
        try:
            got = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"child said nothing for {timeout} s")
        if got is None:
            _, err = self.proc.communicate(timeout=10)
            pytest.fail(f"child exited with {self.proc.returncode}; stderr:\n{err}")
        return got

    def expect(self, expected: str, timeout: float = 30.0) -> None:
        got = self.line(timeout)
        assert got == expected, got

    def finish(self, timeout: float = 30.0) -> None:
        """Close its stdin and require a clean exit."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        assert rc == 0, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Child processes a test started; killed at teardown if still running."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def run_json(python: str | Path, script: str, *args: str | Path) -> Any:
    proc = subprocess.run(
        [str(python), "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --- stores and mirrors --------------------------------------------------------


def note(i: int, **fields: Any) -> dict[str, Any]:
    """A note record (kind 'note', so the orphans view sees it)."""
    return make_record(i, kind="note", name=f"Note {i}.md", extension="md", **fields)


def fill(store: Store, n: int) -> None:
    """n notes, each linking to the next (the last link is broken), plus two notes
    that link nowhere and that nothing links to (orphans)."""
    store.apply([Upsert(note(i)) for i in range(n)])
    store.apply([Upsert(note(900 + k, links=[], tags=["lonely"])) for k in range(2)])


def churn(store: Store, round_no: int) -> None:
    """One batch of edits: changed contents, a delete and a move."""
    base = 10 * round_no
    ops: list[Upsert | Delete | Move] = [
        Upsert(note(i, content=f"round {round_no} of note {i}")) for i in range(base, base + 5)
    ]
    ops.append(Delete(note(base + 5)["path"]))
    ops.append(Move(note(base + 6)["path"], f"Moved/Note {base + 6} r{round_no}.md"))
    assert store.apply(ops)


def store_blake3(store: Store) -> dict[str, str]:
    return {r["path"]: r["blake3"] for r in store.records()}


def mirror_state(mirror: Mirror) -> tuple[int, dict[str, str]]:
    """(watermark, path -> blake3) as the mirror holds them, read in this process."""
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        watermark = con.execute("SELECT watermark FROM mirror_state").fetchall()[0][0]
        rows = con.execute("SELECT path, blake3 FROM notes").fetchall()
    return int(watermark), dict(rows)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Store, Mirror, Path]]:
    """A writable redb store with 50 notes (plus two orphans), its mirror built by a
    first flush, and the vault folder (empty; outside the data dir)."""
    vault = tmp_path / "vault"
    vault.mkdir()
    data_dir = tmp_path / "data"
    store = open_store(data_dir, vault_root=vault)
    fill(store, 50)
    mirror = Mirror(data_dir)
    assert mirror.flush(store).rebuilt
    yield store, mirror, vault
    store.close()


def check_consistent(seen: dict[str, Any], store: Store) -> None:
    """What a plain-duckdb reader saw matches the store, and the mirror's tables
    agree with each other."""
    assert seen["ccc_watch_imported"] is False
    assert seen["write"] != "allowed"
    assert seen["state_rows"] == 1
    assert seen["notes"] == seen["distinct_paths"] == len(store)
    assert seen["blake3"] == store_blake3(store)
    assert seen["watermark"] == store.head()
    assert seen["events"] == seen["max_event_seq"] == store.head()
    assert seen["links"] > 0
    assert seen["dangling"] == {"links": 0, "tags": 0, "properties": 0, "tasks": 0}


# --- 1. a plain duckdb reader -------------------------------------------------


def test_plain_duckdb_reader_sees_a_rebuilt_mirror_consistent(
    setup: tuple[Store, Mirror, Path],
) -> None:
    """Another process with only `duckdb` (no ccc_watch import) opens the freshly built
    mirror read-only: one note row per store record, with the store's blake3s, the
    watermark and the events at the store's head, every links.source (and every
    tags/properties/tasks path) a note, and its write refused."""
    store, mirror, _ = setup
    seen = run_json(sys.executable, SNAPSHOT_READER, mirror.path)
    check_consistent(seen, store)
    assert seen["notes"] == 52


def test_plain_duckdb_reader_sees_a_flushed_mirror_consistent(
    setup: tuple[Store, Mirror, Path],
) -> None:
    """After flushes that applied edits, deletes and moves (incremental, not rebuilds),
    a plain-duckdb reader still sees exactly the store: no links, tags, properties or
    tasks left behind by a deleted or moved note."""
    store, mirror, _ = setup
    for round_no in range(3):
        churn(store, round_no)
        result = mirror.flush(store)
        assert not result.rebuilt
        assert result.watermark == store.head()
    seen = run_json(sys.executable, SNAPSHOT_READER, mirror.path)
    check_consistent(seen, store)
    assert seen["notes"] == 52 - 3


# --- 2. a reader holding the file never stalls a flush ----------------------------


def names_in(data_dir: Path) -> list[str]:
    """The files of a data dir, sorted."""
    return sorted(p.name for p in data_dir.iterdir())


SETTLED = sorted(["index.redb", LOCK_FILE, MIRROR_FILE, WORK_FILE])  # after a flush: no temp file


def test_a_flush_publishes_while_a_reader_holds_the_mirror(
    setup: tuple[Store, Mirror, Path], children: list[Child]
) -> None:
    """While another process keeps a read-only DuckDB connection open on mirror.duckdb,
    every flush succeeds and publishes the store's head: a new plain-duckdb reader sees
    exactly the store, and the holding reader keeps the file it opened, unchanged. The
    first flush copies the published file to make the working file (there is none
    yet); the second copies again, because the working file is then the one the
    reader holds; the third finds the working file free and copies nothing."""
    store, mirror, _ = setup
    before = mirror_state(mirror)
    reader = Child(HOLDING_READER, mirror.path)
    children.append(reader)
    reader.expect("open")
    copies = []
    for round_no in range(3):
        head = store.head()
        churn(store, round_no)
        result = mirror.flush(store)
        assert (result.rebuilt, result.applied, result.watermark, result.deferred) == (
            False, 7, head + 7, 0.0,
        )  # fmt: skip
        copies.append(result.copied)
        check_consistent(run_json(sys.executable, SNAPSHOT_READER, mirror.path), store)
        reader.send("read")
        assert json.loads(reader.line()) == {"watermark": before[0], "notes": 52}
    assert copies == [True, True, False]
    assert mirror_state(mirror) == (store.head(), store_blake3(store))
    assert names_in(mirror.path.parent) == SETTLED
    reader.send("close")
    reader.expect("closed")
    reader.finish()


def test_readers_that_keep_pinning_the_working_file_get_a_copy_every_few_seconds(
    setup: tuple[Store, Mirror, Path], children: list[Child]
) -> None:
    """Each reader here opens the published file and holds it, so at the next flush but
    one the working file is held again. A copy made for that reason is followed by no
    other for COPY_SPACING seconds: a flush meanwhile publishes nothing and says how
    long to wait (deferred), applying nothing; after that wait it copies and publishes.
    Every reader keeps its own consistent view throughout."""
    store, mirror, _ = setup
    readers: list[tuple[Child, int]] = []

    def pin() -> None:  # a new reader holding the file published now
        reader = Child(HOLDING_READER, mirror.path)
        children.append(reader)
        reader.expect("open")
        readers.append((reader, mirror_state(mirror)[0]))

    pin()
    churn(store, 0)
    first = mirror.flush(store)  # makes the working file: not a reader's doing
    assert first.copied and not first.deferred
    pin()
    churn(store, 1)
    second = mirror.flush(store)  # the working file is the first reader's
    assert second.copied and not second.deferred and second.watermark == store.head()
    published = second.watermark
    pin()
    churn(store, 2)
    third = mirror.flush(store)  # the second reader's, and the last copy was just now
    assert 0 < third.deferred <= COPY_SPACING
    assert (third.applied, third.watermark, third.copied) == (0, published, False)
    assert mirror_state(mirror)[0] == published
    time.sleep(third.deferred)
    fourth = mirror.flush(store)
    assert fourth.copied and not fourth.deferred
    assert (fourth.applied, fourth.watermark) == (store.head() - published, store.head())
    assert mirror_state(mirror) == (store.head(), store_blake3(store))
    for reader, watermark in readers:
        reader.send("read")
        assert json.loads(reader.line())["watermark"] == watermark
        reader.finish()
    assert names_in(mirror.path.parent) == SETTLED


CRASH_STEPS = ["copy", "link", "replace", "old"]


@pytest.mark.parametrize("step", CRASH_STEPS)
def test_a_flush_killed_mid_publish_leaves_a_whole_published_mirror(
    setup: tuple[Store, Mirror, Path], children: list[Child], step: str
) -> None:
    """A flushing process SIGKILLed at each step of making and publishing the working
    file (half way through copying it; before the hard link that keeps the published
    file as the next working file; before the rename that publishes; before the old
    file takes the working file's name), while a reader holds mirror.duckdb: the reader
    keeps reading its view, and mirror.duckdb opens as a whole, consistent mirror at
    the old watermark, or (killed after the rename) at the store's head. The next flush
    publishes the head and leaves no temp file behind."""
    store, mirror, _ = setup
    if step != "copy":  # a working file exists: the crash is in the publish itself
        churn(store, 0)
        mirror.flush(store)
    old = mirror_state(mirror)
    reader = Child(HOLDING_READER, mirror.path)
    children.append(reader)
    reader.expect("open")
    churn(store, 1)
    proc = subprocess.run(
        [sys.executable, str(WORKER), "crash", str(mirror.path.parent), step],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.splitlines() == ["start", f"dying at {step}"]
    seen = run_json(sys.executable, SNAPSHOT_READER, mirror.path)
    if step == "old":
        check_consistent(seen, store)
    else:
        assert (seen["watermark"], seen["blake3"]) == old
    assert seen["events"] == seen["max_event_seq"] == seen["watermark"]
    assert seen["dangling"] == {"links": 0, "tags": 0, "properties": 0, "tasks": 0}
    left = [name for name in names_in(mirror.path.parent) if name.startswith(".")]
    assert bool(left) == (step != "link"), left  # a half copy, or the old file's link
    reader.send("read")
    assert json.loads(reader.line()) == {"watermark": old[0], "notes": len(old[1])}
    result = mirror.flush(store)
    assert result.watermark == store.head() and not result.rebuilt
    check_consistent(run_json(sys.executable, SNAPSHOT_READER, mirror.path), store)
    # Killed after publishing, the old file's link was a temp: the working file comes
    # back (a copy) with the next change.
    assert names_in(mirror.path.parent) == [n for n in SETTLED if step != "old" or n != WORK_FILE]
    churn(store, 2)
    assert mirror.flush(store).watermark == store.head()
    assert names_in(mirror.path.parent) == SETTLED
    reader.finish()


# --- 2b. the daemon, readers and a churn -------------------------------------------

# A plain-duckdb reader for the daemon test: keeps one read-only connection for `hop`
# seconds (0: for its whole life), querying it in a loop; every error is kept, and so
# is each connection's first view and any view that differs from it on the same
# connection. Prints 'ready' once connected; on end of input, a JSON summary.
LOOP_READER = r"""
import json, select, sys, time
import duckdb
path, hop = sys.argv[1], float(sys.argv[2])
def view(con):
    def one(sql):
        return con.execute(sql).fetchall()[0][0]
    return {
        "watermark": one("SELECT watermark FROM mirror_state"),
        "notes": one("SELECT count(*) FROM notes"),
        "distinct_paths": one("SELECT count(DISTINCT path) FROM notes"),
        "events": one("SELECT count(*) FROM events"),
        "max_event_seq": one("SELECT coalesce(max(seq), 0) FROM events"),
        "dangling_links": one(
            "SELECT count(*) FROM links WHERE source NOT IN (SELECT path FROM notes)"
        ),
    }
views, changed, errors, queries = [], [], [], 0
con, opened = None, 0.0
while True:
    try:
        if con is None:
            con = duckdb.connect(path, read_only=True)
            opened = time.monotonic()
            views.append(view(con))
            if len(views) == 1:
                print("ready", flush=True)
        seen = view(con)
        queries += 1
        if seen != views[-1]:
            changed.append([views[-1], seen])
        if hop and time.monotonic() - opened >= hop:
            con.close()
            con = None
    except Exception as e:
        errors.append(f"{type(e).__name__}: {e}")
        con = None
        time.sleep(0.05)
    if select.select([sys.stdin], [], [], 0.01)[0]:
        break
print(json.dumps({"views": views, "changed": changed, "errors": errors, "queries": queries}))
"""


def fresh_view(path: Path) -> tuple[int, set[str]]:
    """(watermark, paths) through a new read-only connection, as a notebook opens one."""
    with duckdb.connect(str(path), read_only=True) as con:
        watermark = con.execute("SELECT watermark FROM mirror_state").fetchall()[0][0]
        paths = {p for (p,) in con.execute("SELECT path FROM notes").fetchall()}
    return int(watermark), paths


def summary(reader: Child) -> dict[str, Any]:
    assert reader.proc.stdin is not None
    reader.proc.stdin.close()
    out: dict[str, Any] = json.loads(reader.line(timeout=60))
    assert reader.proc.wait(timeout=30) == 0
    return out


@pytest.mark.timeout(300)
def test_readers_never_stall_the_daemons_mirror(tmp_path: Path, children: list[Child]) -> None:
    """The daemon runs; one reader process holds a read-only connection on mirror.duckdb
    for the whole test and another reconnects every 1.5 s, both querying in a loop,
    while a churn adds, edits and deletes notes. Every reader query succeeds and each
    connection's view never changes under it and is consistent (one row per path,
    events 1..watermark, no dangling links); new connections (this test's, once per
    change) see each new note within 10 s (a few seconds even on a busy machine) and
    never fail; the published watermark advances; `status` stays Healthy; no flush
    fails (the log says so); at the end the mirror equals the store (verify --deep)."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=150, seed=11, bad=False)
    d = start_daemon(tmp_path, vault)
    published = d.data / MIRROR_FILE
    try:
        holder = Child(LOOP_READER, published, "0")
        hopper = Child(LOOP_READER, published, "1.5")
        children += [holder, hopper]
        holder.expect("ready")
        hopper.expect("ready")
        start = fresh_view(published)[0]
        notes = sorted(p for p in vault.rglob("*.md") if ".obsidian" not in p.parts)
        latencies, health = [], []
        for i in range(16):
            added = f"churn/new {i}.md"
            (vault / "churn").mkdir(exist_ok=True)
            (vault / added).write_text(f"# new {i}\n\n[[{notes[i].stem}]] #churn\n")
            with notes[i].open("a") as f:
                f.write(f"\nedited in round {i}\n")
            if i % 4 == 3:
                (vault / f"churn/new {i - 2}.md").unlink()
            saved = time.monotonic()
            deadline = saved + 10  # ~1.3 s at p99 (bench/mirror_readers_bench.py): load
            while added not in fresh_view(published)[1]:
                assert time.monotonic() < deadline, f"{added} not visible after 10 s"
                time.sleep(0.05)
            latencies.append(time.monotonic() - saved)
            if i % 4 == 0:
                status = d.status()
                health.append((status["state"], status["health"], status["reason"]))
        d.settle()
        final = fresh_view(published)[0]
    finally:
        code = d.stop()
    assert code == 0
    held, hopped = summary(holder), summary(hopper)
    for name, got in (("holder", held), ("hopper", hopped)):
        assert got["errors"] == [], (name, got["errors"][:5])
        assert got["changed"] == [], (name, got["changed"][:2])
        assert got["queries"] > 50, (name, got["queries"])
        for v in got["views"]:
            assert v["notes"] == v["distinct_paths"], (name, v)
            assert v["events"] == v["max_event_seq"] == v["watermark"], (name, v)
            assert v["dangling_links"] == 0, (name, v)
    assert len(held["views"]) == 1  # one connection, one view: the file it opened
    assert held["views"][0]["watermark"] <= start
    marks = [v["watermark"] for v in hopped["views"]]
    assert marks == sorted(marks) and len(set(marks)) >= 3, marks
    assert final > start
    assert all(h[:2] == ("watching", "Healthy") for h in health), health
    log = d.log.read_text(errors="replace")
    assert "mirror flush" not in log and "mirror-lag" not in log, log[-3000:]
    assert max(latencies) < 10, latencies


# --- 3. another program holding the file read-write makes readers retry ---------


def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment without CCC_WATCH_* and with config/data dirs in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        path = tmp_path / name.lower()
        path.mkdir(exist_ok=True)
        env[name] = str(path)
    return env


def cli_sql(
    vault: Path, mirror: Mirror, env: dict[str, str], query: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "ccc_watch.cli"),
            *("--vault", str(vault), "--data-dir", str(mirror.path.parent)),
            *("sql", query),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_holder(mirror: Mirror, children: list[Child]) -> Child:
    """A child attaches the mirror read-write, as an older ccc-watch's flush did, and holds it until
    told (a line on its stdin; at most 60 s); returns once it holds the lock (checked:
    a read-only open fails at once)."""
    holder = Child(WRITE_HOLDER, mirror.path, "60")
    children.append(holder)
    holder.expect("held")
    with pytest.raises(MirrorBusyError):
        mirror.connect(retry_seconds=0)
    return holder


def release_after(holder: Child, seconds: float) -> threading.Timer:
    """Tell the holder to let go `seconds` from now (from another thread)."""
    timer = threading.Timer(seconds, holder.send, args=("go",))
    timer.start()
    return timer


class ShortRetryMirror(Mirror):
    """run_query() calls mirror.connect() with its default window and takes no window
    of its own; this subclass only shortens that default."""

    window = 1.0

    def connect(
        self, retry_seconds: float | None = None, allow_files: Sequence[Path] = ()
    ) -> duckdb.DuckDBPyConnection:
        return super().connect(self.window if retry_seconds is None else retry_seconds, allow_files)


def test_a_read_write_hold_on_the_mirror_makes_flushes_busy_not_failed(
    setup: tuple[Store, Mirror, Path], children: list[Child]
) -> None:
    """A program that opens mirror.duckdb read-write (not as the README says) is the one
    thing that stops a flush: MirrorBusyError (the flusher retries soon, it does not
    count as damage or rebuild anything), saying to open it read-only. Once it lets go,
    the next flush publishes."""
    store, mirror, _ = setup
    holder = start_holder(mirror, children)
    churn(store, 0)
    with pytest.raises(MirrorBusyError, match="open it read-only") as info:
        mirror.flush(store)
    assert str(mirror.path) in str(info.value)
    holder.send("go")
    holder.expect("released")
    result = mirror.flush(store)
    assert (result.rebuilt, result.watermark) == (False, store.head())
    assert mirror_state(mirror) == (store.head(), store_blake3(store))


def test_cli_sql_waits_out_a_short_write_hold(
    setup: tuple[Store, Mirror, Path], children: list[Child], tmp_path: Path
) -> None:
    """`ccc-watch sql "SELECT count(*) FROM notes"`, started while another process
    holds the file read-write, and the hold released 1 s later (longer than the CLI
    takes to start, so it meets the lock), succeeds after the hold ends and prints the
    count."""
    store, mirror, vault = setup
    env = cli_env(tmp_path)
    holder = start_holder(mirror, children)
    started = time.monotonic()
    timer = release_after(holder, 1.0)
    proc = cli_sql(vault, mirror, env, "SELECT count(*) FROM notes")
    took = time.monotonic() - started
    timer.join()
    holder.expect("released")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].strip() == "count_star()"
    assert lines[2].strip() == str(len(store)) == "52"
    assert lines[-1] == "(1 row)"
    assert 1.0 <= took < 5, took  # answered after the release, within the window


def test_run_query_retries_through_a_half_second_write_hold(
    setup: tuple[Store, Mirror, Path], children: list[Child]
) -> None:
    """run_query() (what `ccc-watch sql` calls) on a mirror that another process holds
    read-write for 0.5 s more returns the right answer after the hold, not an error."""
    store, mirror, _ = setup
    holder = start_holder(mirror, children)
    started = time.monotonic()
    timer = release_after(holder, 0.5)
    out = run_query(mirror, "SELECT count(*) AS n FROM notes", "json")
    took = time.monotonic() - started
    timer.join()
    holder.expect("released")
    assert json.loads(out) == [{"n": len(store)}]
    assert 0.5 <= took < 5, took


def test_run_query_gives_up_after_its_retry_window(
    setup: tuple[Store, Mirror, Path], children: list[Child]
) -> None:
    """When a hold outlasts the retry window (1 s here, through a Mirror whose
    connect() defaults to it: run_query() takes no window of its own), run_query()
    raises MirrorBusyError with one line that says the mirror stayed locked for 1 s and
    names the file; it gave up at the window's end. After the hold it reads again."""
    store, mirror, _ = setup
    short = ShortRetryMirror(mirror.path.parent)
    holder = start_holder(mirror, children)
    started = time.monotonic()
    with pytest.raises(MirrorBusyError) as info:
        run_query(short, "SELECT count(*) FROM notes")
    took = time.monotonic() - started
    holder.send("go")
    holder.expect("released")
    assert str(info.value) == f"the mirror stayed locked for 1 s: {mirror.path}"
    assert 1.0 <= took < 5, took
    out = run_query(short, "SELECT count(*) AS n FROM notes", "json")
    assert json.loads(out) == [{"n": len(store)}]


def test_cli_sql_fails_with_one_line_when_the_hold_outlasts_5_s(
    setup: tuple[Store, Mirror, Path], children: list[Child], tmp_path: Path
) -> None:
    """`ccc-watch sql` (default 5 s window; the command line has no way to change it)
    against a file held longer (the holder lets go as soon as the CLI has answered, so
    the test takes ~6 s): exit 1, nothing on stdout, one stderr line saying the mirror
    stayed locked for 5 s, naming the file."""
    _, mirror, vault = setup
    env = cli_env(tmp_path)
    holder = start_holder(mirror, children)
    started = time.monotonic()
    proc = cli_sql(vault, mirror, env, "SELECT count(*) FROM notes")
    took = time.monotonic() - started
    holder.send("go")
    holder.expect("released")
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0] == f"ccc-watch: the mirror stayed locked for 5 s: {mirror.path}"
    assert 5 <= took < 30, took


# --- 4. DuckDB 1.4 LTS reads what this DuckDB writes ----------------------------


@pytest.fixture(scope="session")
def duckdb14(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv with duckdb 1.4.x (the LTS) installed, and pytz,
    which its Python client needs to hand over a TIMESTAMPTZ (README "The DuckDB
    mirror"); the test skips when they cannot be installed (no network, no wheel)."""
    venv = tmp_path_factory.mktemp("duckdb14") / "venv"
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120
        )
        python = venv / "bin" / "python"
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "duckdb>=1.4,<1.5", "pytz"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (subprocess.SubprocessError, OSError) as e:
        pytest.skip(f"cannot set up a virtualenv with duckdb 1.4: {e}")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"pip install duckdb>=1.4,<1.5 failed (offline?): {last}")
    return python


@pytest.mark.timeout(600)
def test_duckdb_1_4_reads_a_fresh_mirror(setup: tuple[Store, Mirror, Path], duckdb14: Path) -> None:
    """DuckDB 1.4.x, in a virtualenv of its own, opens a freshly built mirror
    read-only and reads every row of notes, links, tags, properties, tasks, events and
    mirror_state, and every view, exactly as the DuckDB that wrote it does; the views
    give the expected answers (the last note's link is broken, the two link-less notes
    are orphans, the nested tag's parent is counted as implied)."""
    store, mirror, _ = setup
    mirror.rebuild(store)  # freshly built, not just flushed once
    old = run_json(duckdb14, FULL_READER, mirror.path)
    new = run_json(sys.executable, FULL_READER, mirror.path)
    assert old["version"].startswith("1.4."), old["version"]
    assert new["version"] == duckdb.__version__
    assert old["catalog"] == new["catalog"]
    assert old["tables"] == new["tables"]
    assert old["views"] == new["views"]

    tables, views = old["tables"], old["views"]
    assert len(tables["notes"]["rows"]) == len(store) == 52
    assert len(tables["links"]["rows"]) == 50
    assert len(tables["tasks"]["rows"]) == 52
    assert len(tables["events"]["rows"]) == store.head()
    assert tables["mirror_state"]["rows"][0][0] == store.head()
    # 50 notes with tags a, b/c and implied b; 2 with 'lonely'
    assert len(tables["tags"]["rows"]) == 50 * 3 + 2

    def column(view: str, name: str) -> list[Any]:
        i = views[view]["columns"].index(name)
        return [row[i] for row in views[view]["rows"]]

    assert column("broken_links", "target") == ["Note 50"]
    assert column("broken_links", "source") == ["Folder 0/Note 49.md"]
    assert sorted(column("orphans", "path")) == ["Folder 4/Note 900.md", "Folder 5/Note 901.md"]
    backlinks = set(
        zip(column("backlinks", "path"), column("backlinks", "linked_from"), strict=True)
    )
    assert ("Folder 1/Note 1.md", "Folder 0/Note 0.md") in backlinks
    assert len(backlinks) == 49
    counts = {row[0]: row[1:] for row in views["tag_counts"]["rows"]}
    assert counts == {"a": [50, True], "b/c": [50, True], "b": [50, False], "lonely": [2, True]}
    assert len(views["resolved_links"]["rows"]) == 50
    assert ["Folder 3/Note 3.md", "note 3"] in views["link_keys"]["rows"]


@pytest.mark.timeout(600)
def test_duckdb_1_4_reads_a_mirror_after_incremental_flushes(
    setup: tuple[Store, Mirror, Path], duckdb14: Path
) -> None:
    """A mirror that this DuckDB has since flushed incrementally (edits, deletes and
    moves, each flush attaching the file again) is still readable by DuckDB 1.4.x,
    which sees exactly what this DuckDB sees and what the store holds."""
    store, mirror, _ = setup
    for round_no in range(3):
        churn(store, round_no)
        assert not mirror.flush(store).rebuilt
    old = run_json(duckdb14, FULL_READER, mirror.path)
    new = run_json(sys.executable, FULL_READER, mirror.path)
    assert old["version"].startswith("1.4."), old["version"]
    assert old["tables"] == new["tables"]
    assert old["views"] == new["views"]
    notes = old["tables"]["notes"]
    path_col = notes["columns"].index("path")
    assert {row[path_col] for row in notes["rows"]} == set(store_blake3(store))
    assert old["tables"]["mirror_state"]["rows"][0][0] == store.head()
    assert len(old["tables"]["events"]["rows"]) == store.head()
