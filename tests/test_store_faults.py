"""Store faults end to end: every command that touches the store, run as a real `ccc-watch`
subprocess on both backends, against a store file damaged on disk, a full disk (a real tmpfs
mounted on the data dir) and a store that another real process holds open for writing.

Each failure must be one line naming the store file and the cause, with the exit code the
README documents (65 damaged, 70 internal error, 74 disk full, 75 locked), and never a
traceback. Nothing is mocked: real files under tmp_path, real engines, real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from disks import fill
from records import stored_value

from ccc_watch.errors import EXIT_DATAERR, EXIT_IOERR, EXIT_SOFTWARE, EXIT_TEMPFAIL

SAMPLE_VAULT = Path(__file__).parent.parent / "sample-vault"
STORE_FILES = {"redb": "index.redb", "sqlite": "index.sqlite"}
BACKENDS = list(STORE_FILES)
# The console script beside this interpreter: the real entry point.
SCRIPT = Path(sys.executable).with_name("ccc-watch")
PROGRAM = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ccc_watch.cli"]
MARK = "zqxmarker"  # text of the extra notes, found again in the store's pages
STATUS_NOT_RUNNING = 2  # `status` exits 2 when no daemon runs, whatever the store says

READERS = (["info"], ["dump"], ["get", "n100.md"], ["verify"], ["mirror"])
WRITERS = (["init"], ["check"], ["scan"], ["run"])
# `rebuild` comes last in every scenario: on a damaged store it is the remedy. `run` is
# one too (it rebuilds a damaged store itself): tests/test_daemon_faults.py.


@dataclass
class Site:
    """A vault, its data dir and the environment the commands run in."""

    root: Path
    vault: Path
    data: Path
    backend: str
    env: dict[str, str]

    @property
    def store(self) -> Path:
        return self.data / STORE_FILES[self.backend]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [*PROGRAM, *args]
        argv += ["--vault", str(self.vault), "--data-dir", str(self.data)]
        argv += ["--backend", self.backend]
        return subprocess.run(
            argv,
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def make_site(root: Path, backend: str, data: Path | None = None) -> Site:
    """The sample vault plus 200 notes, indexed by a real `ccc-watch rebuild`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        (root / name.lower()).mkdir()
        env[name] = str(root / name.lower())
    vault = root / "vault"
    shutil.copytree(SAMPLE_VAULT, vault, symlinks=True)
    for i in range(200):
        (vault / f"n{i:03d}.md").write_text(f"# note {i}\n\n" + f"{MARK}{i:03d} " * 40 + "\n")
    site = Site(root, vault, data or root / "data", backend, env)
    built = site.run("rebuild")
    assert built.returncode == 0, built.stderr
    return site


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """proc failed with `code` and said why in one `ccc-watch:` line (its last), naming every
    needle; no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.args, proc.returncode, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ccc-watch: ")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.rstrip("\n").endswith(errors[0]), proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def assert_ok(proc: subprocess.CompletedProcess[str], code: int = 0) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.args, proc.returncode, proc.stderr)
    assert "ccc-watch: " not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------------------------
# (a) a store file damaged on disk
# --------------------------------------------------------------------------------------------

PAGE = 4096


def damage(path: Path, how: str) -> None:
    value = stored_value(path, "n100.md")
    for suffix in ("-wal", "-shm"):  # SQLite's, of the read above
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    data = path.read_bytes()
    with path.open("r+b") as f:
        if how == "middle":
            # Garbage over every page holding note n100's record: live data in mid-file.
            pages = {
                edge // PAGE * PAGE
                for at in _find_all(data, value)
                for edge in (at, at + len(value) - 1)
            }
            assert pages, "the record's text is not in the store file"
            assert all(0 < p < len(data) - PAGE for p in pages), (pages, len(data))
            for page in sorted(pages):
                f.seek(page)
                f.write(b"\xa5" * PAGE)
        elif how == "truncated":
            f.truncate(len(data) // 2)
        elif how == "header":
            f.write(b"\xa5" * 100)  # the magic number / "SQLite format 3" and what follows
        elif how == "value":
            # One byte in the middle of note n100's stored (compressed) record flipped, in
            # every copy (old ones stay in free pages): neither engine checks a value's bytes
            # when it reads them (redb's page checksums are checked by `check`); the frame's
            # checksum makes it a record that does not decode.
            found = list(_find_all(data, value))
            assert found, "the record's value is not in the store file"
            for at in found:
                mid = at + len(value) // 2
                f.seek(mid)
                f.write(bytes([data[mid] ^ 0xFF]))


def _find_all(data: bytes, needle: bytes) -> Iterator[int]:
    at = data.find(needle)
    while at != -1:
        yield at
        at = data.find(needle, at + 1)


DAMAGED = "store file is damaged: {store}: "
# What each command does with each kind of damage. A header or a short file is caught when
# the store opens. Damage inside the data (garbage over the pages of records, one flipped
# byte of a record) is met only by the commands that read it: SQLite and a redb writer
# (which verifies the file after redb fails) call it damage; a redb reader meeting a bad
# page trusts the file, redb panics, and that is an internal error whose message says the
# file may be damaged and how to tell; a flipped byte is a record that does not decode.
INSIDE = {
    "info": 0,  # meta and counts only: not the damaged records
    "dump": EXIT_DATAERR,
    "get": EXIT_DATAERR,
    "verify": EXIT_DATAERR,
    "mirror": 0,  # nothing to apply after the watermark: the records are not read
    "init": 0,
    "check": EXIT_DATAERR,  # redb's page checksums; SQLite has none for a value (expected())
    "scan": EXIT_DATAERR,
}
EXPECTED = {
    "header": dict.fromkeys(INSIDE, EXIT_DATAERR),
    "truncated": dict.fromkeys(INSIDE, EXIT_DATAERR),
    "value": INSIDE,
    "middle": INSIDE,
}


def expected(how: str, backend: str, command: str) -> int:
    if how == "middle" and backend == "redb" and command in ("dump", "get", "verify"):
        return EXIT_SOFTWARE
    if how == "value" and backend == "sqlite" and command == "check":
        return 0  # integrity_check reads the b-tree, not the bytes of a value
    return EXPECTED[how][command]


def ids(site: Site) -> dict[str, str]:
    """Every record's id by path, read with a real `ccc-watch dump`."""
    proc = site.run("dump")
    assert_ok(proc)
    return {r["path"]: r["id"] for r in map(json.loads, proc.stdout.splitlines())}


@pytest.mark.parametrize("how", ["value", "middle", "truncated", "header"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_damaged_store_every_command(tmp_path: Path, backend: str, how: str) -> None:
    """Each command against the same damaged file (restored before each): the documented
    exit code and one line naming the file and the damage; `status` reports it and exits 2
    (no daemon); `rebuild` recreates the store from the vault, keeping the ids of every
    record it could still read, after which it reads fine and nothing of the damaged file
    is left in the data dir."""
    site = make_site(tmp_path, backend)
    (site.vault / "renamed.md").write_text("# kept id\n")  # an id a new index cannot derive
    assert_ok(site.run("scan"))
    (site.vault / "renamed.md").rename(site.vault / "moved.md")
    assert_ok(site.run("scan"))
    before = ids(site)
    damage(site.store, how)
    damaged = site.store.read_bytes()
    store = str(site.store)

    def restore() -> None:
        site.store.write_bytes(damaged)  # `check` may have repaired it, a writer touched it
        for suffix in ("-wal", "-shm"):
            site.store.with_name(site.store.name + suffix).unlink(missing_ok=True)

    for argv in (*READERS, *(w for w in WRITERS if w != ["run"])):
        restore()
        proc = site.run(*argv)
        code = expected(how, backend, argv[0])
        if code == 0:
            assert_ok(proc)
        elif code == EXIT_SOFTWARE:
            line = assert_one_line(proc, code, "internal error in the store engine", store)
            assert "may be damaged" in line and "ccc-watch check" in line, line
            assert "ccc-watch rebuild" in line, line
        else:
            line = assert_one_line(proc, code, DAMAGED.format(store=store), "ccc-watch rebuild")
            assert line.endswith("run `ccc-watch rebuild` to recreate it from the vault"), line

    restore()
    status = site.run("status")
    assert_ok(status, STATUS_NOT_RUNNING)
    if how in ("truncated", "header"):  # status reads the head only, not damaged records
        assert DAMAGED.format(store=store) in status.stdout, status.stdout

    restore()
    rebuilt = site.run("rebuild")
    assert_ok(rebuilt)
    assert "old store cannot be read" in rebuilt.stderr, rebuilt.stderr
    assert "moved it aside" in rebuilt.stderr, rebuilt.stderr
    left = [p.name for p in site.data.iterdir() if p.name.startswith(".") or "damage" in p.name]
    assert not left, "the damaged file, a damage note or a work folder was left behind"
    assert_ok(site.run("check"))
    got = site.run("get", "n100.md")
    assert_ok(got)
    assert f"{MARK}100" in got.stdout
    assert_ok(site.run("verify"))
    after = ids(site)
    assert after.keys() == before.keys()
    if how == "value":  # every record but the flipped one could still be read
        assert {p: i for p, i in after.items() if p != "n100.md"} == {
            p: i for p, i in before.items() if p != "n100.md"
        }
        assert after["moved.md"] == before["moved.md"]


@pytest.mark.parametrize("how", ["value", "middle"])
def test_damage_found_by_check_is_damage_for_every_reader(tmp_path: Path, how: str) -> None:
    """Once `check` found the redb file damaged, redb leaves it flagged as needing a repair,
    which is all a reader can see: every reader still calls it damaged (65, what `check`
    found), never a file that was not closed cleanly; a writer agrees, and `rebuild` cures
    it."""
    site = make_site(tmp_path, "redb")
    damage(site.store, how)
    found = assert_one_line(site.run("check"), EXIT_DATAERR, DAMAGED.format(store=site.store))
    detail = found.split(f"{site.store}: ", 1)[1].split("; run `ccc-watch rebuild`")[0]
    for argv in (*READERS, ["scan"], ["init"]):
        line = assert_one_line(site.run(*argv), EXIT_DATAERR, DAMAGED.format(store=site.store))
        assert "not closed cleanly" not in line, line
        if argv[0] in ("info", "dump"):
            assert detail in line, (detail, line)
    assert_ok(site.run("rebuild"))
    for argv in READERS:
        assert_ok(site.run(*argv))


# --------------------------------------------------------------------------------------------
# (b) a full disk
# --------------------------------------------------------------------------------------------


def leftovers(data: Path) -> list[str]:
    """Temp files and work folders in a data dir (every one of them starts with a dot)."""
    return sorted(p.name for p in data.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("backend", BACKENDS)
def test_full_disk_every_command(tmp_path: Path, small_disk: Path, backend: str) -> None:
    """With the data dir on a full tmpfs: the readers work; the writers that have nothing to
    write work; those that must write (scan and rebuild with new notes, run) exit 74 naming the
    file and the full disk; the mirror's own failure is one line too. Once space is freed (and
    a writable open repaired what the failed writer could not close) the store holds exactly
    what it held: the last commit is intact."""
    site = make_site(tmp_path, backend, data=small_disk)
    before = site.run("dump")
    assert_ok(before)
    (small_disk / "mirror.duckdb").unlink()  # so that `mirror` has to write a new one
    filler = fill(small_disk)
    store = str(site.store)

    for argv in (["info"], ["dump"], ["get", "n100.md"]):
        assert_ok(site.run(*argv))
    assert_ok(site.run("status"), STATUS_NOT_RUNNING)
    line = assert_one_line(site.run("mirror"), 1, "cannot open the mirror", "No space left")
    assert str(small_disk) in line, line

    for i in range(300):  # work for the writers: about 1 MB of new records
        (site.vault / f"new{i:03d}.md").write_text(f"# new {i}\n\n" + "words " * 300)
    assert_ok(site.run("init"))
    assert_ok(site.run("check"))
    for argv in (["scan"], ["rebuild"]):
        line = assert_one_line(site.run(*argv), EXIT_IOERR, "no space left for the store file")
        assert str(small_disk) in line and "free space on that disk" in line, line
    line = assert_one_line(site.run("run"), EXIT_IOERR, "no space left for the ")
    assert str(small_disk) in line, line
    assert store in line or "daemon.pid" in line, line

    filler.unlink()
    # A writer that failed mid-commit could not close cleanly: the next writable open (here
    # `check`) repairs the file, and then it holds exactly what it held before.
    assert_ok(site.run("check"))
    after = site.run("dump")
    assert_ok(after)
    assert after.stdout == before.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_full_disk_leaves_no_temp_files(tmp_path: Path, small_disk: Path, backend: str) -> None:
    """On a disk with room to begin but not to finish, `mirror --rebuild` and `rebuild` fail
    with one line each and leave no temp file or work folder behind, and the old mirror and
    store are untouched."""
    site = make_site(tmp_path, backend, data=small_disk)
    before = site.run("dump")
    mirror = (small_disk / "mirror.duckdb").read_bytes()
    for i in range(300):  # about 1 MB of new records for `rebuild`
        (site.vault / f"new{i:03d}.md").write_text(f"# new {i}\n\n" + "words " * 300)
    fill(small_disk, leave=300_000)

    line = assert_one_line(site.run("mirror", "--rebuild"), 1, "cannot write the mirror")
    assert "No space left" in line, line
    assert leftovers(small_disk) == []
    line = assert_one_line(site.run("rebuild"), EXIT_IOERR, "no space left for the store file")
    assert leftovers(small_disk) == []

    assert (small_disk / "mirror.duckdb").read_bytes() == mirror
    assert site.run("dump").stdout == before.stdout


# --------------------------------------------------------------------------------------------
# (c) a damaged mirror
# --------------------------------------------------------------------------------------------


def damage_mirror(path: Path, how: str) -> None:
    """Garbage over the header, the file cut in half, or garbage in its first data block."""
    data = path.read_bytes()
    with path.open("r+b") as f:
        if how == "header":
            f.write(b"\xa5" * 100)
        elif how == "truncated":
            f.truncate(len(data) // 2)
        elif how == "block":
            f.seek(PAGE)
            f.write(b"\xa5" * 64)


@pytest.mark.parametrize("how", ["header", "truncated", "block"])
def test_damaged_mirror_is_rebuilt(tmp_path: Path, how: str) -> None:
    """A damaged mirror file is rebuilt from the store by the next flush (`ccc-watch mirror`
    here, the daemon's flusher alike), with a warning naming the damage, instead of failing
    at every flush; afterwards the mirror equals the store."""
    site = make_site(tmp_path, "redb")
    damage_mirror(site.data / "mirror.duckdb", how)
    (site.vault / "n100.md").write_text("# changed\n")
    proc = site.run("scan")  # a store change, then a flush of the mirror
    assert_ok(proc)
    assert "the mirror file is damaged" in proc.stderr, proc.stderr
    assert_ok(site.run("verify"))
    assert leftovers(site.data) == []
    damage_mirror(site.data / "mirror.duckdb", how)
    proc = site.run("mirror")  # nothing to apply, and still a mirror to open
    assert_ok(proc)
    assert "the mirror file is damaged" in proc.stderr, proc.stderr
    assert_ok(site.run("verify"))


# --------------------------------------------------------------------------------------------
# (d) a store that another process holds open for writing
# --------------------------------------------------------------------------------------------

HOLDER = """
import select, sys
from pathlib import Path
from ccc_watch.store import open_store

store = open_store(Path(sys.argv[1]), backend=sys.argv[2], vault_root=Path(sys.argv[3]))
print("ready", flush=True)
tick = 0
while not select.select([sys.stdin], [], [], 0.02)[0]:   # commit until stdin closes
    store.set_meta("holder_tick", tick)
    tick += 1
store.close()
print("ticks", tick, flush=True)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_held_by_another_writer(tmp_path: Path, backend: str) -> None:
    """While another process holds the store open and commits to it every 20 ms, every
    read-only command works (readers never fail because of the writer), `init` says the
    store exists and who holds it (exit 0), and every command that writes exits 75 with
    one line naming the file; the holder is undisturbed."""
    site = make_site(tmp_path, backend)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), site.data, backend, site.vault.resolve()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=site.env,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ready"
        for argv in READERS:
            assert_ok(site.run(*argv))
        assert_ok(site.run("status"), STATUS_NOT_RUNNING)
        # init beside a writer says what exists and changes nothing (README "Commands").
        init = site.run("init")
        assert_ok(init)
        assert "in use by" in init.stdout and "nothing changed" in init.stdout, init.stdout
        for argv in (*(w for w in WRITERS if w != ["init"]), ["rebuild"]):
            assert_one_line(
                site.run(*argv),
                EXIT_TEMPFAIL,
                f"store is open for writing in another process (is `ccc-watch run` running?): "
                f"{site.store}",
            )
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0, holder.stderr.read() if holder.stderr else ""
        ticks = holder.stdout.readline().split()
        assert ticks[0] == "ticks" and int(ticks[1]) > 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
    assert_ok(site.run("check"))
