"""SCENARIOS.md groups C, D, E and F against a real `ccc-watch run` process.

Bursts (a git checkout, a copied tree, racing mkdir, a thousand renames), crashes and
restarts (kill -9 during churn, the vault folder replaced, a changed device number),
awkward files (an unreadable folder, symlinks, odd names) and the artefacts of sync
tools and Obsidian's own settings. Each test drives the daemon as users do and ends
with `settle()`: `verify` (an independent walk-and-hash) is clean, and then checks the
scenario's own expected end state.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from conftest import VAULTGEN, own_vault
from daemon_harness import MODES, Daemon, wait_until
from privileges import blocked_prefix

from ccc_watch.mirror.mirror import Mirror
from ccc_watch.store import open_store
from ccc_watch.vault.ignore import IgnoreRules


class ScenarioDaemon(Daemon):
    """A Daemon started with extra `run` flags and an optional command prefix, judged by
    the ignore rules those flags give (the harness's judge reads the default rules)."""

    def __init__(
        self,
        vault: Path,
        data: Path,
        log: Path,
        *,
        run_args: Sequence[str] = (),
        prefix: Sequence[str] = (),
        config_dir: str = ".obsidian",
        patterns: Sequence[str] = (),
    ) -> None:
        super().__init__(vault, data, log)
        self.run_args, self.prefix = list(run_args), list(prefix)
        self.config_dir, self.patterns = config_dir, tuple(patterns)

    def rules(self) -> IgnoreRules:
        """The rules the daemon should be applying."""
        return IgnoreRules.load(self.vault, config_dir=self.config_dir, patterns=self.patterns)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test started; any still running at the end are stopped."""
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGCONT)  # a paused daemon handles no SIGTERM
            d.proc.terminate()  # a clean stop lets it end its worker processes
            try:
                d.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()


def launch(
    tmp_path: Path,
    vault: Path,
    daemons: list[Daemon],
    timeout: float = 15,
    *,
    run_args: Sequence[str] = (),
    prefix: Sequence[str] = (),
    config_dir: str = ".obsidian",
) -> ScenarioDaemon:
    """A ScenarioDaemon on vault (data and log under tmp_path), started and clean."""
    d = ScenarioDaemon(
        vault, tmp_path / "data", tmp_path / "daemon.log",
        run_args=run_args, prefix=prefix, config_dir=config_dir,
    )  # fmt: skip
    daemons.append(d)
    d.start()
    d.settle(timeout)
    return d


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def small_vault(root: Path) -> Path:
    write(root / ".obsidian" / "app.json", "{}")
    write(root / "Welcome.md", "# Welcome\n[[Notes/n0]]\n")
    for i in range(3):
        write(root / "Notes" / f"n{i}.md", f"note {i} #n\n")
    return root


def log_text(d: Daemon) -> str:
    return d.log.read_text(errors="replace")


def alive(d: Daemon) -> bool:
    return d.proc is not None and d.proc.poll() is None


# --- C1 / D2: git checkout -------------------------------------------------------------

SHARED, EDITED = 500, 300  # notes on both branches; beta edits the first EDITED
ALPHA_FOLDERS, ALPHA_PER = 30, 40  # 1,200 notes only on alpha
BETA_TOP, BETA_LEAF, BETA_PER = 10, 10, 15  # 1,500 notes only on beta, in 110 new folders
ALPHA_COUNT = SHARED + ALPHA_FOLDERS * ALPHA_PER
BETA_COUNT = SHARED + BETA_TOP * BETA_LEAF * BETA_PER

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "ccc-watch tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "ccc-watch tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, env=GIT_ENV, timeout=120
    )


@pytest.fixture(scope="module")
def git_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vault that is a git repository with branches alpha (checked out) and beta,
    which differ in 3,000 notes: 1,200 only on alpha, 1,500 only on beta in 110 folders
    alpha lacks, and 300 edited."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path_factory.mktemp("git") / "vault"
    root.mkdir()
    git(root, "init", "-q", "-b", "alpha")
    for i in range(SHARED):
        write(
            root / "Shared" / f"s{i:03d}.md", f"# shared {i}\n[[Shared/s{(i + 1) % SHARED:03d}]]\n"
        )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "branch", "beta")
    for f in range(ALPHA_FOLDERS):
        for i in range(ALPHA_PER):
            write(root / "Alpha" / f"a{f:02d}" / f"n{i:02d}.md", f"# alpha {f}/{i}\n#alpha\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "alpha")
    git(root, "checkout", "-q", "beta")
    for t in range(BETA_TOP):
        for leaf in range(BETA_LEAF):
            for i in range(BETA_PER):
                note = root / "Beta" / f"b{t}" / f"c{leaf}" / f"n{i:02d}.md"
                write(note, f"# beta {t}/{leaf}/{i}\n#beta\n")
    for i in range(EDITED):
        write(root / "Shared" / f"s{i:03d}.md", f"# shared {i}, edited on beta\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "beta")
    git(root, "checkout", "-q", "alpha")
    return root


def assert_alpha(records: dict[str, dict[str, object]]) -> None:
    assert len(records) == ALPHA_COUNT
    assert not [p for p in records if p.startswith("Beta/")]
    assert records["Alpha/a29/n39.md"]["body"] == "# alpha 29/39\n#alpha\n"
    assert records["Shared/s000.md"]["body"] == "# shared 0\n[[Shared/s001]]\n"


def assert_beta(records: dict[str, dict[str, object]]) -> None:
    assert len(records) == BETA_COUNT
    assert not [p for p in records if p.startswith("Alpha/")]
    assert sum(p.startswith("Beta/") for p in records) == BETA_TOP * BETA_LEAF * BETA_PER
    assert records["Beta/b9/c9/n14.md"]["body"] == "# beta 9/9/14\n#beta\n"
    assert records["Shared/s000.md"]["body"] == "# shared 0, edited on beta\n"
    assert records["Shared/s299.md"]["body"] == "# shared 299, edited on beta\n"
    assert records["Shared/s300.md"]["body"] == "# shared 300\n[[Shared/s301]]\n"


@pytest.mark.parametrize("mode", MODES)
def test_c1_d2_git_checkout_between_branches(
    tmp_path: Path, git_vault: Path, daemons: list[Daemon], mode: str
) -> None:
    """C1 (live), D2 (stopped) and paused: `git checkout` to a branch differing in
    3,000 notes and 110 folders, then back: every record follows, .git/ stays out."""
    vault = tmp_path / "vault"
    shutil.copytree(git_vault, vault, symlinks=True)
    d = launch(tmp_path, vault, daemons, timeout=60)
    assert_alpha(d.records())
    with d.during(mode):
        git(vault, "checkout", "-q", "beta")
    d.settle(timeout=120)
    assert_beta(d.records())
    with d.during(mode):
        git(vault, "checkout", "-q", "alpha")
    d.settle(timeout=120)
    records = d.records()
    assert_alpha(records)
    assert not [p for p in records if p.startswith(".git")]
    assert alive(d)


# --- C3, C7, C8: bursts -----------------------------------------------------------------


def test_c3_copying_a_tree_of_3000_files_into_the_vault(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    """C3: `cp -r` of 3,000 files in 60 nested leaf folders: every one indexed."""
    source = tmp_path / "import"
    leaves = [f"t{t}/m{m}/l{leaf}" for t in range(3) for m in range(4) for leaf in range(5)]
    for leaf in leaves:
        for i in range(50):
            write(source / leaf / f"f{i:02d}.md", f"# {leaf}/{i}\n#imported\n")
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    if shutil.which("cp"):
        subprocess.run(["cp", "-r", str(source), str(d.vault / "Imported")], check=True)
    else:
        shutil.copytree(source, d.vault / "Imported")
    d.settle(timeout=120)
    records = d.records()
    imported = [p for p in records if p.startswith("Imported/")]
    assert len(imported) == 3000
    assert {p.rsplit("/", 1)[0].removeprefix("Imported/") for p in imported} == set(leaves)
    assert records["Imported/t2/m3/l4/f49.md"]["body"] == "# t2/m3/l4/49\n#imported\n"
    assert records["Imported/t0/m0/l0/f00.md"]["tags"] == ["imported"]


def test_c7_mkdir_p_then_files_at_every_level(tmp_path: Path, daemons: list[Daemon]) -> None:
    """C7: `mkdir -p a/b/c/d` and at once a file at every level (racing the watches
    watchdog adds for the new folders), twenty times, deepest level first or last."""
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    expected: dict[str, str] = {}
    for t in range(20):
        levels = [f"Deep{t}", f"Deep{t}/b", f"Deep{t}/b/c", f"Deep{t}/b/c/d"]
        os.makedirs(d.vault / levels[-1])
        for level in levels if t % 2 else reversed(levels):
            key = f"{level}/x{t}.md"
            (d.vault / key).write_text(f"at {key}\n")
            expected[key] = f"at {key}\n"
    d.settle()
    records = d.records()
    assert {k: records[k]["body"] for k in expected if k in records} == expected
    assert len([p for p in records if p.startswith("Deep")]) == 80


def test_c8_a_thousand_renames_in_a_tight_loop(tmp_path: Path, daemons: list[Daemon]) -> None:
    """C8: one note renamed 1,000 times and 1,000 notes renamed once, as fast as the
    file system allows: final names only, settled within a budget; each note renamed
    once keeps its id (for the chain, see the next test)."""
    vault = small_vault(tmp_path / "vault")
    for i in range(1000):
        write(vault / "Many" / f"f{i:04d}.md", f"many {i}\n")
    write(vault / "Hop" / "h0000.md", "# hopping\n")
    d = launch(tmp_path, vault, daemons)
    before = {p: r["id"] for p, r in d.records().items()}
    started = time.monotonic()
    for i in range(1000):
        os.replace(vault / "Hop" / f"h{i:04d}.md", vault / "Hop" / f"h{i + 1:04d}.md")
    for i in range(1000):
        os.replace(vault / "Many" / f"f{i:04d}.md", vault / "Many" / f"g{i:04d}.md")
    d.settle(timeout=60)
    took = time.monotonic() - started
    records = d.records()
    assert [p for p in records if p.startswith("Hop/")] == ["Hop/h1000.md"]
    assert records["Hop/h1000.md"]["body"] == "# hopping\n"
    many = sorted(p for p in records if p.startswith("Many/"))
    assert many == [f"Many/g{i:04d}.md" for i in range(1000)]
    assert all(
        records[f"Many/g{i:04d}.md"]["id"] == before[f"Many/f{i:04d}.md"] for i in range(1000)
    )
    assert took < 30, f"2,000 renames took {took:.1f} s to settle"


def test_c8_a_note_renamed_twice_in_one_settle_window_keeps_its_id(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    """C8/B1: `n0.md -> b.md -> c.md` in a tight loop (as in the 1,000-rename chain):
    one record at c.md, with n0.md's id."""
    vault = small_vault(tmp_path / "vault")
    d = launch(tmp_path, vault, daemons)
    note_id = d.records()["Notes/n0.md"]["id"]
    os.replace(vault / "Notes" / "n0.md", vault / "Notes" / "b.md")
    os.replace(vault / "Notes" / "b.md", vault / "Notes" / "c.md")
    d.settle()
    records = d.records()
    assert [p for p in records if p in ("Notes/n0.md", "Notes/b.md")] == []
    assert records["Notes/c.md"]["body"] == "note 0 #n\n"
    assert records["Notes/c.md"]["id"] == note_id


# --- D3 / I6: kill -9 during churn --------------------------------------------------------


def test_d3_kill9_at_random_moments_during_churn(tmp_path: Path, daemons: list[Daemon]) -> None:
    """D3/I6: kill -9 the daemon five times at random moments while tests/vaultgen.py's
    churn runs (creates, edits, deletes, renames, atomic saves, folder moves), restart it
    each time: clean at the end, and the mirror applied every changelog entry of the
    store exactly once."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=300, seed=3, bad=False)
    d = launch(tmp_path, vault, daemons, timeout=60)
    rng = random.Random(20260413)
    churn = subprocess.Popen(
        [sys.executable, str(VAULTGEN), "churn", str(vault), "--ops", "1000000", "--seed", "5",
         "--sleep", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        for kill in range(5):
            time.sleep(rng.uniform(0.05, 1.2))
            assert churn.poll() is None, f"the churn stopped before kill {kill}"
            d.kill9()
            time.sleep(rng.uniform(0.0, 0.3))
            d.start()
        time.sleep(0.5)  # the last daemon sees churn too
    finally:
        churn.terminate()  # mid-operation, as a user might stop a sync tool
        churn.wait(timeout=30)
    d.settle(timeout=90)
    with open_store(d.data, readonly=True) as store:
        head = store.head()
        store_seqs = [c.seq for c in store.changes_after(0)]
    with Mirror(d.data).connect() as con:
        counted = con.execute("SELECT count(*), count(DISTINCT seq) FROM events").fetchone()
        mirror_seqs = [s for (s,) in con.execute("SELECT seq FROM events ORDER BY seq").fetchall()]
    assert counted is not None and counted[0] == counted[1]  # no seq applied twice
    assert mirror_seqs == store_seqs  # and none left out
    assert store_seqs[-1] == head


# --- D5: the vault folder replaced; D7: a new device number ------------------------------


def _replace_with_new_notes(vault: Path, tag: str) -> set[str]:
    write(vault / "fresh.md", f"# a new vault {tag}\n")
    write(vault / "New" / "n1.md", f"new 1 {tag}\n")
    return {"fresh.md", "New/n1.md"}


def _exit_code(d: Daemon, timeout: float) -> int | None:
    """The daemon's exit code once it exits within timeout, else None (still running)."""
    assert d.proc is not None
    try:
        code = d.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    d.proc = None
    return code


def test_d5_vault_root_replaced_while_running(tmp_path: Path, daemons: list[Daemon]) -> None:
    """D5: `rm -rf` the vault and put a new folder with other notes at the same path:
    the daemon says the vault was deleted or replaced and exits 2; started again, it
    indexes the new folder and nothing of the old one."""
    vault = small_vault(tmp_path / "vault")
    d = launch(tmp_path, vault, daemons)
    incoming = tmp_path / "incoming"  # made first: its inode cannot be the old vault's
    expected = _replace_with_new_notes(incoming, "moved in")
    shutil.rmtree(vault)
    incoming.rename(vault)
    assert _exit_code(d, timeout=10) == 2, log_text(d)
    assert "deleted or replaced" in log_text(d)
    d.start()
    d.settle()
    records = d.records()
    assert set(records) == expected
    assert records["New/n1.md"]["body"] == "new 1 moved in\n"


def test_d5_vault_root_recreated_while_paused(tmp_path: Path, daemons: list[Daemon]) -> None:
    """D5, paused: `rm -rf vault && mkdir vault` while the daemon is stopped by SIGSTOP,
    so it cannot catch the instant the folder is missing. ext4 hands the new folder
    the inode number just freed (unless the daemon holds the old folder open), so a
    check of (st_ino, st_dev) alone misses it. The daemon must still say the vault was
    replaced and exit 2; started again, it indexes the new folder."""
    vault = small_vault(tmp_path / "vault")
    d = launch(tmp_path, vault, daemons)
    with d.during("paused"):
        shutil.rmtree(vault)
        vault.mkdir()
        expected = _replace_with_new_notes(vault, "recreated")
    assert _exit_code(d, timeout=10) == 2, "the replaced vault went unnoticed:\n" + log_text(d)
    assert "deleted or replaced" in log_text(d)
    d.start()
    d.settle()
    records = d.records()
    assert set(records) == expected
    assert records["fresh.md"]["body"] == "# a new vault recreated\n"


def test_d7_new_device_number_at_start(tmp_path: Path, daemons: list[Daemon]) -> None:
    """D7: while the daemon is stopped, the vault's files come back at the same path on
    another file system (a tmpfs mounted over the folder: new st_dev, inodes and
    ctimes; same bytes and mtimes), as when a reboot renumbers a device or a backup is
    restored. The start-up scan must not delete and re-create every note: same ids,
    nothing but upserts in the changelog, no offline drift."""
    vault = small_vault(tmp_path / "vault")
    d = launch(tmp_path, vault, daemons)
    before = {p: r["id"] for p, r in d.records().items()}
    dev_before = os.stat(vault).st_dev
    assert d.stop() == 0
    with open_store(d.data, readonly=True) as store:
        head = store.head()
    saved = tmp_path / "saved"
    shutil.copytree(vault, saved, symlinks=True)  # copy2: mtimes kept
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(vault)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(saved, vault, symlinks=True, dirs_exist_ok=True)
        assert os.stat(vault).st_dev != dev_before
        mark = len(log_text(d))
        d.start()
        d.settle()
        assert {p: r["id"] for p, r in d.records().items()} == before
        with Mirror(d.data).connect() as con:
            ops = con.execute("SELECT DISTINCT op FROM events WHERE seq > ?", [head]).fetchall()
        assert set(ops) <= {("upsert",)}, ops
        assert d.stop() == 0
        assert "DRIFT" not in log_text(d)[mark:]
    finally:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()
            d.proc = None
        subprocess.run(["umount", str(vault)], check=False, capture_output=True)


# --- E1: an unreadable folder -----------------------------------------------------------


def _locked_vault(root: Path) -> tuple[Path, tuple[str, ...]]:
    """A small vault with Locked/ (three notes), and the prefix that binds the daemon
    to the folder's mode bits."""
    vault = small_vault(root)
    for i in range(3):
        write(vault / "Locked" / f"s{i}.md", f"secret {i}\n")
    locked = vault / "Locked"
    locked.chmod(0)
    try:
        prefix = blocked_prefix(locked)
    finally:
        locked.chmod(0o755)
    return vault, prefix


def _warned_unreadable(log: str) -> bool:
    return (
        any(
            "| WARNING " in line and "skip Locked: cannot read folder: Permission denied" in line
            for line in log.splitlines()
        )
        and "folder Locked is unreadable: its records are kept" in log
    )


def test_e1_folder_made_unreadable_while_running(tmp_path: Path, daemons: list[Daemon]) -> None:
    """E1: `chmod 000` a folder while the daemon runs: a warning names the folder, its
    records are kept (not deleted), and the daemon carries on indexing."""
    vault, prefix = _locked_vault(tmp_path / "vault")
    locked = vault / "Locked"
    d = launch(tmp_path, vault, daemons, prefix=prefix)
    ids = {p: r["id"] for p, r in d.records().items() if p.startswith("Locked/")}
    assert len(ids) == 3
    mark = len(log_text(d))
    locked.chmod(0)
    try:
        wait_until(lambda: _warned_unreadable(log_text(d)[mark:]), "the unreadable warning")
        write(vault / "After" / "a.md", "written after the chmod\n")
        write(vault / "Notes" / "n0.md", "note 0, edited after the chmod\n")
        d.settle()
        records = d.records()
        assert {p: r["id"] for p, r in records.items() if p.startswith("Locked/")} == ids
        assert records["After/a.md"]["body"] == "written after the chmod\n"
        assert records["Notes/n0.md"]["body"] == "note 0, edited after the chmod\n"
        assert "path=Locked/" not in log_text(d)[mark:]  # no drift line: nothing deleted
        assert alive(d)
    finally:
        locked.chmod(0o755)


def test_e1_unreadable_folder_at_start(tmp_path: Path, daemons: list[Daemon]) -> None:
    """E1 after a restart: the folder is unreadable when the daemon starts. Its records
    are kept, the warning names it, and the daemon watches normally: an unreadable
    folder is not a shortage of inotify watches."""
    vault, prefix = _locked_vault(tmp_path / "vault")
    locked = vault / "Locked"
    d = launch(tmp_path, vault, daemons, prefix=prefix)
    ids = {p: r["id"] for p, r in d.records().items() if p.startswith("Locked/")}
    assert d.stop() == 0
    mark = len(log_text(d))
    locked.chmod(0)
    try:
        d.ready_states = ("watching", "degraded")  # type: ignore[assignment]
        d.start()
        d.settle()
        assert {p: r["id"] for p, r in d.records().items() if p.startswith("Locked/")} == ids
        log = log_text(d)[mark:]
        assert _warned_unreadable(log)
        assert "path=Locked/" not in log
        assert "out of inotify watches" not in log
        assert d.status()["state"] == "watching"
    finally:
        locked.chmod(0o755)


# --- E2-E4: symlinks ------------------------------------------------------------------


def test_e2_folder_symlink_to_outside_is_never_followed(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    """E2: a folder symlink to a folder outside the vault, made while running, and an
    edit of its target: nothing under it is ever indexed, and it gets no record."""
    outside = tmp_path / "outside"
    write(outside / "o.md", "outside\n")
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    (d.vault / "ext").symlink_to(outside)
    write(d.vault / "marker.md", "m\n")
    d.settle()
    write(outside / "o.md", "outside, edited\n")
    write(outside / "new.md", "outside, new\n")
    write(d.vault / "Notes" / "marker2.md", "m\n")
    d.settle()
    assert not [p for p in d.records() if p.startswith("ext")]
    assert alive(d)


def test_e3_symlink_loop_made_while_running(tmp_path: Path, daemons: list[Daemon]) -> None:
    """E3: `a/loop -> ..` made while running, then a full reconcile (a new folder): no
    endless walk, no record for or under the loop, no duplicates of a/."""
    vault = small_vault(tmp_path / "vault")
    write(vault / "a" / "n.md", "in a\n")
    d = launch(tmp_path, vault, daemons)
    (vault / "a" / "loop").symlink_to("..")
    write(vault / "b" / "m.md", "b\n")  # a folder created: a full reconcile
    d.settle()
    records = d.records()
    assert not [p for p in records if "loop" in p]
    assert sorted(p for p in records if p.startswith(("a/", "b/"))) == ["a/n.md", "b/m.md"]
    assert "skip a/loop: folder symlink: not followed" in log_text(d)
    assert alive(d)


def test_e4_file_symlink_follows_its_target(tmp_path: Path, daemons: list[Daemon]) -> None:
    """E4 (policy in tests/test_vault.py): a file symlink to a note in the vault, made
    while running, is indexed with the target's content; when the target is edited,
    both records follow."""
    vault = small_vault(tmp_path / "vault")
    d = launch(tmp_path, vault, daemons)
    (vault / "link.md").symlink_to("Notes/n0.md")
    d.settle()
    assert d.records()["link.md"]["body"] == "note 0 #n\n"
    write(vault / "Notes" / "n0.md", "note 0, edited through the target\n")
    d.settle()
    records = d.records()
    assert records["Notes/n0.md"]["body"] == "note 0, edited through the target\n"
    assert records["link.md"]["body"] == "note 0, edited through the target\n"


def test_e4_file_symlink_leaving_the_vault_is_skipped(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    """E4 policy: a file symlink whose target is outside the vault gets no record."""
    outside = write(tmp_path / "outside.md", "# outside the vault\n")
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    (d.vault / "out.md").symlink_to(outside)
    write(d.vault / "marker.md", "m\n")
    d.settle()
    assert "out.md" not in d.records()


# --- E5-E7: names -----------------------------------------------------------------------

CAFE_NFC = "Caf\u00e9.md"
CAFE_NFD = unicodedata.normalize("NFD", CAFE_NFC)


def test_e5_nfd_name_gets_one_nfc_key(tmp_path: Path, daemons: list[Daemon]) -> None:
    """E5: a note written under its NFD name is one record under the NFC key; edits
    and a rename keep it one record, with no delete-and-create churn."""
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    nfd = d.vault / "Notes" / CAFE_NFD
    nfd.write_text("# caf\u00e9\n")
    d.settle()
    records = d.records()
    assert [p for p in records if p.startswith("Notes/Caf")] == [f"Notes/{CAFE_NFC}"]
    first_id = records[f"Notes/{CAFE_NFC}"]["id"]
    nfd.write_text("# caf\u00e9, edited\n")
    d.settle()
    nfd.rename(d.vault / unicodedata.normalize("NFD", "R\u00e9sum\u00e9.md"))
    d.settle()
    records = d.records()
    assert not [p for p in records if p.startswith("Notes/Caf")]
    assert records["R\u00e9sum\u00e9.md"]["body"] == "# caf\u00e9, edited\n"
    assert records["R\u00e9sum\u00e9.md"]["id"] == first_id
    ops = [e[0] for e in d.events() if "Caf" in e[1] or "sum" in e[1]]
    assert "delete" not in ops, ops


def test_e5_nfd_to_nfc_rename_right_after_an_edit(tmp_path: Path, daemons: list[Daemon]) -> None:
    """E5: a sync tool fixes an NFD name to NFC just after writing the note (one key
    for both): the record has the new content."""
    vault = small_vault(tmp_path / "vault")
    write(vault / CAFE_NFD, "# before\n")
    d = launch(tmp_path, vault, daemons)
    (vault / CAFE_NFD).write_text("# after, then renamed to NFC\n")
    os.rename(vault / CAFE_NFD, vault / CAFE_NFC)
    d.settle()
    assert d.records()[CAFE_NFC]["body"] == "# after, then renamed to NFC\n"


def test_e6_non_utf8_file_name_is_skipped(tmp_path: Path, daemons: list[Daemon]) -> None:
    """E6: a file whose name is not UTF-8, made while running: no record, a warning
    naming it (bad bytes as \\xNN), and the daemon goes on indexing."""
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    try:
        fd = os.open(os.fsencode(d.vault) + b"/caf\xe9.md", os.O_CREAT | os.O_WRONLY, 0o644)
    except OSError as e:
        pytest.skip(f"this file system refuses non-UTF-8 names: {e}")
    os.write(fd, b"# latin-1 name\n")
    os.close(fd)
    write(d.vault / "Notes" / "after.md", "after the bad name\n")
    d.settle()
    records = d.records()
    assert "Notes/after.md" in records
    assert not [p for p in records if p.startswith("caf")]
    assert "caf\\xe9.md" in log_text(d)
    write(d.vault / "Notes" / "later.md", "still indexing\n")
    d.settle()
    assert "Notes/later.md" in d.records()
    assert alive(d)


def test_e7_long_and_odd_names(tmp_path: Path, daemons: list[Daemon]) -> None:
    """E7: a 255-byte name, names with '[[', a leading '#' and a newline, made while
    running, then renamed: each one record with its content."""
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    names = ["a" * 252 + ".md", "\u00e9" * 126 + ".md", "[[x]] link.md", "#1 idea.md",
             "new\nline.md", "Odd [[dir]]/#tag\nnote.md"]  # fmt: skip
    assert len(names[0].encode()) == 255 and len(names[1].encode()) == 255
    for name in names:
        write(d.vault / name, f"content of {name!r}\n")
    d.settle()
    records = d.records()
    for name in names:
        assert records[name]["body"] == f"content of {name!r}\n"
    os.rename(d.vault / names[3], d.vault / "#2 idea.md")
    os.rename(d.vault / names[4], d.vault / "new\nline\nagain.md")
    d.settle()
    records = d.records()
    assert "#1 idea.md" not in records and "new\nline.md" not in records
    assert records["#2 idea.md"]["body"] == f"content of {names[3]!r}\n"
    assert records["new\nline\nagain.md"]["body"] == f"content of {names[4]!r}\n"


# --- F: sync tools and Obsidian settings -------------------------------------------------


def test_f1_syncthing_temp_renamed_onto_the_note_then_older_mtime(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    """F1: Syncthing writes `.syncthing.n.md.tmp`, renames it onto the note and sets an
    older mtime (or sets it on the temp file first): the note is updated, with the
    file's stat, and the temp name never gets a record."""
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    old = time.time() - 86_400
    for n, times_first in ((0, False), (1, True)):
        note = d.vault / "Notes" / f"n{n}.md"
        tmp = note.with_name(f".syncthing.{note.name}.tmp")
        tmp.write_text(f"# synced from another device {n}\n")
        if times_first:
            os.utime(tmp, (old, old))
        os.replace(tmp, note)
        if not times_first:
            os.utime(note, (old, old))
    d.settle()

    def stat_matches() -> bool:
        records = d.records()
        return all(
            records[f"Notes/n{n}.md"]["mtime_ns"]
            == (d.vault / "Notes" / f"n{n}.md").stat().st_mtime_ns
            for n in (0, 1)
        )

    wait_until(stat_matches, "records carry the older mtime")
    records = d.records()
    for n in (0, 1):
        assert records[f"Notes/n{n}.md"]["body"] == f"# synced from another device {n}\n"
    assert not [p for p in records if "syncthing" in p or p.endswith(".tmp")]


def test_f4_icloud_placeholder_replacing_a_note(tmp_path: Path, daemons: list[Daemon]) -> None:
    """F4: iCloud evicting `n.md` leaves `.n.md.icloud` (an ignored dot-file). The note
    still exists, in the cloud: its record is kept, not deleted, the placeholder gets
    none, and verify agrees. Downloaded again, it is indexed as usual; deleted for real
    (placeholder gone too), its record goes."""
    d = launch(tmp_path, small_vault(tmp_path / "vault"), daemons)
    note = d.vault / "Notes" / "n1.md"
    kept = d.records()["Notes/n1.md"]
    placeholder = note.with_name(".n1.md.icloud")
    placeholder.write_bytes(b"bplist00\xd1\x01\x02_\x10\x0fNSURLNameKey")
    note.unlink()
    (d.vault / "marker.md").write_text("after the eviction\n")
    d.settle()
    records = d.records()
    assert records["Notes/n1.md"] == kept
    assert not [p for p in records if "icloud" in p]
    assert ("delete", "Notes/n1.md", None, "event") not in d.events()
    d.stop()
    d.start()  # a start-up scan keeps it too, and downloads nothing
    d.settle()
    assert d.records()["Notes/n1.md"] == kept
    write(note, "note 1, downloaded and edited #n\n")
    placeholder.unlink()
    d.settle()
    assert d.records()["Notes/n1.md"]["body"] == "note 1, downloaded and edited #n\n"
    note.unlink()
    d.settle()
    assert "Notes/n1.md" not in d.records()


@pytest.mark.parametrize("how", ["in-place", "atomic"])
def test_f6_user_ignore_filters_added_then_removed(
    tmp_path: Path, daemons: list[Daemon], how: str
) -> None:
    """F6: `userIgnoreFilters` in .obsidian/app.json gains `Archive/`, then loses it,
    while the daemon runs; written in place (Obsidian) or through a temp file renamed
    onto it (Syncthing, scripts, most editors): Archive/ leaves the index, then comes
    back."""
    vault = small_vault(tmp_path / "vault")
    for i in range(4):
        write(vault / "Archive" / f"old{i}.md", f"archived {i}\n")
    d = launch(tmp_path, vault, daemons)
    assert len([p for p in d.records() if p.startswith("Archive/")]) == 4
    app = vault / ".obsidian" / "app.json"

    def set_app(data: dict[str, object]) -> None:
        if how == "in-place":
            app.write_text(json.dumps(data))
        else:
            tmp = app.with_name(".app.json.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, app)

    set_app({"userIgnoreFilters": ["Archive/"], "alwaysUpdateLinks": True})
    d.settle()
    assert not [p for p in d.records() if p.startswith("Archive/")]
    assert "Notes/n0.md" in d.records()
    set_app({"userIgnoreFilters": [], "alwaysUpdateLinks": True})
    d.settle()
    records = d.records()
    assert sorted(p for p in records if p.startswith("Archive/")) == [
        f"Archive/old{i}.md" for i in range(4)
    ]
    assert records["Archive/old3.md"]["body"] == "archived 3\n"


def _work_config_vault(root: Path) -> Path:
    small_vault(root)
    # The default folder's filters must NOT apply once the config folder is overridden.
    write(root / ".obsidian" / "app.json", json.dumps({"userIgnoreFilters": ["Notes/"]}))
    write(root / ".obsidian-work" / "app.json", json.dumps({"userIgnoreFilters": ["Private/"]}))
    write(root / ".obsidian-work" / "workspace.json", "{}")
    write(root / ".obsidian-work" / "snippets" / "s.md", "# a snippet\n")
    write(root / "Private" / "p.md", "private\n")
    write(root / "Drafts" / "d.md", "draft\n")
    return root


def _launch_work(tmp_path: Path, daemons: list[Daemon]) -> ScenarioDaemon:
    vault = _work_config_vault(tmp_path / "vault")
    return launch(
        tmp_path, vault, daemons, run_args=["--config-dir", ".obsidian-work"],
        config_dir=".obsidian-work",
    )  # fmt: skip


def test_f7_config_folder_overridden(tmp_path: Path, daemons: list[Daemon]) -> None:
    """F7: `run --config-dir .obsidian-work`: nothing under it is indexed however much
    it changes, its app.json filters apply (.obsidian/app.json's do not), and its
    app.json is what the next start reads."""
    d = _launch_work(tmp_path, daemons)
    vault = d.vault
    records = d.records()
    assert "Notes/n0.md" in records and "Drafts/d.md" in records
    assert not [p for p in records if p.startswith((".obsidian", "Private/"))]
    for i in range(5):
        write(vault / ".obsidian-work" / "workspace.json", json.dumps({"i": i}))
        write(vault / ".obsidian-work" / "snippets" / f"s{i}.md", f"snippet {i}\n")
        write(vault / ".obsidian-work" / f"n{i}.md", f"not a note {i}\n")
    write(vault / "Notes" / "marker.md", "m\n")
    d.settle()
    assert not [p for p in d.records() if p.startswith(".obsidian")]
    assert d.stop() == 0
    write(
        vault / ".obsidian-work" / "app.json",
        json.dumps({"userIgnoreFilters": ["Private/", "Drafts/"]}),
    )
    d.start()
    d.settle()
    records = d.records()
    assert "Drafts/d.md" not in records and "Notes/marker.md" in records
    assert not [p for p in records if p.startswith((".obsidian", "Private/"))]


def test_sighup_keeps_the_command_line_settings(tmp_path: Path, daemons: list[Daemon]) -> None:
    """Flags outrank the config file (STYLE.md): a SIGHUP reload must not drop
    `--config-dir .obsidian-work`, or Private/ (excluded there) gets indexed."""
    d = _launch_work(tmp_path, daemons)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded (SIGHUP)" in log_text(d), "the reload")
    d.settle()
    records = d.records()
    assert "Private/p.md" not in records and "Notes/n0.md" in records


def test_sighup_reloads_the_config_file(tmp_path: Path, daemons: list[Daemon]) -> None:
    """SIGHUP: a config file that now says `ignore = ["Drafts/"]` is read again; the
    Drafts/ records go, each reported as an orphan-record drift, the rest stay."""
    vault = small_vault(tmp_path / "vault")
    for i in range(3):
        write(vault / "Drafts" / f"d{i}.md", f"draft {i}\n")
    d = launch(tmp_path, vault, daemons)
    config_file = tmp_path / "cfg" / "ccc-watch" / "config.toml"
    write(config_file, 'ignore = ["Drafts/"]\n')
    shown = json.loads(d.cli("config", "--json").stdout)
    assert shown["config_file"] == str(config_file)
    assert shown["settings"]["ignore"] == ["Drafts/"]
    assert len([p for p in d.records() if p.startswith("Drafts/")]) == 3  # not read yet
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    d.patterns = ("Drafts/",)
    d.settle()
    records = d.records()
    assert not [p for p in records if p.startswith("Drafts/")]
    assert "Notes/n0.md" in records and "Welcome.md" in records
    log = log_text(d)
    for i in range(3):
        assert f"DRIFT kind=orphan-record path=Drafts/d{i}.md" in log
    assert alive(d)
