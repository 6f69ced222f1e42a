"""Reads under attack: files swapped after the walk, and files too big to hold.

Everything in a vault is hostile (I9). Between the walk that lists a note and the read
of it, a sync tool or an attacker can swap the note for a FIFO (an open that blocks
forever), for a symlink to a file outside the vault, or swap a folder on its path for
a symlink; and a file can be many gigabytes. Each test runs the real rebuild, scan or
verify with the swap made right after the real walk returns, and checks that nothing
hangs, nothing outside the vault is read, and memory stays bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import blake3
import pytest

from ccc_watch.changes import rebuild as rebuild_module
from ccc_watch.changes import reconcile as reconcile_module
from ccc_watch.changes import verify as verify_module
from ccc_watch.changes.rebuild import rebuild
from ccc_watch.changes.reconcile import reconcile
from ccc_watch.changes.verify import verify
from ccc_watch.index.indexer import Indexer
from ccc_watch.store import open_store
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.read import CHUNK, NotContentError, read_file

SECRET = b"OUTSIDE-THE-VAULT secret text\n"
HANG_SECONDS = 30  # generous: a read that blocks never returns at all


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """A vault, and beside it a folder outside the vault holding a secret."""
    vault = tmp_path / "vault"
    (vault / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_bytes(SECRET)
    (outside / "m.md").write_bytes(SECRET)
    (vault / "n.md").write_text("a note\n")
    (vault / "sub" / "m.md").write_text("a note in a folder\n")
    (vault / "real.md").write_text("the target\n")
    (vault / "link.md").symlink_to("real.md")
    (vault / "keep.md").write_text("untouched\n")
    return vault.resolve(), outside.resolve()


def swap(vault: Path, outside: Path, how: str) -> list[Path]:
    """Make the swap `how`; return the FIFOs made (to release a reader stuck on one)."""
    if how == "fifo":
        (vault / "n.md").unlink()
        os.mkfifo(vault / "n.md")
        return [vault / "n.md"]
    if how == "symlink-out":
        (vault / "n.md").unlink()
        (vault / "n.md").symlink_to(outside / "secret.md")
    elif how == "symlink-device":
        (vault / "n.md").unlink()
        (vault / "n.md").symlink_to("/dev/null")
    elif how == "folder-symlink":
        (vault / "sub" / "m.md").unlink()
        (vault / "sub").rmdir()
        (vault / "sub").symlink_to(outside, target_is_directory=True)
    elif how == "target-swapped":
        (vault / "real.md").unlink()
        (vault / "real.md").symlink_to(outside / "secret.md")
    return []


SWAPS = ["fifo", "symlink-out", "symlink-device", "folder-symlink", "target-swapped"]
SWAPPED = {  # the keys whose content the swap took away
    "fifo": {"n.md"},
    "symlink-out": {"n.md"},
    "symlink-device": {"n.md"},
    "folder-symlink": {"sub/m.md"},
    "target-swapped": {"link.md", "real.md"},
}


@contextmanager
def swapped_after_walk(
    monkeypatch: pytest.MonkeyPatch, module: Any, vault: Path, outside: Path, how: str
) -> Iterator[list[Path]]:
    """The real walk, then the swap, as if it happened between the walk and the reads
    (a rebuild's walk, which goes on as it indexes, ends before its first file is
    given)."""
    fifos: list[Path] = []
    if hasattr(module, "walking"):
        real_walking = module.walking

        def walking_then_swap(*args: Any, **kwargs: Any) -> Any:
            report, found = real_walking(*args, **kwargs)
            files = list(found)
            fifos.extend(swap(vault, outside, how))
            return report, iter(files)

        monkeypatch.setattr(module, "walking", walking_then_swap)
    else:
        real_walk = module.walk

        def walk_then_swap(*args: Any, **kwargs: Any) -> Any:
            report = real_walk(*args, **kwargs)
            fifos.extend(swap(vault, outside, how))
            return report

        monkeypatch.setattr(module, "walk", walk_then_swap)
    yield fifos


def finishes(run: Callable[[], Any], fifos: list[Path]) -> Any:
    """run() in a thread; fail (after releasing any reader stuck on a FIFO) if it hangs."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = run()
        except BaseException as e:
            out["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    if thread.is_alive():
        for fifo in fifos:  # a writer that opens and closes gives the reader its EOF
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(HANG_SECONDS)
        pytest.fail(f"hung for {HANG_SECONDS} s on a file swapped after the walk")
    if "error" in out:
        raise out["error"]
    return out.get("value")


def records(data: Path) -> dict[str, dict[str, Any]]:
    with open_store(data, readonly=True) as store, store.snapshot() as snap:
        return {r["path"]: r for r in snap.records()}


def assert_nothing_from_outside(data: Path) -> None:
    secret = blake3.blake3(SECRET).hexdigest()
    for rec in records(data).values():
        assert rec["blake3"] != secret, rec["path"]
        assert "OUTSIDE-THE-VAULT" not in json.dumps(rec), rec["path"]


@pytest.mark.parametrize("how", SWAPS)
def test_rebuild_neither_hangs_nor_reads_a_file_swapped_after_the_walk(
    world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The swapped path gets no record (it is no longer content), the rest are indexed."""
    vault, outside = world
    data = tmp_path / "data"
    with swapped_after_walk(monkeypatch, rebuild_module, vault, outside, how) as fifos:
        finishes(lambda: rebuild(vault, data), fifos)
    got = records(data)
    assert_nothing_from_outside(data)
    assert not SWAPPED[how] & got.keys()
    assert "keep.md" in got and got["keep.md"]["blake3"]


@pytest.mark.parametrize("how", SWAPS)
def test_a_scan_neither_hangs_nor_reads_a_file_swapped_after_the_walk(
    world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Reconcile re-reads what moved since the last index; a swap between its walk and
    the read is not followed (the record keeps its old content until the next walk)."""
    vault, outside = world
    data = tmp_path / "data"
    rebuild(vault, data)
    before = records(data)
    for key in ("n.md", "sub/m.md", "real.md"):
        with (vault / key).open("a") as f:  # moved stat: the scan reads them again
            f.write("edited\n")
    with (
        swapped_after_walk(monkeypatch, reconcile_module, vault, outside, how) as fifos,
        open_store(data, vault_root=vault) as store,
    ):
        indexer = Indexer(vault, str(store.meta["vault_id"]))
        finishes(
            lambda: reconcile(vault, store, indexer, IgnoreRules.load(vault), offline=True),
            fifos,
        )
    assert_nothing_from_outside(data)
    after = records(data)
    for key in SWAPPED[how]:
        assert key not in after or after[key]["blake3"] == before[key]["blake3"], key


@pytest.mark.parametrize("how", SWAPS)
def test_verify_neither_hangs_nor_reads_a_file_swapped_after_the_walk(
    world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """verify hashes every file with the indexer's read: what is no longer content when
    it reads it (a FIFO, a symlink out of the vault) it does not compare, and it never
    hashes a file outside the vault or a device."""
    vault, outside = world
    data = tmp_path / "data"
    rebuild(vault, data)
    with swapped_after_walk(monkeypatch, verify_module, vault, outside, how) as fifos:
        diffs = finishes(lambda: verify(vault, data, IgnoreRules.load(vault)), fifos)
    assert not [d for d in diffs if d.path in SWAPPED[how]], diffs


@pytest.mark.parametrize("how", SWAPS)
def test_the_indexer_skips_what_is_no_longer_content(
    world: tuple[Path, Path], how: str, logs: list[str]
) -> None:
    """The daemon's events index a path through the same Indexer.index: a path swapped
    since the event's checks gives no record (so its old record is deleted) and one
    WARNING naming the path and why."""
    vault, outside = world
    fifos = swap(vault, outside, how)
    indexer = Indexer(vault, "6f7e3d1c-4c2b-4a55-9a7e-000000000001")
    for key in SWAPPED[how]:
        result = finishes(lambda key=key: indexer.index(key, vault / key), fifos)
        assert result.record is None, key
        assert any(line.startswith("WARNING skip") and key in line for line in logs), logs


@pytest.mark.parametrize("how", ["folder-symlink", "folder-made-again"])
def test_a_batch_keeps_its_folders_open_and_still_never_reads_outside(
    world: tuple[Path, Path], how: str
) -> None:
    """A rebuild's worker indexes a batch of files with Indexer.batch(): the folders an
    earlier read opened stay open for the later ones. A folder swapped for a symlink out
    of the vault after that is still not followed (the open folder is where the old one
    went, inside the vault); one removed and made again is opened anew, so its new files
    are found; and nothing stays open after the batch."""
    vault, outside = world
    (vault / "sub" / "a.md").write_text("first\n")
    indexer = Indexer(vault, "6f7e3d1c-4c2b-4a55-9a7e-000000000001")
    open_fds = len(os.listdir("/proc/self/fd"))
    with indexer.batch():
        first = indexer.index("sub/a.md", vault / "sub" / "a.md").record
        assert first is not None and first["blake3"] == blake3.blake3(b"first\n").hexdigest()
        assert len(os.listdir("/proc/self/fd")) > open_fds  # its folder is kept open
        if how == "folder-symlink":
            (vault / "sub").rename(vault / "moved")
            (vault / "sub").symlink_to(outside, target_is_directory=True)
            rec = indexer.index("sub/m.md", vault / "sub" / "m.md").record
            assert rec is not None  # read in the folder as it was opened, now "moved"
            assert rec["blake3"] == blake3.blake3(b"a note in a folder\n").hexdigest()
            assert rec["blake3"] != blake3.blake3(SECRET).hexdigest()
            assert indexer.index("sub/gone.md", vault / "sub" / "gone.md").record is None
        else:
            for name in ("a.md", "m.md"):
                (vault / "sub" / name).unlink()
            (vault / "sub").rmdir()
            (vault / "sub").mkdir()
            (vault / "sub" / "new.md").write_text("new\n")
            rec = indexer.index("sub/new.md", vault / "sub" / "new.md").record
            assert rec is not None and rec["blake3"] == blake3.blake3(b"new\n").hexdigest()
    assert len(os.listdir("/proc/self/fd")) == open_fds


def test_a_symlink_inside_the_vault_is_still_read_through(world: tuple[Path, Path]) -> None:
    """The policy the walk applies holds at read time too: a file symlink to a note in
    the vault is indexed with its target's content."""
    vault, _ = world
    content = read_file(vault, vault / "link.md", keep=1 << 20)
    assert content.data == b"the target\n"
    assert content.stat.inode == os.stat(vault / "real.md").st_ino


def test_a_path_outside_the_vault_is_refused(world: tuple[Path, Path]) -> None:
    vault, outside = world
    with pytest.raises(NotContentError):
        read_file(vault, outside / "secret.md", keep=1 << 20)
    with pytest.raises(NotContentError):
        read_file(vault, vault / ".." / "outside" / "secret.md", keep=1 << 20)


# --- bounded memory ---------------------------------------------------------------------

BIG = 200 * 1024 * 1024
MEMORY_SCRIPT = """
import json, sys
from pathlib import Path
from ccc_watch.changes.rebuild import rebuild
from ccc_watch.changes.verify import verify
from ccc_watch.store import open_store
from ccc_watch.vault.ignore import IgnoreRules

def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

vault, data = Path(sys.argv[1]), Path(sys.argv[2])
start = peak_kb()
rebuild(vault, data, workers=1)
diffs = verify(vault, data, IgnoreRules.load(vault))
with open_store(data, readonly=True) as store, store.snapshot() as snap:
    recs = {r["path"]: {k: r[k] for k in ("blake3", "size", "error", "body")}
            for r in snap.records()}
print(json.dumps({"growth_kb": peak_kb() - start, "diffs": [d.line() for d in diffs],
                  "records": recs}))
"""


def streamed_blake3(path: Path) -> str:
    hasher = blake3.blake3()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (VmHWM)")
@pytest.mark.parametrize("name", ["big.bin", "big.md"])
def test_a_huge_file_is_hashed_in_bounded_memory(tmp_path: Path, name: str) -> None:
    """A 200 MB (sparse) attachment, or a note over max_note_bytes, is hashed in chunks
    by rebuild and by verify: the peak memory of the process grows by far less than the
    file (VmHWM, in a child process of its own), and the checksum is the whole file's."""
    vault = tmp_path / "vault"
    vault.mkdir()
    big = vault / name
    with big.open("wb") as f:
        f.write(b"# a note that is mostly nothing\n" * 512)  # text, not NUL, at the head
        f.truncate(BIG)
    (vault / "small.md").write_text("# small\n")
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(vault), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["growth_kb"] < 64 * 1024, result["growth_kb"]
    rec = result["records"][name]
    assert rec["blake3"] == streamed_blake3(big) and rec["size"] == BIG
    assert rec["body"] is None
    if name.endswith(".md"):
        assert "over the" in rec["error"]
    assert result["records"]["small.md"]["body"] == "# small\n"
    assert result["diffs"] == []
