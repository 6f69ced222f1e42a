"""Hostile file names against every place that logs or prints a value from the vault.

A name can hold a newline followed by a complete log line (which `ccc-watch log
--drift` would then show as drift), a carriage return, ANSI and OSC escapes (which
recolour or retitle the terminal of whoever reads the log), line separators that
journald and str.splitlines() split on, C1 controls, bidirectional overrides, and
bytes that are not UTF-8. Whatever the name, each log message is one line of
printable text (the call sites escape, checked with a raw sink that adds nothing), so
is each line a command prints about files, every line the sinks write (file, stderr,
journald) is one entry, `ccc-watch log` passes no control character to the terminal,
and `--drift` shows real drift only.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import cli
from daemon_harness import Daemon, wait_until
from privileges import blocked_prefix
from terminal import on_a_terminal
from watchdog.events import DirMovedEvent, FileModifiedEvent

from ccc_watch.changes.events import EventTranslator
from ccc_watch.changes.reconcile import reconcile
from ccc_watch.daemon.coalescer import Coalescer
from ccc_watch.daemon.watcher import Watcher
from ccc_watch.index.indexer import Indexer
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.store import open_store
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.walk import walk

STAMP = "2026-11-27 14:03:07.412+0100"
FORGED = f"{STAMP} | WARNING  | DRIFT kind=deleted-offline path=forged.md detail=forged"
# Names a file can have on Linux (no '/', no NUL): each is a way to break a log line.
HOSTILE = {
    "newline": f"nl\n{FORGED}\nrest",
    "cr": f"cr\r{FORGED}",
    "ansi": "ansi \x1b[31mred\x1b[0m",
    "osc": "osc \x1b]0;pwned\x07",
    "separators": "ls\u2028ps\u2029nel\x85",
    "c1": "csi \x9b31m",
    "bidi": "bidi \u202etxt",
    "suffix": f"sfx | WARNING  | {FORGED[len(STAMP) + 14 :]}",
}
# Not UTF-8: only bytes can name it.
BAD_BYTES = b"bytes \xff\xfe\n\x1b[31m"
CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
DOCUMENTED_DRIFT = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}) \| (?P<level>[A-Z]+) *\| "
    r'DRIFT kind=(?P<kind>[a-z-]+) path=(?P<path>"(?:[^"\\]|\\.)*"|\S+) '
    r'detail=(?P<detail>"(?:[^"\\]|\\.)*"|\S+)$'
)
ENTRY = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4} \| [A-Z]+ *\| ")
STDERR_ENTRY = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \| [A-Z]+ +\| ")


def one_safe_line(text: str) -> bool:
    """Printable through and through: no line break, no control, no bidi override."""
    return not CONTROLS.search(text) and "\t" not in text


def unsafe(messages: list[str]) -> list[str]:
    return [m for m in messages if not one_safe_line(m)]


def make(folder: Path, name: str | bytes, content: bytes) -> None:
    path = os.fsencode(folder) + b"/" + (name if isinstance(name, bytes) else os.fsencode(name))
    with open(path, "wb") as f:
        f.write(content)


# --- call sites, in this process, with a raw sink -------------------------------------


def test_walk_skips(vault: Path, logs: list[str]) -> None:
    """skip lines: a name with a backslash, one not UTF-8, symlinks that dangle, loop
    or leave the vault, and the targets they name."""
    for label, name in HOSTILE.items():
        make(vault, f"{name}\\{label}.md", b"x")
        os.symlink(f"../{name}", vault / f"{label} gone")
        os.symlink(f"{name} loop {label}", vault / f"{name} loop {label}")
    make(vault, BAD_BYTES + b".md", b"x")
    report = walk(vault, IgnoreRules.load(vault))
    assert len(report.skipped) == 3 * len(HOSTILE) + 1
    assert unsafe([p for p, _ in report.skipped] + [r for _, r in report.skipped]) == []
    assert len(logs) == len(report.skipped)
    assert unsafe(logs) == []


def test_indexer_warnings(vault: Path, logs: list[str]) -> None:
    """index lines: binary content, over the size limit, not UTF-8; and the skip line
    for a name that is no longer a regular file (a folder named like a note)."""
    indexer = Indexer(vault, "0b1c6bde-9d55-4cf2-a5a6-5f3d1b0a9e21", IndexPolicy(max_note_bytes=64))
    for label, name in HOSTILE.items():
        for kind, content in (("bin", b"\x00\x01"), ("big", b"x" * 100), ("enc", b"\xff\xfe")):
            key = f"{name} {kind}.md"
            make(vault, key, content)
            assert indexer.index(key).warnings
        folder = vault / f"{name} {label} dir.md"
        folder.mkdir()
        assert indexer.index(folder.name).record is None
    assert len(logs) == 4 * len(HOSTILE)
    assert unsafe(logs) == []


def test_reconcile_drift_and_icloud(vault: Path, tmp_path: Path, logs: list[str]) -> None:
    """DRIFT lines for notes created, changed and deleted while stopped, conflict copies,
    and the iCloud-eviction note."""
    data = tmp_path / "data"

    def scan() -> list[str]:
        with open_store(data, vault_root=vault) as store:
            indexer = Indexer(vault, str(store.meta["vault_id"]))
            result = reconcile(
                vault, store, indexer, IgnoreRules.load(vault), offline=True,
                previous_scan_ns=store.meta.get("last_scan_started_ns"))  # fmt: skip
        return [d.line() for d in result.drift]

    for label, name in HOSTILE.items():
        make(vault, f"{name}.md", b"v1")
        make(vault, f"{name} gone.md", b"gone")
        make(vault, f"{name} cloud.md", b"cloud")
        make(vault, f"{label} edit.md", b"v1")
    scan()
    logs.clear()
    for label, name in HOSTILE.items():
        make(vault, f"{label} edit.md", f"{name}".encode())  # a changed body: no log
        make(vault, f"{name} (Conflicted copy Mac 202411281430).md", b"c")
        os.unlink(os.fsencode(vault) + b"/" + os.fsencode(f"{name} gone.md"))
        os.unlink(os.fsencode(vault) + b"/" + os.fsencode(f"{name} cloud.md"))
        make(vault, f".{name} cloud.md.icloud", b"")
    drift = scan()
    assert len(drift) == 4 * len(HOSTILE)  # modified, created, sync-conflict, deleted
    assert unsafe(drift) == []
    assert all(DOCUMENTED_DRIFT.match(f"{STAMP} | WARNING  | {line}") for line in drift)
    assert sum(" is evicted to iCloud" in m for m in logs) == len(HOSTILE)
    assert unsafe(logs) == []
    found = [DOCUMENTED_DRIFT.match(f"{STAMP} | WARNING  | {line}") for line in drift]
    paths = {json.loads(m["path"]) for m in found if m and m["path"].startswith('"')}
    assert f"{HOSTILE['newline']} gone.md" in paths  # JSON gives the name back exactly


def test_reconcile_unreadable_folder(vault: Path, tmp_path: Path) -> None:
    """The folder a scan cannot read is named in two lines (walk and reconcile); run in
    a child without the capabilities that let root read anything."""
    data = tmp_path / "data"
    with open_store(data, vault_root=vault):
        pass
    locked = vault / HOSTILE["newline"]
    locked.mkdir()
    (locked / "in.md").write_text("x")
    locked.chmod(0)
    try:
        prefix = blocked_prefix(locked)
        script = textwrap.dedent("""
            import json, sys
            from pathlib import Path
            from loguru import logger
            from ccc_watch.changes.reconcile import reconcile
            from ccc_watch.index.indexer import Indexer
            from ccc_watch.store import open_store
            from ccc_watch.vault.ignore import IgnoreRules
            logger.remove()
            logger.add(lambda m: print(json.dumps(m.record["message"])), level="DEBUG")
            vault, data = Path(sys.argv[1]), Path(sys.argv[2])
            with open_store(data, vault_root=vault) as store:
                reconcile(vault, store, Indexer(vault, str(store.meta["vault_id"])),
                          IgnoreRules.load(vault), offline=True)
        """)
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", script, str(vault), str(data)],
            capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 0, proc.stderr[-2000:]
    messages = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any("unreadable" in m for m in messages), messages
    assert sum("cannot read folder" in m for m in messages) == 1, messages
    assert unsafe(messages) == []


def test_event_lines_and_rescan_reasons(vault: Path, tmp_path: Path, logs: list[str]) -> None:
    """What the daemon logs about events: a path read too soon or emptied, a path that
    cannot be indexed, conflict copies found by events, and the reasons of the rescans
    that a folder move or a rule file's edit asks for."""
    data = tmp_path / "data"
    with open_store(data, vault_root=vault) as store:
        indexer = Indexer(vault, str(store.meta["vault_id"]))
        events = EventTranslator(vault, indexer, IgnoreRules.load(vault), settle=60)
        ready = []
        for name in HOSTILE.values():
            make(vault, f"{name}.md", b"x")
            conflict = f"{name}.sync-conflict-20260413-091523-K3X2R2T.md"
            make(vault, conflict, b"y")
            ready += [(f"{name}.md", str(vault / f"{name}.md")), (conflict, str(vault / conflict))]
        dirty = {k for k, _ in ready[::4]}
        found = events.operations(store, [], ready, dirty.__contains__)  # too soon: deferred
        assert len(found.deferred) == len(ready)
        events.settle = 0
        found = events.operations(store, [], ready, lambda _: False)
        assert len(found.drift) == len(HOSTILE)
        store.apply(found.ops)
        for name in HOSTILE.values():
            make(vault, f"{name}.md", b"")  # turned empty: read again to confirm
        found = events.operations(store, [], ready[::2], lambda _: False)
        assert len(found.deferred) == len(HOSTILE)
        for name in HOSTILE.values():  # a path the file system refuses: the bug path
            events.operations(store, [], [(f"{name} nul.md", f"{vault}/{name}\0.md")], bool)
    assert sum("cannot index" in m for m in logs) == len(HOSTILE)
    assert unsafe(logs) == []
    assert unsafe([d.line() for d in found.drift]) == []

    coalescer = Coalescer(0.1)
    watcher = Watcher(vault, IgnoreRules.load(vault), coalescer)
    reasons = []
    for name in HOSTILE.values():
        watcher.handler.on_any_event(DirMovedEvent(f"{vault}/{name}", f"{vault}/{name} 2"))
        reasons.append(coalescer.take(force=True).rescan)
    watcher.handler.on_any_event(
        FileModifiedEvent(os.fsdecode(os.fsencode(f"{vault}/") + BAD_BYTES))
    )
    watcher.stop()
    assert all(reasons) and unsafe([str(r) for r in reasons]) == []
    assert unsafe(logs) == []


def test_ignore_rule_warnings(vault: Path, logs: list[str]) -> None:
    """Bad lines of .cccignore and bad userIgnoreFilters entries are named safely."""
    (vault / ".obsidian").mkdir()
    bad = [f"/{name}[/" for name in HOSTILE.values()]
    (vault / ".obsidian" / "app.json").write_text(
        json.dumps({"userIgnoreFilters": [*bad, {"k": HOSTILE["osc"]}, 7, ""]})
    )
    (vault / ".cccignore").write_text("".join(f"{name}\\\n" for name in HOSTILE.values()))
    IgnoreRules.load(vault)
    assert len(logs) >= len(bad) + 3
    assert unsafe(logs) == []
    (vault / ".obsidian" / "app.json").write_text(json.dumps([HOSTILE["osc"]]))
    (vault / ".cccignore").unlink()
    (vault / ".cccignore").mkdir()  # cannot be read
    logs.clear()
    IgnoreRules.load(vault)
    assert len(logs) == 2 and unsafe(logs) == []


# --- the commands that print vault values ---------------------------------------------


def plant(vault: Path, tag: str) -> None:
    """Hostile names with content that draws a warning, a conflict copy each, and a
    skipped name of bad bytes."""
    for label, name in HOSTILE.items():
        make(vault, f"{name} {tag}.md", b"\x00binary")
        make(vault, f"{name} {tag} (Conflicted copy Mac 202411281430).md", b"c")
        make(vault, f"{label} {tag}.md", b"\xff not utf-8")
    make(vault, BAD_BYTES + tag.encode() + b".md", b"x")


def test_rebuild_scan_and_verify_print_safe_lines(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """`rebuild` (its failed/note lines), `scan` and `verify` (their DRIFT lines)."""
    data = tmp_path / "data"
    plant(vault, "a")
    done = cli(env, vault, data, "rebuild")
    assert done.returncode == 0, done.stderr[-2000:]
    notes = [line for line in done.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2 * len(HOSTILE) + 1  # binary, not UTF-8, the bad-bytes name
    assert unsafe(done.stdout.splitlines()) == []
    assert all(ENTRY.match(line) for line in done.stderr.splitlines()), done.stderr
    assert unsafe(done.stderr.splitlines()) == []
    plant(vault, "b")
    checked = cli(env, vault, data, "verify")
    assert checked.returncode == 1
    missing = [line for line in checked.stdout.split("\n") if line.startswith("store: missing")]
    assert len(missing) == 3 * len(HOSTILE)  # two hostile names and a plain one each
    scanned = cli(env, vault, data, "scan")
    assert scanned.returncode == 0, scanned.stderr[-2000:]
    drift = [line for line in scanned.stdout.split("\n") if line.startswith("DRIFT ")]
    assert len(drift) == 4 * len(HOSTILE)  # created-offline, and sync-conflict for copies
    assert all(DOCUMENTED_DRIFT.match(f"{STAMP} | WARNING  | {d}") for d in drift)
    # stderr, a pipe: the same findings as WARNING entries in the log file's shape
    logged = [m for m in map(DOCUMENTED_DRIFT.match, scanned.stderr.split("\n")) if m]
    assert sorted(m.group(0).split(" | ", 2)[2] for m in logged) == sorted(drift)
    for proc in (checked, scanned):
        assert unsafe(proc.stdout.split("\n")) == []
        assert all(ENTRY.match(line) for line in proc.stderr.split("\n")[:-1])
        assert unsafe(proc.stderr.split("\n")) == []


# --- the sinks: a net under the call sites -------------------------------------------

# A process that logs raw hostile text (as a call site that forgot to escape would)
# and an exception whose message quotes it, through the sinks `run` sets up.
MISSED = textwrap.dedent("""
    import sys
    from loguru import logger
    from ccc_watch import config
    from ccc_watch.log import sinks
    vault, data, text = sys.argv[1], sys.argv[2], sys.argv[3]
    sinks.setup(config.load({"vault": vault, "data_dir": data}), command="run")
    logger.warning("raw {}", text)
    try:
        try:
            raise OSError(f"cannot open {text}")
        except OSError as e:
            raise ValueError(text) from e
    except ValueError:
        logger.exception("failed on {}", text)
    logger.complete()
""")


@pytest.mark.parametrize("journal", [False, True], ids=["stderr", "journald"])
def test_the_sinks_escape_what_a_call_site_missed(
    tmp_path: Path, vault: Path, env: dict[str, str], journal: bool
) -> None:
    """Every line the file sink writes is an entry or a traceback line that cannot pass
    for one; stderr, plain or journald, is as safe; the traceback keeps its shape."""
    err = tmp_path / "stderr.txt"
    err.touch()
    if journal:
        st = err.stat()
        env = env | {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    text = "".join(HOSTILE.values())
    with err.open("ab") as out:
        proc = subprocess.run(
            [sys.executable, "-c", MISSED, str(vault), str(tmp_path / "data"), text],
            stderr=out, env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 0, err.read_text()[-2000:]
    lines = (tmp_path / "state" / "ccc-watch" / "log" / "data.log").read_text().split("\n")
    assert lines.pop() == ""
    assert unsafe(lines) == []
    assert [bool(ENTRY.match(line)) for line in lines].count(True) == 2, lines
    assert not any(FORGED[len(STAMP) :] in line and ENTRY.match(line) for line in lines[2:])
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1].startswith("ValueError: nl\\n2026-11-27 ")
    assert any(line.startswith("OSError: cannot open nl\\n") for line in lines)
    assert any("direct cause" in line for line in lines)
    stderr = err.read_text().split("\n")
    assert stderr.pop() == ""
    assert unsafe(stderr) == []
    if journal:
        assert all(re.match(r"<[34]>", line) for line in stderr), stderr
        assert stderr[0].startswith("<4>raw nl\\n")
    else:
        assert [bool(STDERR_ENTRY.match(line)) for line in stderr].count(True) == 2, stderr


# --- a real daemon: file, stderr, journald, `ccc-watch log` -------------------------


def test_the_daemon_writes_one_safe_line_per_entry(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """Hostile names met at start-up (drift), while watching (warnings, conflict copies,
    folder moves, a bad .cccignore, a name of bad bytes) and in a rebuild it is asked
    for; then once more at start-up with stderr as the journal. Every line of the log
    file and of stderr is one entry of printable text, `ccc-watch log` shows the file
    as it is, and `--drift` lists only real drift."""
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.env = env
    d.start()
    assert d.stop() == 0
    plant(vault, "offline")  # start-up: created-offline drift, indexer warnings
    d.start()
    plant(vault, "live")
    for label, name in HOSTILE.items():
        folder = vault / f"{name} folder"
        folder.mkdir()
        (folder / f"{label}.md").write_text("in a folder\n")
    (vault / ".cccignore").write_text("".join(f"{name}\\\n" for name in HOSTILE.values()))
    time.sleep(0.5)
    for name in HOSTILE.values():
        os.rename(vault / f"{name} folder", vault / f"{name} moved")
    d.settle()
    rebuilt = d.cli("rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert unsafe(rebuilt.stdout.splitlines()) == []
    assert d.stop() == 0
    plain = d.log.read_text(encoding="utf-8", errors="replace")

    plant(vault, "journal")
    st = d.log.stat()
    d.env = env | {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    d.start()
    d.settle()
    assert d.stop() == 0
    journal = d.log.read_text(encoding="utf-8", errors="replace")[len(plain) :]

    assert all(STDERR_ENTRY.match(line) for line in plain.splitlines()), plain[-3000:]
    assert all(re.match(r"<\d>", line) for line in journal.splitlines()), journal[-3000:]
    path = tmp_path / "state" / "ccc-watch" / "log" / "data.log"
    text = path.read_text(encoding="utf-8")
    assert all(ENTRY.match(line) for line in text.split("\n")[:-1]), text[-3000:]
    for shown in (plain, journal, text):
        assert unsafe(shown.split("\n")) == []
        assert "Traceback" not in shown
    assert "rebuilding the store on request" in text
    assert any(" folder moved: " in line for line in text.splitlines())  # rescans coalesce
    assert sum("bad pattern" in line for line in text.splitlines()) >= len(HOSTILE)

    shown = cli(d.env, vault, d.data, "log")
    assert shown.stdout.split("\n")[:-1] == text.split("\n")[:-1]
    drift = cli(d.env, vault, d.data, "log", "--drift").stdout.splitlines()
    matched = [DOCUMENTED_DRIFT.match(line) for line in drift]
    assert all(matched) and len(drift) >= 4 * len(HOSTILE)
    assert not [m for m in matched if m and m["path"] == "forged.md"]


# --- `ccc-watch log` on a log that an older version wrote, or a hand forged -----------

OLD_LOG = "".join(
    f"{line}\n"
    for line in (
        f"{STAMP} | INFO     | watching /v (pid 1)",
        f"{STAMP} | WARNING  | index \x1b]0;pwned\x07\x1b[2J{HOSTILE['cr']}: binary",
        f'{STAMP} | WARNING  | DRIFT kind=created-offline path="real.md" detail="new file"',
        f"{STAMP} | WARNING  | skip \u2028{FORGED}\x85\x9b31m",
        f"{STAMP} | ERROR    | boom",
        "Traceback (most recent call last):",
        "ValueError: \x1b[31m",
    )
)


@pytest.fixture
def old_log(tmp_path: Path, vault: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "state" / "ccc-watch" / "log" / "data.log"
    path.parent.mkdir(parents=True)
    path.write_text(OLD_LOG, encoding="utf-8", newline="")
    return path


def test_log_shows_an_old_or_forged_log_safely(
    tmp_path: Path, vault: Path, env: dict[str, str], old_log: Path
) -> None:
    """Control characters are shown escaped, a carriage return splits no line, and
    `--drift` finds the one real drift line."""
    shown = cli(env, vault, tmp_path / "data", "log")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.split("\n")[:-1]
    assert len(lines) == OLD_LOG.count("\n")
    assert unsafe(lines) == []
    assert "\\x1b]0;pwned\\x07" in lines[1]
    drift = cli(env, vault, tmp_path / "data", "log", "--drift").stdout.splitlines()
    assert drift == [OLD_LOG.split("\n")[2]]


def test_log_follow_shows_lines_safely(
    tmp_path: Path, vault: Path, env: dict[str, str], old_log: Path
) -> None:
    """`log -f` escapes the lines it follows, the tail and what is appended."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir",
         str(tmp_path / "data"), "log", "-f"],
        stdout=subprocess.PIPE, env=env)  # fmt: skip
    got: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # bytes split at b"\n" only: a raw CR would stay in sight
        assert proc.stdout is not None
        for line in proc.stdout:
            got.put(line.decode("utf-8", "replace"))

    threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []

    def seen(needle: str) -> bool:
        while not got.empty():
            lines.append(got.get_nowait())
        return any(needle in line for line in lines)

    try:
        wait_until(lambda: seen("DRIFT kind=created-offline"), "the tail")
        with old_log.open("a", encoding="utf-8", newline="") as f:
            f.write(f"{STAMP} | WARNING  | appended \x1b[31m\r{FORGED}\n")
        wait_until(lambda: seen("appended"), "the appended line")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert unsafe([line.removesuffix("\n") for line in lines]) == []


# --- the commands that print records and query results ------------------------------

# Frontmatter (YAML escapes) whose title carries what a terminal acts on.
TITLE = "title \x1b[31mred \x9b31m \u202etxt \x85 nel \u2066iso"
HOSTILE_NOTE = b'---\ntitle: "title \\e[31mred \\x9b31m \\u202etxt \\N nel \\u2066iso"\n---\nbody\n'


def test_records_and_query_results_reach_the_terminal_safely(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """`get`, `dump`, `verify --json` and `sql` (table, JSON, CSV) print names and
    frontmatter values from the vault: JSON escapes C1 controls, line separators and
    bidirectional overrides as \\u escapes (a parser reads back exactly what the vault
    holds), a table escapes them as Python does, and CSV does so on a terminal."""
    data = tmp_path / "data"
    for name in HOSTILE.values():
        make(vault, f"{name}.md", HOSTILE_NOTE)
    done = cli(env, vault, data, "rebuild")
    assert done.returncode == 0, done.stderr[-2000:]
    keys = {f"{name}.md" for name in HOSTILE.values()}

    def safe(text: str) -> bool:  # line breaks between lines (and JSON values) only
        return one_safe_line(text.replace("\n", " "))

    for key in sorted(keys):
        got = cli(env, vault, data, "get", key)
        assert got.returncode == 0, got.stderr[-2000:]
        assert safe(got.stdout), got.stdout
        record = json.loads(got.stdout)
        assert (record["path"], record["title"]) == (key, TITLE)
    dumped = cli(env, vault, data, "dump")
    assert dumped.returncode == 0 and safe(dumped.stdout), dumped.stdout
    records = [json.loads(line) for line in dumped.stdout.splitlines()]
    assert {r["path"] for r in records if r.get("title") == TITLE} == keys
    for name in HOSTILE.values():  # missing records for verify --json to name
        make(vault, f"{name} new.md", b"x")
    checked = cli(env, vault, data, "verify", "--json")
    assert checked.returncode == 1 and safe(checked.stdout), checked.stdout
    named = {d["path"] for d in json.loads(checked.stdout)}
    assert {f"{name} new.md" for name in HOSTILE.values()} <= named

    query = "SELECT path, title FROM notes WHERE title LIKE 'title %' ORDER BY path"
    rows = cli(env, vault, data, "sql", query, "--format", "json")
    assert rows.returncode == 0 and safe(rows.stdout), rows.stdout
    assert {(r["path"], r["title"]) for r in json.loads(rows.stdout)} == {
        (key, TITLE) for key in keys
    }
    table = cli(env, vault, data, "sql", query)
    assert table.returncode == 0, table.stderr[-2000:]
    lines = table.stdout.splitlines()
    assert len(lines) == 2 + len(keys) + 1 and all(map(one_safe_line, lines)), lines
    csv_text = on_a_terminal(vault, data, env, "sql", query, "--format", "csv")
    lines = csv_text.splitlines()
    assert len(lines) == 1 + len(keys) and all(map(one_safe_line, lines)), lines
    piped = cli(env, vault, data, "sql", query, "--format", "csv")  # data, unchanged
    assert TITLE in piped.stdout and "\x9b" in piped.stdout
