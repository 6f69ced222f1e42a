"""Backups, restores and keys (README "Backup, restore and keys"), on real parts: real
vaults in temp folders, real redb and DuckDB files, real `ccc-watch` processes, a real
daemon under churn, the real `keyring` package with a file backend, real key files.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import disks
import pytest
import vaultgen
from conftest import VAULTGEN, cli, own_vault
from daemon_harness import Daemon, wait_until
from records import searchable

from ccc_watch.backup.crypt import CHUNK, MAGIC
from ccc_watch.config import load
from ccc_watch.errors import EXIT_CONFIG, ConfigError
from ccc_watch.keys import key_for, new_key_file
from ccc_watch.store import open_store

MARKER = "zebra-quokka-7f3a91"


def one_line_error(r: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line a failed command printed, after checking the exit code and that no
    traceback came with it."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("ccc-watch: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def archives(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith("ccc-watch-"))


def backup(env: dict[str, str], vault: Path, data: Path, *args: str) -> Path:
    """Run `backup --json`; the archive it wrote."""
    r = cli(env, vault, data, "backup", "--json", *args)
    assert r.returncode == 0, r.stderr
    return Path(json.loads(r.stdout)["archive"])


def changelog(data: Path) -> list[tuple[int, str | None]]:
    with open_store(data, readonly=True) as store:
        return [(c.seq, c.hash) for c in store.changes_after(0)]


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The child environment with the user data dir (the default backup folder) and any
    keyring file inside tmp_path, and no keyring backend of the machine's."""
    env = dict(env)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env.pop("CREDENTIALS_DIRECTORY", None)
    return env


@pytest.fixture
def indexed(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A 300-note vault (one PUBLIC note holds MARKER), rebuilt into tmp_path/data."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=300, seed=5, bad=False)
    (vault / "marker.md").write_text(
        f"---\nclassification: PUBLIC\ntitle: {MARKER}\n---\n# {MARKER}\n{MARKER} body\n"
    )
    data = tmp_path / "data"
    r = cli(env, vault, data, "rebuild")
    assert r.returncode == 0, r.stderr
    return vault, data


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "backup.key"
    path.parent.mkdir()
    new_key_file(path)
    return path


# --- backup during churn, restore, history -----------------------------------------


class Churn:
    """tests/vaultgen.py churn in its own process, until stopped."""

    def __init__(self, vault: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(VAULTGEN), "churn", str(vault), "--ops", "100000",
             "--seed", "3", "--sleep", "5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


@pytest.fixture
def daemon(tmp_path: Path, env: dict[str, str]) -> Iterator[Daemon]:
    vault = tmp_path / "vault"
    own_vault(vault, notes=200, seed=11, bad=False)
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.env.update(XDG_DATA_HOME=env["XDG_DATA_HOME"])
    d.start()
    d.settle(timeout=60)
    yield d
    if d.proc is not None:
        d.proc.kill()
        d.proc.wait()


def test_a_backup_taken_during_churn_restores_to_exactly_the_vault_with_its_history(
    daemon: Daemon, tmp_path: Path, env: dict[str, str]
) -> None:
    """A backup while the daemon indexes a churning vault; then, with the vault changed
    further, a restore into a fresh data dir and one into the daemon's own (stopped):
    each reconciles to exactly the vault (`verify --deep` clean), keeps the archived
    changelog entry for entry (same audit hashes), and the chain goes on from it."""
    churn = Churn(daemon.vault)
    try:
        start = len(changelog(daemon.data))
        wait_until(lambda: len(changelog(daemon.data)) > start + 50, "the churn indexed", 30)
        archive = backup(env, daemon.vault, daemon.data, str(tmp_path / "backups"))
        # The daemon was never paused: it kept indexing the churn.
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        churn.stop()
    # No daemon.settle() here: what is judged is the archive and the restores, each of
    # which reconciles with the vault itself. (The daemon can lag a `touch` of the churn
    # for a full reconcile interval: a daemon matter, reported, not a backup one.)
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.loads(member.read())
    head = manifest["chain_head"]["seq"]
    assert head > 0
    # The churn went on after the snapshot, and the daemon indexed some of it.
    wait_until(lambda: len(changelog(daemon.data)) > head, "changes after the snapshot", 30)
    live = changelog(daemon.data)
    archived = live[:head]  # the changelog only grows: the snapshot is a prefix of it
    assert archived[-1] == (head, manifest["chain_head"]["hash"])

    # The running daemon's data dir: refused, one line, nothing changed.
    before = changelog(daemon.data)
    line = one_line_error(cli(env, daemon.vault, daemon.data, "restore", str(archive)), 1)
    assert "already running" in line and "stop it first" in line
    assert changelog(daemon.data)[: len(before)] == before

    # A fresh data dir, beside the running daemon's.
    fresh = tmp_path / "fresh"
    r = cli(env, daemon.vault, fresh, "restore", str(archive))
    assert r.returncode == 0, r.stderr
    r = cli(env, daemon.vault, fresh, "verify", "--deep")
    assert r.returncode == 0, r.stdout
    restored = changelog(fresh)
    assert restored[:head] == archived
    assert len(restored) > head  # the reconcile's changes were appended to the history
    r = cli(env, daemon.vault, fresh, "backup", "--verify", str(archive))
    assert r.returncode == 0, r.stderr

    # The daemon's own data dir, once it is stopped; then it runs on from the restore.
    assert daemon.stop() == 0
    (daemon.vault / "after the backup.md").write_text("# written after the backup\n")
    r = cli(env, daemon.vault, daemon.data, "restore", str(archive))
    assert r.returncode == 0, r.stderr
    assert changelog(daemon.data)[:head] == archived
    daemon.start()
    daemon.settle(timeout=60)
    (daemon.vault / "after the restore.md").write_text("# and one more\n")
    daemon.settle(timeout=30)
    final = changelog(daemon.data)
    assert final[:head] == archived and len(final) > head + 1
    _check_chain(daemon.data)


def _check_chain(data: Path) -> None:
    """Every entry of the store's changelog links to the one before it."""
    from ccc_watch.store.chain import GENESIS, link

    with open_store(data, readonly=True) as store:
        prev = GENESIS
        for change in store.changes_after(0):
            assert link(prev, vars(change)) == change.hash, change.seq
            prev = str(change.hash)


# --- verify ---------------------------------------------------------------------


def _member_offset(archive: Path, name: str) -> tuple[int, int]:
    with tarfile.open(archive) as tar:
        info = tar.getmember(name)
        return info.offset_data, info.size


def _flip(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def test_verify_finds_a_flipped_byte_a_missing_member_and_a_cut(
    indexed: tuple[Path, Path], tmp_path: Path, env: dict[str, str]
) -> None:
    """`backup --verify` on a plain archive: exit 0 when whole; exit 1 and one line
    naming the fault for a byte flipped in the store or the mirror, a member left out,
    a member added, and an archive cut short."""
    vault, data = indexed
    good = backup(env, vault, data, str(tmp_path / "b"))
    assert stat.S_IMODE(good.stat().st_mode) == 0o600
    assert stat.S_IMODE(good.parent.stat().st_mode) == 0o700
    r = cli(env, vault, data, "backup", "--verify", str(good))
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr

    def bad(name: str) -> Path:
        copy = tmp_path / name
        shutil.copyfile(good, copy)
        return copy

    for member in ("index.redb", "mirror.duckdb"):
        offset, size = _member_offset(good, member)
        flipped = bad(f"flipped-{member}.tar")
        _flip(flipped, offset + size // 2)
        line = one_line_error(cli(env, vault, data, "backup", "--verify", str(flipped)), 1)
        assert member in line and "blake3" in line, line

    missing = tmp_path / "missing.tar"
    with tarfile.open(good) as src, tarfile.open(missing, "w") as dst:
        for info in src.getmembers():
            if info.name != "mirror.duckdb":
                dst.addfile(info, src.extractfile(info))
    line = one_line_error(cli(env, vault, data, "backup", "--verify", str(missing)), 1)
    assert "lacks mirror.duckdb" in line, line

    extra = tmp_path / "extra.tar"
    shutil.copyfile(missing, extra)
    with tarfile.open(good) as src, tarfile.open(extra, "a") as dst:
        dst.addfile(src.getmember("mirror.duckdb"), src.extractfile("mirror.duckdb"))
        info = tarfile.TarInfo("../../evil")
        info.size = 1
        dst.addfile(info, io.BytesIO(b"x"))
    line = one_line_error(cli(env, vault, data, "backup", "--verify", str(extra)), 1)
    assert "evil" in line and "manifest lacks" in line, line
    assert not (tmp_path.parent / "evil").exists()

    # A cut that removes only the tar's zero padding loses nothing: cut into members.
    end_of_mirror = sum(_member_offset(good, "mirror.duckdb"))
    for cut in (100, good.stat().st_size // 2, end_of_mirror - 1):
        short = bad(f"cut-{cut}.tar")
        os.truncate(short, cut)
        one_line_error(cli(env, vault, data, "backup", "--verify", str(short)), 1)

    not_one = tmp_path / "notes.txt"
    not_one.write_text("hello\n")
    one_line_error(cli(env, vault, data, "backup", "--verify", str(not_one)), 1)
    one_line_error(cli(env, vault, data, "backup", "--verify", str(tmp_path / "nope")), 1)


def _chunks(path: Path) -> tuple[bytes, list[bytes]]:
    """(header bytes, ciphertext chunks) of an encrypted archive."""
    raw = path.read_bytes()
    assert raw.startswith(MAGIC)
    (length,) = struct.unpack(">I", raw[8:12])
    start = 12 + length + 32
    size = CHUNK + 16
    return raw[:start], [raw[i : i + size] for i in range(start, len(raw), size)]


def test_verify_finds_an_encrypted_archive_cut_reordered_spliced_or_flipped(
    indexed: tuple[Path, Path], tmp_path: Path, env: dict[str, str], key_file: Path
) -> None:
    """An encrypted archive opens only whole and in order: cut at a chunk boundary or
    inside a chunk, chunks swapped or dropped, a chunk from another archive under the
    same key, a flipped byte, a byte appended: each is exit 1 and one line."""
    vault, data = indexed
    enc = backup(env, vault, data, str(tmp_path / "b"), "--encrypt", "--key-file", str(key_file))
    other = backup(env, vault, data, str(tmp_path / "b2"), "--encrypt", "--key-file", str(key_file))
    head, chunks = _chunks(enc)
    assert len(chunks) >= 3, "the archive spans several chunks"
    _, others = _chunks(other)

    def check(name: str, blob: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(blob)
        r = cli(env, vault, data, "backup", "--verify", str(path), "--key-file", str(key_file))
        return one_line_error(r, 1)

    r = cli(env, vault, data, "backup", "--verify", str(enc), "--key-file", str(key_file))
    assert r.returncode == 0, r.stderr
    assert "cut short" in check("no-final.enc", head + b"".join(chunks[:-1]))
    check("mid-chunk.enc", head + b"".join(chunks)[: CHUNK + 1000])
    check("header-only.enc", head)
    check("half-header.enc", head[:20])
    check("swapped.enc", head + chunks[1] + chunks[0] + b"".join(chunks[2:]))
    check("dropped.enc", head + chunks[0] + b"".join(chunks[2:]))
    check("spliced.enc", head + chunks[0] + others[1] + b"".join(chunks[2:]))
    check("appended.enc", head + b"".join(chunks) + b"\0")
    blob = bytearray(head + b"".join(chunks))
    blob[len(head) + CHUNK + 100] ^= 0x80
    assert "authenticate" in check("flipped.enc", bytes(blob))


# --- encryption and keys --------------------------------------------------------


def test_an_encrypted_archive_holds_no_marker_and_restores_only_with_its_key(
    indexed: tuple[Path, Path], tmp_path: Path, env: dict[str, str], key_file: Path
) -> None:
    """The marker note's text is in a plain archive (so the search can find it) and
    nowhere in an encrypted one; neither is the key. Restoring needs the key: without
    one, exit 78 naming the three sources; with another, exit 1; with it, exit 0."""
    vault, data = indexed
    plain = backup(env, vault, data, str(tmp_path / "b"))
    assert MARKER.encode() in searchable(plain.read_bytes())  # the search works
    enc = backup(env, vault, data, str(tmp_path / "b"), "--encrypt", "--key-file", str(key_file))
    blob = enc.read_bytes()
    assert MARKER.encode() not in blob
    assert MARKER.encode("utf-16-le") not in blob
    key_hex = key_file.read_text().strip()
    for needle in (key_hex.encode(), key_hex.upper().encode(), bytes.fromhex(key_hex)):
        assert needle not in blob
        for path in data.rglob("*"):
            if path.is_file():
                assert needle not in searchable(path.read_bytes()), path

    fresh = tmp_path / "fresh"
    line = one_line_error(cli(env, vault, fresh, "restore", str(enc)), EXIT_CONFIG)
    assert "keyring" in line and "ccc-watch.key" in line and "--key-file" in line

    other_key = tmp_path / "keys" / "other.key"
    new_key_file(other_key)
    r = cli(env, vault, fresh, "restore", str(enc), "--key-file", str(other_key))
    assert "does not open" in one_line_error(r, 1)
    assert not (fresh / "index.redb").exists()

    r = cli(env, vault, fresh, "restore", str(enc), "--key-file", str(key_file), "--json")
    assert r.returncode == 0, r.stderr
    assert cli(env, vault, fresh, "verify", "--deep").returncode == 0
    r = cli(env, vault, fresh, "get", "marker.md")
    assert MARKER in r.stdout

    # The same vault at another folder (moved, a new machine): only with --relocate.
    moved = tmp_path / "moved vault"
    shutil.copytree(vault, moved, symlinks=True)
    there = tmp_path / "there"
    r = cli(env, moved, there, "restore", str(plain))
    assert "--relocate" in one_line_error(r, 1)
    assert not (there / "index.redb").exists()
    r = cli(env, moved, there, "restore", str(plain), "--relocate")
    assert r.returncode == 0, r.stderr
    assert cli(env, moved, there, "verify", "--deep").returncode == 0
    assert changelog(there)[: len(changelog(data))] == changelog(data)


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real keyring package with keyrings.alt's file backend, in tmp_path."""
    keyring = pytest.importorskip("keyring")
    alt = pytest.importorskip("keyrings.alt.file")
    backend = alt.PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")  # type: ignore[misc]
    old = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield keyring
    keyring.set_keyring(old)


def test_key_sources_are_asked_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_keyring: Any
) -> None:
    """The OS keyring wins over a systemd credential, which wins over the key file; a
    keyring with no usable backend is skipped; with none of them, exit 78."""
    keys = {name: os.urandom(32) for name in ("keyring", "credential", "file")}
    vault = tmp_path / "v"
    vault.mkdir()
    key_path = tmp_path / "k.key"
    key_path.write_text(keys["file"].hex() + "\n")
    key_path.chmod(0o600)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ccc-watch.key").write_text(keys["credential"].hex() + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = load({"vault": str(vault), "data_dir": str(tmp_path / "d"), "key_file": str(key_path)})
    file_keyring.set_password("ccc-watch", "vault-1", keys["keyring"].hex())

    assert key_for(cfg, "vault-1") == keys["keyring"]
    assert key_for(cfg, "vault-2") == keys["credential"]  # the keyring has none for it
    file_keyring.set_keyring(file_keyring.backends.fail.Keyring())  # CI: no usable backend
    assert key_for(cfg, "vault-1") == keys["credential"]
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert key_for(cfg, "vault-1") == keys["file"]
    with pytest.raises(ConfigError) as e:
        key_for(load({"vault": str(vault), "data_dir": str(tmp_path / "d")}), "vault-1")
    assert e.value.exit_code == EXIT_CONFIG and "vault-1" in str(e.value)


def test_the_keyring_gives_the_key_to_a_real_backup(
    indexed: tuple[Path, Path], tmp_path: Path, env: dict[str, str]
) -> None:
    """`backup --encrypt` and `restore` with the key in the OS keyring only (the real
    keyring package, keyrings.alt's file backend, chosen as a user would)."""
    pytest.importorskip("keyrings.alt")
    vault, data = indexed
    env = dict(env, PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring")
    with open_store(data, readonly=True) as store:
        vault_id = str(store.meta["vault_id"])
    key = os.urandom(32).hex()
    subprocess.run(
        [sys.executable, "-c", "import keyring, sys; keyring.set_password(*sys.argv[1:])",
         "ccc-watch", vault_id, key], env=env, check=True)  # fmt: skip
    enc = backup(env, vault, data, str(tmp_path / "b"), "--encrypt")
    r = cli(env, vault, tmp_path / "fresh", "restore", str(enc))
    assert r.returncode == 0, r.stderr
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    one_line_error(cli(env, vault, tmp_path / "fresh2", "restore", str(enc)), EXIT_CONFIG)


def test_a_key_file_must_be_private_regular_and_outside_vault_and_data_dir(
    tmp_path: Path,
) -> None:
    """Each refusal names the file and the reason, and never quotes its text."""
    vault = tmp_path / "vault"
    data = tmp_path / "data"
    vault.mkdir()
    data.mkdir()
    good = os.urandom(32).hex() + "\n"

    def refused(path: Path) -> str:
        cfg = load({"vault": str(vault), "data_dir": str(data), "key_file": str(path)})
        with pytest.raises(ConfigError) as e:
            key_for(cfg, "v")
        assert e.value.exit_code == EXIT_CONFIG
        assert str(path) in str(e.value) or path.name in str(e.value)
        return str(e.value)

    def write(path: Path, text: str = good, mode: int = 0o600) -> Path:
        path.write_text(text)
        path.chmod(mode)
        return path

    for mode in (0o640, 0o604, 0o620, 0o644):
        assert f"{mode:04o}" in refused(write(tmp_path / f"k{mode:o}", mode=mode))
    assert "inside the vault" in refused(write(vault / "k"))
    assert "inside the data dir" in refused(write(data / "k"))
    link = tmp_path / "link"
    link.symlink_to(write(tmp_path / "target"))
    assert "symlink" in refused(link)
    assert "inside the vault" in refused(
        _symlinked_into(tmp_path / "via", vault, write(vault / "k2"))
    )
    os.mkfifo(tmp_path / "fifo", 0o600)
    assert "not a regular file" in refused(tmp_path / "fifo")  # and did not block
    (tmp_path / "dir").mkdir(mode=0o700)
    refused(tmp_path / "dir")
    secret_text = "not-a-key-" + MARKER
    assert MARKER not in refused(write(tmp_path / "garbage", secret_text))
    assert "no such file" in refused(tmp_path / "absent")
    if os.geteuid() == 0:  # root can give the file away; others cannot make the case
        foreign = write(tmp_path / "foreign")
        os.chown(foreign, 65534, 65534)
        assert "owned by uid 65534" in refused(foreign)
    # The same file, made private, is accepted: each refusal was for its reason.
    cfg = load({"vault": str(vault), "data_dir": str(data), "key_file": str(tmp_path / "k640")})
    (tmp_path / "k640").chmod(0o600)
    assert key_for(cfg, "v") == bytes.fromhex(good.strip())


def _symlinked_into(link: Path, folder: Path, target: Path) -> Path:
    """A path outside folder that reaches target inside it through a folder symlink."""
    link.symlink_to(folder)
    return link / target.name


def test_key_new_writes_a_private_key_and_never_overwrites(
    tmp_path: Path, env: dict[str, str], vault: Path
) -> None:
    """`key new FILE`: 64 hex digits and a newline, 0600 whatever the umask; an existing
    file or a symlink is never written through; never inside the vault."""
    data = tmp_path / "data"
    path = tmp_path / "new.key"
    r = subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", sys.executable, "-m", "ccc_watch.cli",
         "--vault", str(vault), "--data-dir", str(data), "key", "new", str(path)],
        capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = path.read_text()
    assert len(text) == 65 and text.endswith("\n") and bytes.fromhex(text.strip())
    assert text.strip() not in r.stdout + r.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    one_line_error(cli(env, vault, data, "key", "new", str(path)), 1)
    assert path.read_text() == text
    target = tmp_path / "elsewhere"
    (tmp_path / "link.key").symlink_to(target)
    one_line_error(cli(env, vault, data, "key", "new", str(tmp_path / "link.key")), 1)
    assert not target.exists()
    one_line_error(cli(env, vault, data, "key", "new", str(vault / "k.key")), EXIT_CONFIG)
    assert not (vault / "k.key").exists()


# --- retention, destinations, failures --------------------------------------------


def test_keep_leaves_the_newest_n_archives_of_this_vault_and_nothing_else(
    indexed: tuple[Path, Path], tmp_path: Path, env: dict[str, str], key_file: Path
) -> None:
    """--keep N (and backup_keep) removes this vault's oldest archives beyond N, plain
    or encrypted, and never a file that is no archive of this vault: another vault's
    archive, a symlink to an archive, a file merely named like one."""
    vault, data = indexed
    dest = tmp_path / "b"
    other_vault = tmp_path / "other"
    own_vault(other_vault, notes=5, seed=1, bad=False)
    assert cli(env, other_vault, tmp_path / "odata", "rebuild").returncode == 0
    foreign = backup(env, other_vault, tmp_path / "odata", str(dest))
    made = [backup(env, vault, data, str(dest)) for _ in range(3)]
    made.append(backup(env, vault, data, str(dest), "--encrypt", "--key-file", str(key_file)))
    fake = dest / "ccc-watch-fake-20990101T000000000000Z.tar"
    fake.write_text("not an archive\n")
    link = dest / "ccc-watch-link-20990101T000000000000Z.tar"
    link.symlink_to(made[0])
    newest = backup(env, vault, data, str(dest), "--keep", "2")
    assert set(archives(dest)) == {foreign, fake, link, made[-1], newest}
    env2 = dict(env, CCC_WATCH_BACKUP_KEEP="1")
    last = backup(env2, vault, data, str(dest))
    assert set(archives(dest)) == {foreign, fake, link, last}


def test_the_default_folder_and_refused_destinations(
    indexed: tuple[Path, Path], tmp_path: Path, env: dict[str, str]
) -> None:
    """Without DEST the archive goes to the user data dir's backups folder (outside the
    data dir, created 0700); a DEST in the vault or in the data dir is exit 2."""
    vault, data = indexed
    archive = backup(env, vault, data)
    assert archive.parent == tmp_path / "xdg-data" / "ccc-watch" / "backups" / data.name
    assert stat.S_IMODE(archive.parent.stat().st_mode) == 0o700
    for dest in (vault / "backups", data / "backups", vault):
        one_line_error(cli(env, vault, data, "backup", str(dest)), 2)
    assert not (vault / "backups").exists() and not (data / "backups").exists()
    r = cli(env, vault, data, "backup", "--backup-dir", str(vault / "x"))
    one_line_error(r, EXIT_CONFIG)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs (tests/disks.py) with about a MiB left free."""
    for mount in disks.mounted_tmpfs(tmp_path / "small"):
        disks.fill(mount, leave=1 << 20)
        yield mount


def test_a_backup_that_cannot_finish_leaves_no_archive(
    indexed: tuple[Path, Path], env: dict[str, str], full_disk: Path
) -> None:
    """A full disk mid-archive: one line, exit 74, and no archive nor temp file left."""
    vault, data = indexed
    dest = full_disk / "b"
    r = cli(env, vault, data, "backup", str(dest))
    assert "No space left" in one_line_error(r, 74)
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not list(data.glob(".backup.*"))


def test_a_sqlite_store_backs_up_and_restores_too(
    tmp_path: Path, env: dict[str, str], key_file: Path
) -> None:
    """The SQLite backend: an encrypted archive of it verifies and restores to a clean
    index with the same history; restoring it under the redb backend is exit 78."""
    vault = tmp_path / "vault"
    own_vault(vault, notes=50, seed=2, bad=False)
    data = tmp_path / "data"
    sq = ("--backend", "sqlite", "--key-file", str(key_file))
    assert cli(env, vault, data, "rebuild", *sq).returncode == 0
    archive = backup(env, vault, data, str(tmp_path / "b"), "--encrypt", *sq)
    assert cli(env, vault, data, "backup", "--verify", str(archive), *sq).returncode == 0
    fresh = tmp_path / "fresh"
    line = one_line_error(
        cli(env, vault, fresh, "restore", str(archive), "--key-file", str(key_file)), EXIT_CONFIG
    )
    assert "--backend sqlite" in line
    r = cli(env, vault, fresh, "restore", str(archive), *sq)
    assert r.returncode == 0, r.stderr
    assert cli(env, vault, fresh, "verify", "--deep", *sq).returncode == 0
    with (
        open_store(data, backend="sqlite", readonly=True) as a,
        open_store(fresh, backend="sqlite", readonly=True) as b,
    ):
        assert [c.hash for c in a.changes_after(0)] == [c.hash for c in b.changes_after(0)]
        assert list(a.records()) == list(b.records())


def _daemon(tmp_path: Path, env: dict[str, str], name: str, *run_args: str) -> Daemon:
    vault = tmp_path / f"{name}-vault"
    own_vault(vault, notes=30, seed=4, bad=False)
    d = Daemon(vault, tmp_path / f"{name}-data", tmp_path / f"{name}.log")
    d.env.update(
        XDG_DATA_HOME=env["XDG_DATA_HOME"], PYTHON_KEYRING_BACKEND=env["PYTHON_KEYRING_BACKEND"]
    )
    d.run_args = list(run_args)
    return d


def test_the_daemon_backs_up_on_schedule_and_survives_a_failed_backup(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """backup_interval: the daemon writes archives on its own (with its flags' settings:
    folder, retention), each one whole, and keeps indexing; a scheduled backup that
    fails (encryption asked, no key) is one ERROR line, and the daemon goes on."""
    dest = tmp_path / "scheduled"
    d = _daemon(tmp_path, env, "ok", "--backup-interval", "1", "--backup-dir", str(dest),
                "--backup-keep", "2")  # fmt: skip
    bad = _daemon(tmp_path, env, "bad", "--backup-interval", "1", "--backup-encrypt", "true",
                  "--backup-dir", str(tmp_path / "never"))  # fmt: skip
    try:
        d.start()
        wait_until(lambda: len(archives(dest)) >= 1, "a scheduled backup", 60)
        (d.vault / "new note.md").write_text("# new\n")
        d.settle(timeout=30)
        head = changelog(d.data)[-1]

        def newest_has_the_note() -> bool:
            found = archives(dest)
            if not found:
                return False
            with tarfile.open(max(found, key=lambda p: p.name)) as tar:
                member = tar.extractfile("manifest.json")
                assert member is not None
                m = json.loads(member.read())
            return bool(m["chain_head"]["seq"] >= head[0])

        wait_until(newest_has_the_note, "a backup after the edit", 60)
        wait_until(lambda: len(archives(dest)) == 2, "retention at 2", 30)
        newest = max(archives(dest), key=lambda p: p.name)
        assert d.cli("backup", "--verify", str(newest)).returncode == 0
        assert "scheduled backup written" in d.log.read_text()

        bad.start()
        wait_until(lambda: "scheduled backup failed" in bad.log.read_text(), "the failure", 60)
        line = next(ln for ln in bad.log.read_text().splitlines() if "backup failed" in ln)
        assert "ERROR" in line and "no key for vault" in line, line
        assert bad.proc is not None and bad.proc.poll() is None
        (bad.vault / "still indexed.md").write_text("# yes\n")
        bad.settle(timeout=30)
        assert not (tmp_path / "never").exists() or not archives(tmp_path / "never")
    finally:
        for daemon in (d, bad):
            if daemon.proc is not None:
                assert daemon.stop() == 0


def test_a_pruned_history_backs_up_and_restores_with_its_anchor(
    indexed: tuple[Path, Path], tmp_path: Path, env: dict[str, str]
) -> None:
    """After `audit prune`, the archive holds the anchor and the checkpoint (every table
    is copied): it verifies (the chain starts at the anchor), and the restored store
    passes `audit verify` and its `manifest` is the original's."""
    vault, data = indexed
    for i in range(5):
        (vault / f"edit {i}.md").write_text(f"# edit {i}\n")
        assert cli(env, vault, data, "scan").returncode == 0
    r = cli(env, vault, data, "audit", "prune", "--keep-entries", "3")
    assert r.returncode == 0, r.stderr
    with open_store(data, readonly=True) as store:
        assert store.changes_after(0)[0].seq > 1  # pruned: the chain starts at an anchor
    archive = backup(env, vault, data, str(tmp_path / "b"))
    assert cli(env, vault, data, "backup", "--verify", str(archive)).returncode == 0
    fresh = tmp_path / "fresh"
    assert cli(env, vault, fresh, "restore", str(archive)).returncode == 0
    r = cli(env, vault, fresh, "audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert changelog(fresh)[: len(changelog(data))] == changelog(data)
    now = [cli(env, vault, d, "manifest").stdout for d in (data, fresh)]
    assert now[0] == now[1] and "edit 4.md" in now[0]


def test_a_killed_backup_leaves_nothing_that_looks_like_one(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """kill -9 while the archive is being written: no file named like an archive is
    left, only a hidden temp file and the work folder, which the next backup removes."""
    vault = tmp_path / "vault"
    vaultgen.build(vault, 300, 9, bad=False, body_kb=40)  # an archive that takes a while
    data, dest = tmp_path / "data", tmp_path / "b"
    assert cli(env, vault, data, "rebuild").returncode == 0
    caught = None
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault), "--data-dir",
             str(data), "backup", str(dest)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        while proc.poll() is None:
            temps = list(dest.glob(".ccc-watch-*.tmp")) if dest.is_dir() else []
            if temps:
                proc.kill()
                caught = temps[0]
                break
        proc.wait()
        if caught is not None:
            break
        for done in archives(dest):
            done.unlink()
    assert caught is not None, "never caught a backup writing its archive"
    assert archives(dest) == []
    assert caught.exists() and list(data.glob(".backup.*"))
    archive = backup(env, vault, data, str(dest))
    assert archives(dest) == [archive]
    assert not caught.exists() and not list(data.glob(".backup.*"))
    assert list(dest.iterdir()) == [archive]
