"""ccc_watch.log.sinks and ccc_watch.log.reader: the daemon's log file, its rotation,
journald prefixes and `ccc-watch log`, with real processes and real files.

Every child runs with XDG_STATE_HOME (platformdirs' user log dir on Linux) and
XDG_CONFIG_HOME inside tmp_path and without JOURNAL_STREAM, unless a test sets it.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import cli, not_private

from ccc_watch import config
from ccc_watch.log import reader
from ccc_watch.log import sinks as logs
from ccc_watch.log.applied import NAMED, applied_line
from ccc_watch.store import Change
from tests.daemon_harness import Daemon, wait_until

README = Path(__file__).resolve().parents[1] / "README.md"
# The drift-line expression of the README's "Logs" section, copied here on purpose.
DOCUMENTED_DRIFT = (
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}) \| (?P<level>[A-Z]+) *\| "
    r'DRIFT kind=(?P<kind>[a-z-]+) path=(?P<path>"(?:[^"\\]|\\.)*"|\S+) '
    r'detail=(?P<detail>"(?:[^"\\]|\\.)*"|\S+)$'
)
ENTRY = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4} \| [A-Z]+ *\| (?P<message>.*)$"
)
LOGURU_DEFAULT = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \| [A-Z]+ +\| \S+:\S+:\d+ - "
)

# A child that logs through logs.setup: argv = vault, data dir, command, then
# key=value settings and other arguments; the body after the prelude is the scenario.
PRELUDE = """
import sys, time
from loguru import logger
from ccc_watch import config
from ccc_watch.store import Change
from ccc_watch.log import sinks as logs
settings = dict(a.split("=", 1) for a in sys.argv[4:] if "=" in a)
cfg = config.load({"vault": sys.argv[1], "data_dir": sys.argv[2], **settings})
logs.setup(cfg, command=sys.argv[3])
"""


def log_file(tmp_path: Path, data_name: str = "data") -> Path:
    return tmp_path / "state" / "ccc-watch" / "log" / f"{data_name}.log"


def child(
    tmp_path: Path,
    env: dict[str, str],
    vault: Path,
    body: str,
    command: str = "run",
    *settings: str,
    stderr: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run PRELUDE + body in a new Python process; stderr to a file when given."""
    script = tmp_path / f"child_{abs(hash(body))}.py"
    script.write_text(PRELUDE + body)
    argv = [sys.executable, str(script), str(vault), str(tmp_path / "data"), command, *settings]
    with (stderr or Path(os.devnull)).open("ab") as err:
        proc = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=err, env=env, timeout=60, text=True)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout, stderr.read_text() if stderr else "")
    return proc


def messages(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        m = ENTRY.match(line)
        assert m, line
        out.append(m["message"])
    return out


def read_any(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    return path.read_text(encoding="utf-8")


# --- where the file is ------------------------------------------------------------


def test_log_path_default_and_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """<user log dir>/<data dir folder name>.log, the name made safe; log_file wins."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in [n for n in os.environ if n.startswith("CCC_WATCH_")]:
        monkeypatch.delenv(name)
    vault = tmp_path / "v"
    vault.mkdir()
    cfg = config.load({"vault": str(vault), "data_dir": str(tmp_path / "data")})
    assert logs.log_path(cfg) == log_file(tmp_path)
    odd = config.load({"vault": str(vault), "data_dir": str(tmp_path / "my data.v{1}")})
    assert logs.log_path(odd) == log_file(tmp_path, "my_data_v_1")
    default = config.load({"vault": str(vault)})  # the default data dir: name-hash
    assert re.fullmatch(r"v-[0-9a-f]{12}\.log", logs.log_path(default).name)
    own = config.load({"vault": str(vault), "log_file": str(tmp_path / "x" / "mine.log")})
    assert logs.log_path(own) == tmp_path / "x" / "mine.log"


def test_run_refuses_a_log_file_in_the_vault(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """`run` and `log` with a log_file inside the vault (here through a symlinked folder)
    exit 78 with one line naming the setting, before anything is written: the vault
    stays as it was."""
    (tmp_path / "logs").symlink_to(vault, target_is_directory=True)
    before = sorted(p.relative_to(vault) for p in vault.rglob("*"))
    for args in (["log"], ["run"]):  # `run`, were it to accept it, would not exit
        proc = cli(env, vault, tmp_path / "data", "--log-file", str(tmp_path / "logs/d.log"),
                   *args)  # fmt: skip
        assert proc.returncode == 78, (args, proc.stderr)
        assert proc.stderr.startswith("ccc-watch: config: log_file: ")
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert sorted(p.relative_to(vault) for p in vault.rglob("*")) == before


def test_run_creates_everything_private(tmp_path: Path, vault: Path) -> None:
    """`run` under umask 000 makes its data dir and log folder (with the parents they
    lack) 0700 and every file in them 0600: the store, the mirror, status.json, the pid
    file, the log, and the compressed files rotation leaves (loguru makes those)."""
    (vault / "a.md").write_text("# a\n")
    d = Daemon(vault, tmp_path / "new" / "data", tmp_path / "daemon.out")
    d.prefix = ["sh", "-c", 'umask 000 && exec "$@"', "sh"]
    log = tmp_path / "logs" / "sub" / "d.log"
    d.run_args = ["--log-file", str(log), "--log-max-bytes", "200"]
    d.start()
    wait_until(lambda: (tmp_path / "new" / "data" / "mirror.duckdb").exists(), "the mirror")
    assert d.stop() == 0
    assert list(log.parent.glob("*.log.gz")), sorted(log.parent.iterdir())
    assert not_private(tmp_path / "new", tmp_path / "logs") == {}


def test_rotated_files_are_this_logs_only_oldest_first(tmp_path: Path) -> None:
    """Another vault's files never count; a .gz still being written beside its source
    is left out."""
    stamps = ["2026-01-01_00-00-00_000000", "2026-01-02_00-00-00_000000"]
    names = [f"v.{stamps[0]}.log.gz", f"v.{stamps[1]}.log", f"v.{stamps[1]}.log.gz",
             f"v.{stamps[1]}.2.log.gz", f"v_old.{stamps[0]}.log.gz", f"vx.{stamps[0]}.log.gz",
             "v.log", "v.log.bak"]  # fmt: skip
    made = []
    for i, name in enumerate(names):
        made.append(tmp_path / name)
        made[-1].write_text("")
        os.utime(made[-1], (1000 + i, 1000 + i))
    assert reader.rotated_files(tmp_path / "v.log") == [made[0], made[1], made[3]]
    assert reader.rotated_files(tmp_path / "missing" / "v.log") == []


def test_documented_drift_regex_is_the_one_in_the_readme() -> None:
    assert DOCUMENTED_DRIFT in README.read_text(encoding="utf-8")
    assert reader.DRIFT_ENTRY.pattern == DOCUMENTED_DRIFT


# --- a real daemon ------------------------------------------------------------------


def test_run_writes_its_log_file_with_drift_and_journald_prefixes(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """`run` writes INFO and up to its file; a file created while it was stopped is a
    created-offline DRIFT line in the documented shape; stderr has loguru's usual
    format, or journald prefixes once JOURNAL_STREAM names its stderr. `ccc-watch log`
    shows the file, `--drift` only the drift line."""
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.env = env
    d.start()
    assert d.stop() == 0
    first_run = d.log.read_text()
    (vault / "b c.md").write_text("made while stopped\n")
    st = d.log.stat()
    d.env = env | {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}  # stderr is that file
    d.start()
    path = log_file(tmp_path)
    wait_until(lambda: "DRIFT kind=created-offline" in path.read_text(), "drift line in the log")
    assert d.stop() == 0

    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    lines = path.read_text(encoding="utf-8").splitlines()
    texts = messages(lines)  # every line is an entry in the documented shape
    assert not any(" | DEBUG " in line for line in lines)
    assert sum(t.startswith("watching ") for t in texts) == 2
    drift = [m for m in map(re.compile(DOCUMENTED_DRIFT).match, lines) if m]
    assert len(drift) == 1, lines  # the first index of a new store is no drift
    assert drift[0]["level"] == "WARNING"
    assert drift[0]["kind"] == "created-offline"
    assert drift[0]["path"] == '"b c.md"'

    # stderr: the usual format the first time, priority prefixes under "journald".
    assert LOGURU_DEFAULT.search(first_run)
    assert "DEBUG" in first_run and not re.search(r"^<\d>", first_run, re.M)
    second_run = d.log.read_text()[len(first_run) :]
    assert re.search(r'^<4>DRIFT kind=created-offline path="b c.md" ', second_run, re.M)
    assert re.search(r"^<6>watching ", second_run, re.M)
    assert not LOGURU_DEFAULT.search(second_run), second_run

    shown = cli(env, vault, d.data, "log")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == lines
    only = cli(env, vault, d.data, "log", "--drift")
    assert only.returncode == 0, only.stderr
    assert only.stdout.splitlines() == [drift[0].group(0)]


def test_log_without_a_log_file_says_so(tmp_path: Path, vault: Path, env: dict[str, str]) -> None:
    for args in ([], ["--drift"], ["-f"], ["--since", "1h"]):
        proc = cli(env, vault, tmp_path / "data", "log", *args)
        assert proc.returncode == 1
        assert proc.stderr.startswith("ccc-watch: no log yet for ") and proc.stdout == ""
        assert str(log_file(tmp_path)) in proc.stderr


def test_other_commands_keep_stderr_and_write_no_file(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """A command other than `run` logs to stderr only. Off a terminal (here, a pipe)
    that is its warnings and errors, each one line in the log file's own shape (no
    source location, no INFO line); with --quiet, nothing but errors; $LOGURU_LEVEL
    brings back loguru's usual format, with source locations, from that level."""
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "app.json").write_text('{"userIgnoreFilters": ["/[unclosed/"]}')
    proc = cli(env, vault, tmp_path / "data", "rebuild", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "bad regex" in lines[0], proc.stderr
    assert ENTRY.match(lines[0]) and " | WARNING  | " in lines[0], lines
    assert "ccc_watch.vault.ignore:" not in lines[0]
    assert proc.stdout.startswith("would index ")

    quiet = cli(env, vault, tmp_path / "data", "rebuild", "--dry-run", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == "", quiet

    debug = cli(env | {"LOGURU_LEVEL": "DEBUG"}, vault, tmp_path / "data", "rebuild", "--dry-run")
    warning = [line for line in debug.stderr.splitlines() if "bad regex" in line]
    assert len(warning) == 1 and LOGURU_DEFAULT.match(warning[0]), debug.stderr
    assert " | WARNING  | ccc_watch.vault.ignore:" in warning[0]
    assert any(" | INFO     | " in line for line in debug.stderr.splitlines()), debug.stderr
    assert not (tmp_path / "state").exists()


# --- what the daemon applied: APPLIED lines and `log --ops` ---------------------------

# The APPLIED-line expression of the README's "Logs" section, copied here on purpose.
_FIELD = r'(?:"(?:[^"\\]|\\.)*"|[^\s"]+)'
DOCUMENTED_APPLIED = (
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}) \| INFO     \| "
    r"APPLIED (?P<count>\d+) changes? \((?P<cause>[a-z-]+(?:, [a-z-]+)*)\): "
    rf"(?P<changes>[a-z]+ {_FIELD}(?: -> {_FIELD})?(?:, [a-z]+ {_FIELD}(?: -> {_FIELD})?)*)"
    r"(?: and (?P<more>\d+) more)?$"
)
ONE_CHANGE = re.compile(rf"(?:^|, )(?P<op>[a-z]+) (?P<a>{_FIELD})(?: -> (?P<b>{_FIELD}))?")
FORGED_ENTRY = (
    "2026-11-27 14:03:07.412+0100 | WARNING  | DRIFT kind=deleted-offline path=x detail=y"
)


def test_documented_applied_regex_is_the_one_in_the_readme() -> None:
    assert DOCUMENTED_APPLIED in README.read_text(encoding="utf-8")
    assert reader.APPLIED_ENTRY.pattern == DOCUMENTED_APPLIED


def _field_value(text: str) -> str:
    value = json.loads(text) if text.startswith('"') else text
    assert isinstance(value, str)
    return value


def test_applied_line_names_a_few_changes_and_reads_back() -> None:
    """The line names the first NAMED changes (moves as `old -> new`) and counts the
    rest; whatever the names (a newline and a forged entry, `, `, ` -> `, quotes, a
    bidirectional override), it is one line of printable text that the documented
    expression matches and that splits back into exactly the names applied."""
    names = [
        "plain.md", "my note.md", f"nl\n{FORGED_ENTRY}", "a, b.md", "x -> y.md",
        'q"=\\.md', "bidi \u202etxt.md", "and 3 more.md",
    ]  # fmt: skip
    changes = [
        Change(seq=1, op="move", path=names[1], prev_path=names[0], id="i", blake3_before="b",
               blake3_after="b", cause="event", ts=0.0),
        *(Change(seq=i + 2, op="upsert" if i % 2 else "delete", path=name, prev_path=None,
                 id="i", blake3_before=None, blake3_after=None, cause="reconcile", ts=0.0)
          for i, name in enumerate(names[2:])),
    ]  # fmt: skip
    line = applied_line(changes)
    assert line.isprintable()
    entry = f"2026-11-27 14:03:07.412+0100 | INFO     | {line}"
    m = re.match(DOCUMENTED_APPLIED, entry)
    assert m, line
    assert (m["count"], m["cause"], m["more"]) == ("7", "event, reconcile", "2")
    got = [
        (c["op"], _field_value(c["a"]), c["b"] and _field_value(c["b"]))
        for c in ONE_CHANGE.finditer(m["changes"])
    ]
    want = [("move", names[0], names[1])] + [(c.op, c.path, None) for c in changes[1:NAMED]]
    assert got == want
    one = applied_line(changes[2:3])
    assert one.startswith("APPLIED 1 change (reconcile): ") and " more" not in one


def test_log_ops_shows_what_the_daemon_applied(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """A create, an edit, a rename and a delete while the daemon runs, and a file made
    while it was stopped, each reach the log as an APPLIED line naming the path;
    `log --ops` shows those lines only, not a forged one, and `--ops --drift` adds the
    drift line."""
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.env = env
    d.start()
    assert d.stop() == 0
    (vault / "offline note.md").write_text("made while stopped\n")
    d.start()
    d.settle()
    (vault / "new.md").write_text("# new\n")
    d.settle()
    (vault / "a.md").write_text("# a, edited\n")
    d.settle()
    (vault / "new.md").rename(vault / "renamed.md")
    d.settle()
    (vault / "a.md").unlink()
    d.settle()
    assert d.stop() == 0
    path = log_file(tmp_path)
    with path.open("a", encoding="utf-8") as f:  # by hand: not the daemon's
        f.write(
            "2026-11-27 14:03:07.412+0100 | WARNING  | APPLIED 1 change (event): delete x.md\n"
            "2026-11-27 14:03:07.412+0100 | INFO     | APPLIED 1 change (event): upsert \x1b[2J\n"
        )
    ops = cli(env, vault, d.data, "log", "--ops")
    assert ops.returncode == 0, ops.stderr
    lines = ops.stdout.splitlines()
    matched = [re.match(DOCUMENTED_APPLIED, line) for line in lines]
    assert all(matched), lines
    said = ", ".join(m["changes"] for m in matched if m)
    for change in (
        'upsert "offline note.md"', "upsert new.md", "upsert a.md",
        "move new.md -> renamed.md", "delete a.md",
    ):  # fmt: skip
        assert change in said, lines
    assert "x.md" not in said and "\\x1b" not in ops.stdout
    assert {m["cause"] for m in matched if m} == {"event", "reconcile"}
    both = cli(env, vault, d.data, "log", "--ops", "--drift").stdout.splitlines()
    assert [line for line in both if "DRIFT kind=created-offline" in line]
    assert sorted(set(both) - set(lines)) == [line for line in both if "DRIFT kind=" in line]


# --- rotation, retention and `log --since` ------------------------------------------

BURST = """
for i in range(100):
    logger.info("old-{:03d} " + "x" * 60, i)
time.sleep(1.1)
now = time.time()
print(time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + ".%03d" % int(now % 1 * 1000))
time.sleep(0.01)
for i in range(20):
    if i == 3:
        logger.warning('DRIFT kind=missed-event path=new-003.md detail="from the test"')
    else:
        logger.info("new-{:03d} " + "y" * 60, i)
"""


def test_rotation_retention_and_since(tmp_path: Path, vault: Path, env: dict[str, str]) -> None:
    """At log_max_bytes the file is rotated into a .gz, log_retention of which are kept;
    `log --since` reads the compressed files too, oldest first, and picks by time;
    `--drift` finds the drift line inside a compressed file."""
    burst = child(tmp_path, env, vault, BURST, "run", "log_max_bytes=1000", "log_retention=3")
    boundary = burst.stdout.strip()
    path = log_file(tmp_path)
    rotated = reader.rotated_files(path)
    assert len(rotated) == 3, rotated  # ~12 rotations happened: 3 are kept
    assert all(p.name.endswith(".log.gz") for p in rotated)
    assert set(path.parent.iterdir()) == {path, *rotated}
    texts: list[str] = []
    for p in [*rotated, path]:
        text = read_any(p)
        assert len(text.encode()) <= 1000, p
        texts += messages(text.splitlines())
    assert texts[-1].startswith("new-019 ")
    assert not any(t.startswith("old-000 ") for t in texts)  # the oldest were deleted
    assert any("new-000" in read_any(p) for p in rotated)  # --since must open a .gz

    since = cli(env, vault, tmp_path / "data", "log", "--since", boundary)
    assert since.returncode == 0, since.stderr
    got = [t.split(" ")[0] for t in messages(since.stdout.splitlines())]
    assert got == [f"new-{i:03d}" if i != 3 else "DRIFT" for i in range(20)]

    everything = cli(env, vault, tmp_path / "data", "log", "--since", "1d")
    assert messages(everything.stdout.splitlines()) == texts  # oldest first, all kept

    current = cli(env, vault, tmp_path / "data", "log")
    assert current.stdout == path.read_text(encoding="utf-8")

    drift = cli(env, vault, tmp_path / "data", "log", "--drift", "--since", "10m")
    assert drift.returncode == 0, drift.stderr
    lines = drift.stdout.splitlines()
    assert len(lines) == 1 and re.match(DOCUMENTED_DRIFT, lines[0]), lines
    assert "path=new-003.md" in lines[0]

    future = (datetime.now().astimezone() + timedelta(hours=1)).isoformat()
    assert cli(env, vault, tmp_path / "data", "log", "--since", future).stdout == ""


def test_parse_since() -> None:
    now = datetime.now().astimezone()
    for text, ago in (("10m", 600), ("2h", 7200), ("1d", 86400), ("30s", 30), ("1w", 604800)):
        assert abs((now - reader.parse_since(text)).total_seconds() - ago) < 5, text
    assert reader.parse_since("2026-11-27") == datetime(2026, 11, 27).astimezone()
    assert reader.parse_since("2026-11-27T14:30+01:00").isoformat() == (
        datetime.fromisoformat("2026-11-27T14:30+01:00").astimezone().isoformat()
    )
    assert reader.parse_since("2026-11-27 14:30:05.250").microsecond == 250000
    today = reader.parse_since("14:30")
    assert (today.date(), today.hour, today.minute) == (now.date(), 14, 30)
    for bad in ("", "yesterday", "10 parsecs", "2026-13-01"):
        with pytest.raises(ValueError, match="not a time"):
            reader.parse_since(bad)


def test_bad_since_is_a_usage_error(tmp_path: Path, vault: Path, env: dict[str, str]) -> None:
    proc = cli(env, vault, tmp_path / "data", "log", "--since", "soon")
    assert proc.returncode == 2
    assert "not a time: 'soon'" in proc.stderr


# --- following ---------------------------------------------------------------------


@pytest.fixture
def follower(tmp_path: Path, vault: Path, env: dict[str, str]) -> Iterator[queue.Queue[str]]:
    """`ccc-watch log -f` as a child process; its stdout lines arrive in the queue."""
    child(tmp_path, env, vault, 'for i in range(3):\n    logger.info("before-{}", i)\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir",
         str(tmp_path / "data"), "log", "-f"],
        stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield lines
    finally:
        proc.kill()
        proc.wait(timeout=10)


def take_until(lines: queue.Queue[str], needle: str, timeout: float = 20) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(needle in line for line in got):
        try:
            if time.monotonic() > deadline:
                raise queue.Empty
            got.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            pytest.fail(f"{needle!r} never came; got {got[-20:]}")
    return got


FOLLOWED = """
for i in range(30):
    logger.info("after-{:02d} " + "z" * 60, i)
    time.sleep(0.05)
"""


def test_follow_prints_appended_lines_across_rotations(
    tmp_path: Path, vault: Path, env: dict[str, str], follower: queue.Queue[str]
) -> None:
    """-f shows the end of the file, then each new line, also once loguru has rotated
    the file away (several times) under it, in order and never twice."""
    shown = messages(take_until(follower, "before-2"))
    assert shown == ["before-0", "before-1", "before-2"]
    child(tmp_path, env, vault, FOLLOWED, "run", "log_max_bytes=1000")
    assert len(reader.rotated_files(log_file(tmp_path))) >= 2
    got = [m.split(" ")[0] for m in messages(take_until(follower, "after-29"))]
    assert got[0] == "after-00" and got[-1] == "after-29"
    assert got == sorted(set(got)), got  # in order, none twice (a rotation may skip some)


# --- journald and tracebacks --------------------------------------------------------

LEVELS = """
logger.debug("a debug line")
logger.info("an info line")
logger.warning("a warning line")
def boom(secret_value):
    return len(secret_value) / 0
try:
    boom(sys.argv[-1])
except ZeroDivisionError:
    logger.exception("it failed")
"""


def test_journald_prefixes_and_no_variable_values(
    tmp_path: Path, vault: Path, env: dict[str, str]
) -> None:
    """With JOURNAL_STREAM naming the child's stderr, every stderr line (a traceback's
    too) starts with its syslog priority; with another dev:ino, the usual stderr (for a
    command off a terminal, its warnings and errors in the file's shape).
    Neither stderr nor the file shows the value of a variable in a traceback."""
    secret = "hunter2-" + "s3cr3t"
    err = tmp_path / "stderr.txt"
    err.touch()
    st = err.stat()
    own = tmp_path / "logs {odd}" / "v.log"  # braces are no loguru placeholder here
    child(
        tmp_path, env | {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, vault, LEVELS, "run",
        f"log_file={own}", secret, stderr=err)  # fmt: skip
    lines = err.read_text().splitlines()
    assert lines[:4] == [
        "<7>a debug line",
        "<6>an info line",
        "<4>a warning line",
        "<3>it failed",
    ]
    assert lines[4] == "<3>Traceback (most recent call last):"
    assert lines[-1] == "<3>ZeroDivisionError: division by zero"
    assert all(line.startswith("<3>") for line in lines[4:])

    text = own.read_text(encoding="utf-8")
    assert "a debug line" not in text  # the file starts at INFO
    assert "Traceback (most recent call last):" in text
    assert "ZeroDivisionError: division by zero" in text
    assert "| ERROR    | it failed\n" in text
    for shown in (text, err.read_text()):
        assert secret not in shown
        assert "└" not in shown and "-> " not in shown  # loguru's variable annotations

    other = tmp_path / "stderr-other.txt"
    other.touch()
    st = other.stat()
    child(
        tmp_path, env | {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, vault, LEVELS,
        "status", secret, stderr=other)  # fmt: skip
    plain = other.read_text()
    assert not re.search(r"^<\d>", plain, re.M)
    # `status` off a terminal: its warning and its error, in the file's shape
    entries = [m["message"] for m in map(ENTRY.match, plain.splitlines()) if m]
    assert entries == ["a warning line", "it failed"], plain
    assert plain.splitlines()[2] == "Traceback (most recent call last):"
    assert secret not in plain
    assert not log_file(tmp_path).exists()  # `status` writes no file
