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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import blake3
import pytest
from privileges import blocked_prefix

from ccc_watch.changes import rebuild as rebuild_module
from ccc_watch.changes import reconcile as reconcile_module
from ccc_watch.changes import verify as verify_module
from ccc_watch.changes.rebuild import rebuild
from ccc_watch.changes.reconcile import reconcile
from ccc_watch.changes.verify import verify
from ccc_watch.index.indexer import Indexer
from ccc_watch.store import open_store
from ccc_watch.vault import read as read_module
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.read import CHUNK, Folders, NotContentError, read_file

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


# --- the compiled read (rust/src/read.rs) beside read.py's own ------------------------


def _outcome(vault: Path, path: Path, keep: int, compiled: bool) -> tuple[Any, ...]:
    """What read_file gives, through the compiled read or read.py's own path: the
    Content, or the exception as (type, errno, strerror, text)."""
    saved = read_module._compiled_read
    calls = []
    if compiled:
        assert saved is not None, "this platform's build has no compiled read"

        def counted(*args: Any) -> Any:
            calls.append(args[1])
            return saved(*args)

        read_module._compiled_read = counted
    else:
        read_module._compiled_read = None
    try:
        with Folders(vault) as folders:
            got: Any = read_file(vault, path, keep, folders)
    except (OSError, ValueError) as e:
        got = (type(e).__name__, getattr(e, "errno", None), getattr(e, "strerror", None), str(e))
    finally:
        read_module._compiled_read = saved
    return got, bool(calls)


@pytest.mark.skipif(sys.platform == "win32", reason="no compiled read on Windows")
def test_the_compiled_read_gives_what_read_py_gives(tmp_path: Path) -> None:
    """Each file and name a vault can hold (a note, an empty one, one larger than what
    is kept, a symlink in and out of the vault, a FIFO, a folder, a name gone, one too
    long, one with a NUL, one that is no UTF-8): the compiled read gives the same
    Content, or the same exception with the same errno and text, as read.py's."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "note.md").write_text("# hello\n\nworld\n")
    (vault / "empty.md").write_bytes(b"")
    (vault / "big.md").write_text("x" * 5000)
    (tmp_path / "outside.md").write_text("secret\n")
    os.symlink(vault / "note.md", vault / "link.md")
    os.symlink(tmp_path / "outside.md", vault / "out.md")
    os.mkfifo(vault / "fifo.md")
    (vault / "dir.md").mkdir()
    odd = os.fsdecode(b"\xffodd.md")
    (vault / odd).write_text("odd\n")
    names = ["note.md", "empty.md", "big.md", "link.md", "out.md", "fifo.md", "dir.md",
             "gone.md", "n" * 300 + ".md", "nul\x00.md", odd]  # fmt: skip
    used = set()
    for name in names:
        compiled, called = _outcome(vault, vault / name, 1000, compiled=True)
        python, _ = _outcome(vault, vault / name, 1000, compiled=False)
        assert compiled == python, name
        if called:
            used.add(name)
    assert {"note.md", "empty.md", "fifo.md", "dir.md", "gone.md"} <= used


@pytest.mark.skipif(sys.platform == "win32", reason="no compiled read on Windows")
def test_a_note_rewritten_while_it_is_read_is_never_read_torn(tmp_path: Path) -> None:
    """An editor rewrites a note, in place and by atomic saves, over and over, at several
    lengths, while it is read a thousand times with the compiled read: every read gives
    one version whole (its bytes, size and blake3 agree; or the empty file between a
    truncate and its write), or says the note kept changing."""
    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "busy.md"
    versions = [(f"version {i}\n" * (1 + 37 * i)).encode() for i in range(6)]
    note.write_bytes(versions[0])
    stop, editing = threading.Event(), threading.Event()

    def editor() -> None:  # in place (truncated, then written), or an atomic save
        i = 0
        while not stop.is_set():
            i += 1
            if i == 10:
                editing.set()
            if i % 2:
                with note.open("r+b") as f:
                    f.truncate(0)
                    f.write(versions[i % len(versions)])
            else:
                (vault / "tmp").write_bytes(versions[i % len(versions)])
                os.replace(vault / "tmp", note)

    writer = threading.Thread(target=editor)
    writer.start()
    seen, changing, reads = set(), 0, 0
    try:
        assert editing.wait(60)
        # At least a thousand reads, and on until the editor is seen to race them: on a
        # busy machine its thread may not be scheduled for a while (a bound, not a timing).
        deadline = time.monotonic() + 60
        with Folders(vault) as folders:
            while reads < 1000 or (len(seen) + changing < 2 and time.monotonic() < deadline):
                reads += 1
                try:
                    content = read_file(vault, note, 1 << 20, folders)
                except OSError as e:
                    assert "kept changing" in str(e)
                    changing += 1
                    continue
                # A version whole, or the empty file between a truncate and its write.
                assert content.data in versions or content.data == b""
                assert content.stat.size == len(content.data)
                assert content.blake3 == blake3.blake3(content.data).hexdigest()
                seen.add(content.data)
    finally:
        stop.set()
        writer.join()
    assert read_module._compiled_read is not None
    assert len(seen) + changing > 1  # the editor did race the reads


@pytest.mark.skipif(sys.platform == "win32", reason="no compiled read on Windows")
def test_a_note_the_reader_may_not_open_is_the_same_error_both_ways(tmp_path: Path) -> None:
    """A note of mode 000, read by a process whose permissions bind (root without
    CAP_DAC_*): the compiled read and read.py's raise the same PermissionError."""
    vault = tmp_path / "vault"
    vault.mkdir()
    locked = vault / "locked.md"
    locked.write_text("secret\n")
    locked.chmod(0)
    probe = tmp_path / "probe"  # blocked_prefix checks that a mode-000 folder binds
    probe.mkdir(mode=0)
    prefix = blocked_prefix(probe)
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_reads import _outcome\n"
        "vault = Path(sys.argv[1])\n"
        "out = [_outcome(vault, vault / 'locked.md', 1000, c)[0] for c in (True, False)]\n"
        "print(json.dumps(out))\n"
    )
    got = subprocess.run(
        [*prefix, sys.executable, "-c", script, str(vault)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    compiled, python = json.loads(got.stdout)
    assert compiled == python
    assert compiled[:3] == ["PermissionError", 13, "Permission denied"]
