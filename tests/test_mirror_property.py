"""Property and crash tests of the DuckDB mirror against a real redb store (I2, I3, I6).

Everything is real: a redb store opened with open_store() in a temporary folder, the
DuckDB file written by Mirror, and, for the kill -9 runs, a second Python process
(tests/workers/mirror_worker.py) that flushes while the parent SIGKILLs it.

The oracle is independent of ccc_watch.mirror.mirror.Rows: the expected rows of every table
are computed here from the store's records and changelog, then compared with what
DuckDB returns.
"""

from __future__ import annotations

import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from records import make_record

from ccc_watch.mirror.mirror import LOCK_FILE, MIRROR_FILE, WORK_FILE, Mirror, mirror_rows
from ccc_watch.store import Change, Delete, Move, Operation, Record, Store, Upsert, open_store

WORKER = Path(__file__).resolve().parent / "workers" / "mirror_worker.py"
PRIVATE = frozenset({"CONFIDENTIAL", "SECRET"})


# --- the oracle -------------------------------------------------------------------------

Row = tuple[Any, ...]


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _parents(tag: str) -> set[str]:
    """'a/b/c' -> {'a', 'a/b'}."""
    out = set()
    while "/" in tag:
        tag = tag.rsplit("/", 1)[0]
        out.add(tag)
    return out


def _sorted(rows: Iterable[Row]) -> list[Row]:
    return sorted(rows, key=repr)


def _path_type(path: str) -> str:
    """README "What gets indexed": the record type a path alone gives, first match wins."""
    lower = path.lower()
    for record_type, pattern in (
        ("Template", r"templates?"),
        ("Log", r"(?<![a-z])logs?(?![a-z])"),
        ("AgentPrompt", r"prompts?"),
        ("StructuredData", r"\.(json|yaml|yml)$"),
        ("Index", r"(^|/)(index|_index|moc)\.md$"),
    ):
        if re.search(pattern, lower):
            return record_type
    return "Metadata"


def expected_tables(
    records: Mapping[str, Record], changes: Sequence[Change], watermark: int, store_id: str
) -> dict[str, list[Row]]:
    """The rows each mirror table must hold for these records and changelog entries."""
    notes: list[Row] = []
    links: list[Row] = []
    tags: list[Row] = []
    properties: list[Row] = []
    tasks: list[Row] = []
    for path, rec in records.items():
        assert rec["path"] == path
        classification = rec.get("classification")
        if classification in PRIVATE:  # README "Privacy": no text; SECRET not even shape
            secret = classification == "SECRET"
            rec = dict(rec, tags=[], links=[], frontmatter={}, body=None, tasks=[] if secret
                       else [dict(t, text=None) for t in rec.get("tasks") or []])  # fmt: skip
            if secret:
                rec["record_type"] = _path_type(path)
        notes.append((
            path, rec["id"], path.rpartition("/")[0], rec.get("blake3"), rec.get("size"),
            classification, rec.get("record_type"), rec.get("mtime_ns"),
            tuple(rec.get("tags") or []), rec.get("body"),
        ))  # fmt: skip
        for no, link in enumerate(rec.get("links") or []):
            links.append((
                path, no, link.get("target"), link.get("kind"), link.get("alias"),
                link.get("heading"), link.get("block"), link.get("line"),
            ))  # fmt: skip
        explicit = set(rec.get("tags") or [])
        # A parent is implied once, and not when the note has it in any case (README
        # "Dataview's fields"): of spellings differing in case, the first in sort order.
        implied: set[str] = set()
        for parent in sorted(set().union(*map(_parents, explicit))):
            if parent.lower() not in {t.lower() for t in explicit | implied}:
                implied.add(parent)
        tags += [(path, t, True) for t in explicit] + [(path, t, False) for t in implied]
        for key, value in (rec.get("frontmatter") or {}).items():
            properties.append((path, key, _json(value)))
        for task in rec.get("tasks") or []:
            tasks.append((path, task.get("line"), task.get("done"), task.get("text")))
    events = [
        (c.seq, c.op, c.path, c.prev_path, c.id, c.blake3_before, c.blake3_after, c.cause)
        for c in changes
    ]
    return {
        "notes": _sorted(notes),
        "links": _sorted(links),
        "tags": _sorted(tags),
        "properties": _sorted(properties),
        "tasks": _sorted(tasks),
        "events": _sorted(events),
        "mirror_state": [(watermark, store_id)],
    }


_QUERIES = {
    "notes": "SELECT path, id, folder, blake3, size, classification, record_type, mtime_ns, "
    "tags, body FROM notes",
    "links": "SELECT source, link_no, target, kind, alias, heading, block, line FROM links",
    "tags": "SELECT path, tag, explicit FROM tags",
    "properties": "SELECT path, key, value FROM properties",
    "tasks": "SELECT path, line, done, text FROM tasks",
    "events": "SELECT seq, op, path, prev_path, id, blake3_before, blake3_after, cause FROM events",
    "mirror_state": "SELECT watermark, store_id FROM mirror_state",
}


def mirror_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[Row]]:
    """The same columns as expected_tables(), read from the mirror."""
    out: dict[str, list[Row]] = {}
    for table, sql in _QUERIES.items():
        rows = [tuple(r) for r in con.execute(sql).fetchall()]
        if table == "notes":
            rows = [(*r[:8], tuple(r[8]), r[9]) for r in rows]
        elif table == "properties":
            rows = [(p, k, _json(orjson.loads(v))) for p, k, v in rows]
        out[table] = rows if table == "mirror_state" else _sorted(rows)
    return out


def assert_consistent(con: duckdb.DuckDBPyConnection) -> int:
    """The structural half of I2/I6: one mirror_state row, no path twice in notes, and
    `events` holding each sequence 1..watermark exactly once. Returns the watermark."""
    states = con.execute("SELECT watermark FROM mirror_state").fetchall()
    assert len(states) == 1, f"mirror_state has {len(states)} rows"
    watermark = int(states[0][0])
    dup = con.execute("SELECT path FROM notes GROUP BY path HAVING count(*) > 1").fetchall()
    assert dup == [], f"paths twice in notes: {dup}"
    seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq").fetchall()]
    assert seqs == list(range(1, watermark + 1)), (
        f"events is not 1..{watermark} once each: {len(seqs)} rows, "
        f"duplicates {sorted({s for s in seqs if seqs.count(s) > 1})[:10]}"
    )
    return watermark


def assert_mirror_matches(
    mirror: Mirror,
    records: Mapping[str, Record],
    changes: Sequence[Change],
    watermark: int,
    store_id: str,
) -> None:
    """The mirror holds exactly these records, these changelog entries and this
    watermark (every column the oracle knows, table by table)."""
    with mirror.connect() as con:
        assert assert_consistent(con) == watermark
        got = mirror_tables(con)
    want = expected_tables(records, changes, watermark, store_id)
    for table in want:
        assert got[table] == want[table], f"mirror table {table} differs from the store"


def assert_mirror_equals_store(mirror: Mirror, store: Store) -> None:
    """I2: the mirror equals the store, and its watermark is the store's head."""
    with store.snapshot() as snap:
        records = {r["path"]: r for r in snap.records()}
        changes = snap.changes_after(0)
        head = snap.head()
    assert [c.seq for c in changes] == list(range(1, head + 1))
    assert_mirror_matches(mirror, records, changes, head, store.meta["store_id"])


def dump_everything(mirror: Mirror) -> dict[str, list[Any]]:
    """Every column of every table, timestamps included, in a stable order."""
    with mirror.connect() as con:
        return {t: _sorted(tuple(r.items()) for r in mirror_rows(con, t)) for t in _QUERIES}


# --- 1. the property test ---------------------------------------------------------------

PATHS = [
    "a.md",
    "B note.md",
    "Cafe\u0301.md",  # NFD: the store keys it as NFC 'Café.md'
    "it's.md",  # a quote, for any SQL built by string
    "Folder/c.md",
    "Folder/Sub/d.md",  # a nested folder
    "日本語/ノート.md",
    "x/y/z/deep.md",
]
TAGS = ["a", "a/b", "a/b/c", "b", "x/y", "ü/ñ", "project/2024", "A/B/d", "Ü/x"]
TEXT = st.text(max_size=12)

LINKS = st.lists(
    st.fixed_dictionaries(
        {"target": TEXT, "kind": st.sampled_from(["wikilink", "markdown", "embed"])},
        optional={
            "alias": TEXT,
            "heading": TEXT,
            "block": TEXT,
            "line": st.integers(1, 2**31 - 1),
        },
    ),
    max_size=3,
)
TASKS = st.lists(
    st.fixed_dictionaries({"line": st.integers(1, 2**31 - 1), "done": st.booleans(), "text": TEXT}),
    max_size=3,
)
FM_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(["2024-01-02", "2024-01-02T03:04:05"]),
    st.lists(TEXT, max_size=3),
    st.dictionaries(TEXT, st.integers(-5, 5), max_size=2),
)


@st.composite
def note_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record shaped like the indexer's at one of PATHS, with random parsed fields."""
    body = draw(st.text(max_size=40))
    classification = draw(st.sampled_from([None, "PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET"]))
    tags = draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=4))
    frontmatter = draw(
        st.dictionaries(st.sampled_from(["title", "n", "when", "list", "obj"]), FM_VALUES)
    )
    if tags:
        frontmatter["tags"] = tags
    fields: dict[str, Any] = {
        "path": draw(st.sampled_from(PATHS)),
        "record_type": draw(st.sampled_from(["Metadata", "Log", "Index", "Template"])),
        "tags": tags,
        "links": draw(LINKS),
        "tasks": draw(TASKS),
        "frontmatter": frontmatter,
    }
    if classification is not None:
        fields["classification"] = classification
        frontmatter["classification"] = classification
    return make_record(draw(st.integers(0, 9)), body, **fields)


OPERATIONS: st.SearchStrategy[Operation] = st.one_of(
    note_records().map(lambda rec: Upsert(rec, cause="test")),
    st.builds(Delete, st.sampled_from(PATHS)),
    # With 8 paths, moves onto an existing path are common.
    st.builds(Move, st.sampled_from(PATHS), st.sampled_from(PATHS)),
)


class MirrorMachine(RuleBasedStateMachine):
    """Random batches of upserts, deletes and moves go into a real redb store, with
    flushes into a real DuckDB mirror at random points; after every flush (and a final
    one at the end) the mirror equals the store, row for row."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.data_dir = Path(self._tmp.name)
        self.store = open_store(self.data_dir)
        self.mirror = Mirror(self.data_dir)
        self.watermark: int | None = None  # None until the first flush builds the mirror

    @initialize(batch=st.sampled_from([1, 3, 50_000]))
    def batch_size(self, batch: int) -> None:
        """Flushes apply their entries in DuckDB transactions of `batch` entries (1 and 3:
        a flush spans several transactions, the watermark moving after each)."""
        self.mirror = Mirror(self.data_dir, batch_changes=batch)

    @rule(ops=st.lists(OPERATIONS, min_size=1, max_size=8))
    def apply(self, ops: list[Operation]) -> None:
        """One store transaction; its changelog entries are numbered head+1, head+2..."""
        head = self.store.head()
        changes = self.store.apply(ops)
        assert [c.seq for c in changes] == list(range(head + 1, head + 1 + len(changes)))
        assert self.store.head() == head + len(changes)

    @rule(path=st.sampled_from(PATHS), indexed_at=st.floats(0, 2e9))
    def resend(self, path: str, indexed_at: float) -> None:
        """I3: re-sending the stored record (new indexed_at only), or deleting or moving
        a path that has no record, appends nothing."""
        head = self.store.head()
        rec = self.store.get(path)
        ops: list[Operation] = [Delete("nowhere.md"), Move("nowhere.md", path)]
        if rec is not None:
            ops.append(Upsert(dict(rec, indexed_at=indexed_at)))
        assert self.store.apply(ops) == []
        assert self.store.head() == head

    @rule()
    def flush(self) -> None:
        """A flush applies exactly the entries after the watermark (or builds the mirror
        when there is none) and leaves the mirror equal to the store."""
        result = self.mirror.flush(self.store)
        head = self.store.head()
        assert result.watermark == head
        assert result.rebuilt == (self.watermark is None)
        if self.watermark is not None:
            assert result.applied == head - self.watermark
        self.watermark = head
        assert_mirror_equals_store(self.mirror, self.store)

    @precondition(lambda self: self.watermark is not None)
    @rule()
    def flush_twice(self) -> None:
        """A flush right after a flush applies nothing and changes no row."""
        self.flush()
        rows = dump_everything(self.mirror)
        result = self.mirror.flush(self.store)
        assert (result.applied, result.rebuilt) == (0, False)
        assert result.watermark == self.store.head()
        assert dump_everything(self.mirror) == rows

    def teardown(self) -> None:
        """The final flush leaves the mirror equal to the store (I2)."""
        try:
            # Hypothesis runs teardown in a `finally`: when a step already failed, do not
            # add a second failure for it to shrink.
            if sys.exc_info()[1] is None:
                self.mirror.flush(self.store)
                assert_mirror_equals_store(self.mirror, self.store)
        finally:
            self.store.close()
            self._tmp.cleanup()


TestMirrorMachine = MirrorMachine.TestCase
TestMirrorMachine.settings = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# A failing run shrinks for up to Hypothesis's own 5-minute cap (each example opens a
# store and a DuckDB file); give it that time rather than interrupting it mid-query.
TestMirrorMachine = pytest.mark.timeout(600)(TestMirrorMachine)


# --- 2. kill -9 during a flush ----------------------------------------------------------

CHANGES_PER_ROUND = 8000
CHILD_BATCH = 400  # changelog entries per DuckDB transaction in the child: ~20 per flush
ROUND_PATHS = 1500


def apply_round(store: Store, rng: random.Random, round_no: int, changes: int) -> None:
    """Append at least `changes` changelog entries: upserts, deletes and moves (often
    onto an existing path) over ROUND_PATHS paths, in store transactions of 1000 ops."""
    target = store.head() + changes
    n = 0
    while store.head() < target:
        ops: list[Operation] = []
        for _ in range(1000):
            n += 1
            i = rng.randrange(ROUND_PATHS)
            path = f"F{i % 23}/Sub {i % 5}/n{i}.md" if i % 3 else f"n{i}.md"
            roll = rng.random()
            if roll < 0.7:
                classification = rng.choice(["PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET"])
                ops.append(
                    Upsert(
                        make_record(
                            i,
                            f"round {round_no} op {n} " * rng.randrange(1, 4),
                            path=path,
                            classification=classification,
                            tags=rng.sample(TAGS, rng.randrange(4)),
                            tasks=[{"line": n % 100, "done": bool(n % 2), "text": f"t{n}"}],
                        )
                    )
                )
            elif roll < 0.85:
                ops.append(Delete(path))
            else:
                j = rng.randrange(ROUND_PATHS)
                ops.append(Move(path, f"F{j % 23}/Sub {j % 5}/n{j}.md"))
        store.apply(ops)


@dataclass
class ChildRun:
    """What one flushing child process printed, and whether it was killed mid-flush."""

    when: str
    lines: list[str] = field(default_factory=list)
    killed: bool = False
    seconds: float = 0.0

    @property
    def started(self) -> bool:
        return "start" in self.lines

    @property
    def flushed(self) -> bool:
        return any(line.startswith("flushed") for line in self.lines)

    @property
    def last_applied(self) -> int | None:
        applied = [int(x.split()[1]) for x in self.lines if x.startswith("applied ")]
        return applied[-1] if applied else None


def run_child(data_dir: Path, when: str, delay: float = 0.0) -> ChildRun:
    """Run mirror_worker.py's flush; SIGKILL it right after spawning ('spawn'), `delay`
    seconds after it printed 'start' ('start'), as soon as a rebuild's temporary file
    appears ('tmp'), or after it printed 'flushed' ('flushed'); when='never' lets it
    finish and exit."""
    run = ChildRun(when)
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), "flush", str(data_dir), str(CHILD_BATCH)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    stderr = proc.stderr
    lines: queue.Queue[str | None] = queue.Queue()

    def read(stream: Any) -> None:
        for line in stream:
            lines.put(line.strip())
        lines.put(None)

    reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
    reader.start()

    def wait_for(prefix: str) -> None:
        deadline = time.monotonic() + 120
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                proc.wait()
                pytest.fail(f"child ended before '{prefix}':\n{stderr.read()}")
            run.lines.append(line)
            if line.startswith(prefix):
                return

    try:
        if when == "spawn":
            pass
        elif when == "start":
            wait_for("start")
            time.sleep(delay)
        elif when == "tmp":
            wait_for("start")
            deadline = time.monotonic() + 60
            while not list(data_dir.glob(f".{MIRROR_FILE}.*.tmp")):
                assert time.monotonic() < deadline, "the child never started a rebuild"
                time.sleep(0.001)
        else:
            wait_for("flushed")
        if when == "never":
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0
        else:
            proc.kill()
            proc.wait(timeout=60)
            run.killed = True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=60)
        proc.stdin.close()
        proc.stderr.close()
    while (line := lines.get()) is not None:
        run.lines.append(line)
    flushed = [x for x in run.lines if x.startswith("flushed")]
    if flushed:
        run.seconds = float(flushed[0].split()[3])
    return run


def mirror_at(path: Path) -> Mirror:
    """A Mirror that reads `path` (the working file, say) instead of mirror.duckdb."""
    mirror = Mirror(path.parent)
    mirror.path = path
    return mirror


def test_kill_9_during_flush_leaves_a_consistent_mirror_that_the_next_flush_completes() -> None:
    """I6 for the mirror: a flushing process SIGKILLed at random moments (while Python
    starts, right at the start, at several points inside the flush, after it) leaves
    the published mirror whole, at the old watermark or the store's head, never in
    between: the flush applies to the working file and publishes it by rename. The
    working file then opens (DuckDB replays its WAL) at a watermark between where it
    started and the head, at least every batch the child reported committed: one
    mirror_state row, `events` = 1..watermark once each, no path twice in `notes`, and
    every table exactly as the store's records say for the paths the applied entries
    touched (the state it started from for the others). A flush in the parent then
    carries on from there and publishes full equality (I2). At least one run must have
    been killed with the working file strictly inside its flush, so the test proves a
    mid-flush kill and not only kills around the flush."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        store = open_store(data_dir)
        try:
            store_id = store.meta["store_id"]
            mirror = Mirror(data_dir)
            work = mirror_at(data_dir / WORK_FILE)
            states: dict[int, dict[str, Record]] = {}  # the records at each round's end

            def remember() -> None:
                states[store.head()] = {r["path"]: r for r in store.records()}

            apply_round(store, rng, 0, 500)
            remember()
            assert mirror.flush(store).rebuilt

            # Calibrate: how long does the child's flush of a round take here?
            apply_round(store, rng, 1, CHANGES_PER_ROUND)
            remember()
            calibration = run_child(data_dir, "never")
            assert calibration.flushed, calibration.lines
            assert_mirror_equals_store(mirror, store)
            took = calibration.seconds

            plan = [("spawn", 0.0), ("start", 0.0)]
            plan += [("start", took * rng.uniform(lo, lo + 0.25)) for lo in (0.05, 0.35, 0.65)]
            plan += [("flushed", 0.0)]
            outcomes: list[str] = []
            inside = 0
            for round_no, (when, delay) in enumerate(plan, start=2):
                old = store.head()
                with work.connect() as con:
                    start = assert_consistent(con)  # where the working file starts
                apply_round(store, rng, round_no, CHANGES_PER_ROUND)
                remember()
                with store.snapshot() as snap:
                    now = {r["path"]: r for r in snap.records()}
                    changes = snap.changes_after(0)
                    head = snap.head()

                run = run_child(data_dir, when, delay)
                wal = work.path.with_name(work.path.name + ".wal").exists()

                with mirror.connect() as con:
                    watermark = assert_consistent(con)
                with work.connect() as con:
                    working = assert_consistent(con)
                outcome = (
                    f"{when}+{delay:.2f}s: published {watermark}, working file {working} "
                    f"from {start}, head {old} -> {head}, child printed {len(run.lines)} "
                    f"lines, the last {run.lines[-1:]}, wal={wal}"
                )
                outcomes.append(outcome)
                assert watermark in (old, head), outcome
                if run.flushed:
                    assert watermark == head, outcome
                if watermark == head:  # published: the working file is the old one
                    assert working == old, outcome
                    assert_mirror_equals_store(mirror, store)
                else:
                    assert_mirror_matches(mirror, states[old], changes[:old], old, store_id)
                    assert start <= working <= head, outcome
                    if run.last_applied is not None:
                        assert working >= run.last_applied, outcome
                    inside += start < working < head
                    touched = {c.path for c in changes[start:working]}
                    touched |= {c.prev_path for c in changes[start:working] if c.prev_path}
                    expected = {p: r for p, r in states[start].items() if p not in touched}
                    expected |= {p: r for p, r in now.items() if p in touched}
                    assert_mirror_matches(work, expected, changes[:working], working, store_id)

                result = mirror.flush(store)
                assert (result.rebuilt, result.applied, result.watermark) == (
                    False,
                    head - watermark,
                    head,
                ), outcome
                assert_mirror_equals_store(mirror, store)
            print(f"seed {seed}, calibration flush {took:.2f}s", *outcomes, sep="\n")
            assert inside >= 1, (
                f"no run was killed inside the flush (seed {seed}, the calibration "
                f"flush took {took:.2f}s):\n" + "\n".join(outcomes)
            )
        finally:
            store.close()


# --- 3. idempotency ---------------------------------------------------------------------


def _varied_records(start: int, count: int) -> list[Operation]:
    classes = [None, "PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET"]
    ops: list[Operation] = []
    for i in range(start, start + count):
        extra: dict[str, Any] = {"tags": TAGS[: i % len(TAGS)]}
        if classes[i % 5] is not None:
            extra["classification"] = classes[i % 5]
        ops.append(Upsert(make_record(i, f"body {i}", **extra)))
    return ops


def test_a_flush_after_a_rebuild_applies_nothing_and_changes_no_row() -> None:
    """I3 for the mirror: right after the flush that builds it, a second and a third
    flush apply no entry, rebuild nothing, and leave every row (timestamps included)
    and the watermark as they were."""
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp)) as store:
        store.apply(_varied_records(0, 60))
        mirror = Mirror(Path(tmp))
        first = mirror.flush(store)
        assert first.rebuilt and first.watermark == store.head() == 60
        rows = dump_everything(mirror)
        for _ in range(2):
            again = mirror.flush(store)
            assert (again.applied, again.rebuilt, again.watermark) == (0, False, 60)
            assert dump_everything(mirror) == rows
        assert_mirror_equals_store(mirror, store)


def test_a_flush_after_an_incremental_flush_applies_nothing_and_changes_no_row() -> None:
    """I3 for the mirror: after a flush that applied entries (upserts, a delete, a move
    onto an existing path), flushing again applies nothing and changes no row."""
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp)) as store:
        mirror = Mirror(Path(tmp))
        store.apply(_varied_records(0, 30))
        mirror.flush(store)
        store.apply(_varied_records(20, 30))
        store.apply([Delete(make_record(3)["path"]), Move(make_record(4)["path"], "n.md")])
        store.apply([Move(make_record(5)["path"], make_record(6)["path"])])
        done = mirror.flush(store)
        assert (done.applied, done.rebuilt, done.watermark) == (
            store.head() - 30,
            False,
            store.head(),
        )
        rows = dump_everything(mirror)
        again = mirror.flush(store)
        assert (again.applied, again.rebuilt, again.watermark) == (0, False, store.head())
        assert dump_everything(mirror) == rows
        assert_mirror_equals_store(mirror, store)


def _kill_during_rebuild(data_dir: Path, store: Store) -> ChildRun:
    """With no mirror yet, a child's flush is a rebuild into a temporary file; kill
    it as soon as that file appears (long before the rebuild of 5,000 records ends)."""
    store.apply(_varied_records(0, 5000))
    run = run_child(data_dir, "tmp")
    assert not run.flushed, run.lines
    return run


def test_kill_9_during_a_rebuild_leaves_no_mirror_and_the_next_flush_builds_it() -> None:
    """I6 for a rebuild: a process killed while it writes a new mirror never leaves a
    half-written mirror.duckdb (the temporary file is swapped in only when complete);
    the next flush builds a mirror equal to the store."""
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp)) as store:
        data_dir = Path(tmp)
        _kill_during_rebuild(data_dir, store)
        assert not (data_dir / MIRROR_FILE).exists()
        mirror = Mirror(data_dir)
        assert mirror.flush(store).rebuilt
        assert_mirror_equals_store(mirror, store)


def test_the_next_flush_removes_what_a_killed_rebuild_left_behind() -> None:
    """After a rebuild killed mid-way and a successful flush, the data dir holds only
    the store, the mirror and the mirror's writer lock: no stray temporary database or
    WAL."""
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp)) as store:
        data_dir = Path(tmp)
        _kill_during_rebuild(data_dir, store)
        Mirror(data_dir).flush(store)
        assert sorted(p.name for p in data_dir.iterdir()) == ["index.redb", MIRROR_FILE, LOCK_FILE]
