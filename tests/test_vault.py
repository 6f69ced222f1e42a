"""ccc_watch.vault.walk on real folders: generated vaults with their bad inputs (the
project's tests/vaultgen.py, and ../shared's independent make_vault.py when present),
small hand-built vaults for each policy (symlinks, unreadable folders, odd names), and
../shared's real hub corpus when present."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vaultgen
from conftest import SOURCES, build_vault, hub_corpus, own_vault
from privileges import blocked_prefix

from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.paths import vault_key
from ccc_watch.vault.walk import FOLDER_SYMLINK, NOT_UTF8, VaultUnreadableError, WalkReport, walk


@pytest.fixture(scope="module", params=SOURCES)
def bad_vault(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("mv") / "vault"
    return root, build_vault(request.param, root, notes=200, seed=1)


def write(path: Path, text: str = "x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def walk_default(vault: Path) -> WalkReport:
    return walk(vault, IgnoreRules.load(vault))


def keys(report: WalkReport) -> list[str]:
    return [f.key for f in report.files]


# --- generated vaults --------------------------------------------------------------------

NOT_WALKED = ("symlink", "skipped")  # truth kinds the walk reports instead of listing


def shown(key: str) -> str:
    """A key as reports show it: a name's bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(key).decode("utf-8", "backslashreplace")


def symlink_kind(t: dict[str, Any]) -> str:
    """folder, outside or dangling: the own truth says so; make_vault's says it in words."""
    return str(t.get("symlink") or ("folder" if t["note"].startswith("loop") else "outside"))


def test_walk_keys_equal_the_truth(bad_vault: tuple[Path, dict[str, Any]]) -> None:
    """Walked keys = the truth's keys minus its symlinks (and names that are not UTF-8);
    the truth lists content only, so .trash/, .obsidian/ and Archive/Excluded/
    (userIgnoreFilters) are absent too."""
    root, truth = bad_vault
    report = walk_default(root)
    expected = {k for k, t in truth.items() if t["kind"] not in NOT_WALKED}
    assert set(keys(report)) == expected
    assert len(keys(report)) == len(expected)  # no duplicates
    assert keys(report) == sorted(keys(report))
    assert not [
        k for k in keys(report) if k.startswith((".trash/", ".obsidian/", "Archive/Excluded/"))
    ]
    assert report.ignored >= 3  # .obsidian, .trash, Archive/Excluded
    assert report.unreadable == []


def test_walk_reports_symlinks_and_skips_them(bad_vault: tuple[Path, dict[str, Any]]) -> None:
    """A folder symlink (a loop to .., or into the vault) is reported, not walked; so is a
    file symlink that leaves the vault or dangles; the loop does not make the walk run
    forever or duplicate Bad/. A name that is not UTF-8 is reported too."""
    root, truth = bad_vault
    report = walk_default(root)
    symlinks = {k: symlink_kind(t) for k, t in truth.items() if t["kind"] == "symlink"}
    unnamed = {shown(k) for k, t in truth.items() if t["kind"] == "skipped"}
    assert "folder" in symlinks.values() and "outside" in symlinks.values()
    skipped = dict(report.skipped)
    assert set(skipped) == set(symlinks) | unnamed
    for key, kind in symlinks.items():
        if kind == "folder":
            assert skipped[key] == FOLDER_SYMLINK, key
            assert not [k for k in keys(report) if k.startswith(key + "/")]
        elif kind == "outside":
            assert skipped[key].startswith("file symlink leaves the vault"), key
        else:
            assert skipped[key].startswith("dangling symlink"), key
    assert all(skipped[name] == NOT_UTF8 for name in unnamed)


def test_walk_stats_and_paths(bad_vault: tuple[Path, dict[str, Any]]) -> None:
    """Sizes match the truth; each key is vault_key of the real path, which exists; only
    a file symlink into the vault is a symlink, with its target's stat."""
    root, truth = bad_vault
    for f in walk_default(root).files:
        assert f.path.exists() or f.path.is_symlink()
        assert vault_key(f.path.relative_to(root)) == f.key
        assert f.stat.size == truth[f.key]["size"]
        st = f.path.stat()
        assert f.stat == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
        )
        assert f.is_symlink == ("symlink" in truth[f.key]), f.key


def test_walk_gives_nfd_names_an_nfc_key(bad_vault: tuple[Path, dict[str, Any]]) -> None:
    """Names written in NFD on disk (the own truth's `disk`; make_vault's "(NFD)" name)
    are read by their real name under an NFC key."""
    root, truth = bad_vault
    nfd = {k for k, t in truth.items() if "disk" in t or "(NFD)" in k}
    assert nfd
    files = {f.key: f for f in walk_default(root).files}
    for key in nfd:
        name = key.rsplit("/", 1)[1]
        assert files[key].path.name == unicodedata.normalize("NFD", name) != name
        assert files[key].path.is_file()


def test_walk_newline_in_a_name(bad_vault: tuple[Path, dict[str, Any]]) -> None:
    root, truth = bad_vault
    odd = [k for k in truth if "\n" in k]
    assert odd
    files = {f.key: f for f in walk_default(root).files}
    for key in odd:
        assert len(files[key].path.read_bytes()) == truth[key]["size"]


def test_walk_lists_the_unreadable_file(bad_vault: tuple[Path, dict[str, Any]]) -> None:
    """A file without read permission is still content: the walk only stats it, and the
    indexer reports why it cannot read it."""
    root, _ = bad_vault
    assert "Bad/unreadable.md" in keys(walk_default(root))


# --- symlinks ----------------------------------------------------------------------------


def test_file_symlink_inside_the_vault(tmp_path: Path) -> None:
    """E4: indexed with is_symlink=True and the target's stat; the target is indexed too."""
    target = write(tmp_path / "Notes" / "target.md", "# target\n" * 10)
    (tmp_path / "link.md").symlink_to("Notes/target.md")
    (tmp_path / "abs.md").symlink_to(target)
    files = {f.key: f for f in walk_default(tmp_path).files}
    assert set(files) == {"Notes/target.md", "link.md", "abs.md"}
    for key in ("link.md", "abs.md"):
        assert files[key].is_symlink
        assert files[key].stat.size == target.stat().st_size
        assert files[key].stat.inode == target.stat().st_ino
        assert files[key].path == tmp_path / key
    assert not files["Notes/target.md"].is_symlink


def test_bad_file_symlinks_are_skipped(tmp_path: Path, logs: list[str]) -> None:
    outside = write(tmp_path.parent / f"{tmp_path.name}-outside.md")
    vault = tmp_path / "vault"
    write(vault / "ok.md")
    write(vault / ".obsidian" / "app.json", "{}")
    (vault / "outside.md").symlink_to(outside)
    (vault / "dangling.md").symlink_to("nowhere.md")
    (vault / "self.md").symlink_to("self.md")
    (vault / "ping.md").symlink_to("pong.md")
    (vault / "pong.md").symlink_to("ping.md")
    (vault / "config.md").symlink_to(".obsidian/app.json")
    (vault / "null").symlink_to("/dev/null")
    report = walk_default(vault)
    assert keys(report) == ["ok.md"]
    skipped = dict(report.skipped)
    assert skipped["outside.md"].startswith("file symlink leaves the vault")
    assert skipped["dangling.md"] == "dangling symlink (-> nowhere.md)"
    assert skipped["self.md"] == "symlink loop (-> self.md)"
    assert skipped["ping.md"].startswith("symlink loop")
    assert skipped["pong.md"].startswith("symlink loop")
    assert skipped["config.md"] == "file symlink to an ignored file (.obsidian/app.json)"
    assert skipped["null"].startswith("file symlink leaves the vault")
    assert len(report.skipped) == 7
    assert f"WARNING skip dangling.md: {skipped['dangling.md']}" in logs


def test_folder_symlinks_are_never_followed(tmp_path: Path) -> None:
    """E2/E3/B10: a folder symlink (inside, outside, or a loop) is reported once and
    not entered: no duplicates, no endless walk."""
    outside = tmp_path / "outside"
    write(outside / "o.md")
    vault = tmp_path / "vault"
    write(vault / "bar" / "a.md")
    write(vault / "a" / "n.md")
    (vault / "foo").symlink_to("bar")  # mv foo bar && ln -s bar foo
    (vault / "a" / "loop").symlink_to("..")
    (vault / "out").symlink_to(outside)
    report = walk_default(vault)
    assert keys(report) == ["a/n.md", "bar/a.md"]
    assert sorted(report.skipped) == [
        ("a/loop", FOLDER_SYMLINK),
        ("foo", FOLDER_SYMLINK),
        ("out", FOLDER_SYMLINK),
    ]


def test_vault_root_may_be_a_symlink(tmp_path: Path) -> None:
    write(tmp_path / "real" / "a.md")
    (tmp_path / "link").symlink_to("real")
    (tmp_path / "real" / "b.md").symlink_to("a.md")
    report = walk_default(tmp_path / "link")
    assert keys(report) == ["a.md", "b.md"]
    assert report.skipped == []


# --- unreadable, odd and duplicate names ---------------------------------------------------


# The walk, in a child process that the folder's mode bits bind (root without the
# capabilities that bypass them): prints the report's keys, skipped and unreadable.
WALK_CHILD = """
import json, sys
from pathlib import Path
from ccc_watch.vault.ignore import IgnoreRules
from ccc_watch.vault.walk import walk
root = Path(sys.argv[1])
report = walk(root, IgnoreRules.load(root))
print(json.dumps([sorted(f.key for f in report.files), report.skipped, report.unreadable]))
"""


def test_unreadable_folder_is_reported_and_the_walk_goes_on(tmp_path: Path) -> None:
    """E1: reported with the reason, listed in unreadable (so a scan keeps its rows); a
    real chmod 000, also when the tests run as root."""
    write(tmp_path / "a.md")
    write(tmp_path / "Locked" / "secret.md")
    write(tmp_path / "z" / "z.md")
    (tmp_path / "Locked").chmod(0)
    try:
        prefix = blocked_prefix(tmp_path / "Locked")
        child = subprocess.run(
            [*prefix, sys.executable, "-c", WALK_CHILD, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        (tmp_path / "Locked").chmod(0o755)
    assert child.returncode == 0, child.stderr
    files, skipped, unreadable = json.loads(child.stdout)
    assert files == ["a.md", "z/z.md"]
    assert skipped == [["Locked", "cannot read folder: Permission denied"]]
    assert unreadable == ["Locked"]


def test_unreadable_folder_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """E1 for every user, root included: os.scandir raising PermissionError."""
    write(tmp_path / "a.md")
    write(tmp_path / "Locked" / "secret.md")
    write(tmp_path / "z" / "z.md")
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        if os.path.basename(path) == "Locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = walk_default(tmp_path)
    assert keys(report) == ["a.md", "z/z.md"]
    assert report.skipped == [("Locked", "cannot read folder: Permission denied")]
    assert report.unreadable == ["Locked"]


def bytes_name(folder: Path, name: bytes) -> None:
    """Create a file with a raw byte name, or skip when the file system refuses it."""
    try:
        fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
    except OSError as e:
        pytest.skip(f"this file system refuses non-UTF-8 names: {e}")
    os.close(fd)


def test_non_utf8_name_is_skipped(tmp_path: Path, logs: list[str]) -> None:
    """E6: reported with its bytes shown as \\xNN; a non-UTF-8 folder is not entered."""
    write(tmp_path / "ok.md")
    bytes_name(tmp_path, b"caf\xe9.md")
    os.mkdir(os.fsencode(tmp_path) + b"/dir\xff")
    bytes_name(tmp_path, b"dir\xff/inside.md")
    report = walk_default(tmp_path)
    assert keys(report) == ["ok.md"]
    assert sorted(report.skipped) == [("caf\\xe9.md", NOT_UTF8), ("dir\\xff", NOT_UTF8)]
    assert "WARNING skip caf\\xe9.md: name is not UTF-8" in logs


def test_non_utf8_name_in_an_ignored_place_is_silent(tmp_path: Path) -> None:
    write(tmp_path / "ok.md")
    bytes_name(tmp_path, b".caf\xe9.md")
    (tmp_path / ".trash").mkdir()
    bytes_name(tmp_path / ".trash", b"caf\xe9.md")
    report = walk_default(tmp_path)
    assert keys(report) == ["ok.md"]
    assert report.skipped == []


def test_nfc_duplicates_keep_the_first_in_sorted_order(tmp_path: Path) -> None:
    """E5: two on-disk spellings of one NFC name: one file, the other reported."""
    nfc, nfd = "Caf\u00e9.md", unicodedata.normalize("NFD", "Caf\u00e9.md")
    write(tmp_path / nfc, "nfc\n")
    write(tmp_path / nfd, "nfd\n")
    # Folders too: the second spelling is not entered at all.
    folder_nfc, folder_nfd = "R\u00e9sum\u00e9", unicodedata.normalize("NFD", "R\u00e9sum\u00e9")
    write(tmp_path / folder_nfc / "a.md", "nfc\n")
    write(tmp_path / folder_nfd / "b.md", "nfd\n")
    if len(os.listdir(tmp_path)) != 4:
        pytest.skip("this file system normalizes names itself")
    report = walk_default(tmp_path)
    first = min(nfc, nfd)  # sorted order of the real names
    (f,) = [f for f in report.files if f.key == nfc]
    assert f.path.name == first
    kept = "b.md" if min(folder_nfc, folder_nfd) == folder_nfd else "a.md"
    assert [f.key for f in report.files if f.key.startswith("R")] == [f"{folder_nfc}/{kept}"]
    assert sorted(report.skipped) == [
        (max(nfc, nfd), f"duplicate of {nfc} after Unicode normalization"),
        (max(folder_nfc, folder_nfd), f"duplicate of {folder_nfc} after Unicode normalization"),
    ]


def test_backslash_in_a_name_is_skipped(tmp_path: Path) -> None:
    """vault_key reads '\\' as a separator, so such a name has no key of its own."""
    write(tmp_path / "a\\b.md")
    write(tmp_path / "ok.md")
    report = walk_default(tmp_path)
    assert keys(report) == ["ok.md"]
    assert report.skipped == [("a\\b.md", "name contains a backslash (read as a folder separator)")]


def test_long_names_and_hash(tmp_path: Path) -> None:
    """E7: a 255-byte name and a leading '#' are ordinary."""
    long = "\u00e9" * 124 + ".md"  # 248 + 3 bytes
    write(tmp_path / long)
    write(tmp_path / "#1 idea.md")
    write(tmp_path / "[[x]].md")
    assert keys(walk_default(tmp_path)) == sorted(["#1 idea.md", "[[x]].md", long])


def test_not_a_regular_file(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "pipe.md")
    write(tmp_path / "ok.md")
    report = walk_default(tmp_path)
    assert keys(report) == ["ok.md"]
    assert report.skipped == [("pipe.md", "not a regular file")]


# --- ignore rules in the walk ------------------------------------------------------------


def test_ignored_folders_are_not_entered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither .trash/ nor a userIgnoreFilters folder is listed at all."""
    write(tmp_path / ".obsidian" / "app.json", json.dumps({"userIgnoreFilters": ["Archive/"]}))
    write(tmp_path / ".trash" / "old.md")
    write(tmp_path / "Archive" / "deep" / "x.md")
    write(tmp_path / "Notes" / "a.md")
    write(tmp_path / "Notes" / ".DS_Store")
    write(tmp_path / "Notes" / "a.md~")
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        listed.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = walk_default(tmp_path)
    assert keys(report) == ["Notes/a.md"]
    assert sorted(listed) == [".", "Notes"]
    assert report.ignored == 5  # .obsidian, .trash, Archive, .DS_Store, a.md~
    assert report.skipped == []


def test_regex_filters_are_applied_per_file(tmp_path: Path) -> None:
    write(tmp_path / ".obsidian" / "app.json", json.dumps({"userIgnoreFilters": ["/^Temp\\//"]}))
    write(tmp_path / "Temp" / "a.md")
    write(tmp_path / "Temp" / "b.md")
    write(tmp_path / "Keep" / "Temp" / "c.md")
    report = walk_default(tmp_path)
    assert keys(report) == ["Keep/Temp/c.md"]
    assert report.ignored == 3  # .obsidian, Temp/a.md, Temp/b.md (Temp/ itself is entered)


def test_cccignore_in_the_walk(tmp_path: Path) -> None:
    write(tmp_path / ".cccignore", "*.md\n!keep.md\n")
    write(tmp_path / "a.md")
    write(tmp_path / "keep.md")
    write(tmp_path / "data.json")
    assert keys(walk_default(tmp_path)) == ["data.json", "keep.md"]


def test_atomic_save_temp_names(tmp_path: Path) -> None:
    """A3/F1 and the churns' saves: the dot temp names are never seen; `n.md.tmp-12`
    is a file while it exists, and once renamed onto n.md a walk sees only n.md, so a
    scan after the rename can never index the temporary name."""
    write(tmp_path / "n.md", "old\n")
    write(tmp_path / ".n.md.tmp", "new\n")
    write(tmp_path / ".syncthing.n.md.tmp", "new\n")
    write(tmp_path / "n.md.tmp-12", "new\n")
    write(tmp_path / "export.tmp", "kept: *.tmp is not ignored\n")
    assert keys(walk_default(tmp_path)) == ["export.tmp", "n.md", "n.md.tmp-12"]
    os.replace(tmp_path / "n.md.tmp-12", tmp_path / "n.md")
    os.replace(tmp_path / ".n.md.tmp", tmp_path / "n.md")
    report = walk_default(tmp_path)
    assert keys(report) == ["export.tmp", "n.md"]
    assert report.files[1].path.read_text() == "new\n"


# --- races and errors ------------------------------------------------------------------


def test_vanished_entries_are_simply_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file or folder deleted between the listing and its stat/scandir is not an error
    and not reported: it is no longer in the vault."""
    write(tmp_path / "a.md")
    write(tmp_path / "gone.md")
    write(tmp_path / "Gone" / "x.md")
    real_scandir = os.scandir

    class Listing:
        def __init__(self, path: str) -> None:
            with real_scandir(path) as it:
                self.entries = list(it)
            if path == str(tmp_path):
                (tmp_path / "gone.md").unlink()
                (tmp_path / "Gone" / "x.md").unlink()
                (tmp_path / "Gone").rmdir()

        def __enter__(self) -> Iterator[os.DirEntry[str]]:
            return iter(self.entries)

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(os, "scandir", Listing)
    report = walk_default(tmp_path)
    assert keys(report) == ["a.md"]
    assert report.skipped == []
    assert report.unreadable == []


def test_missing_vault_raises(tmp_path: Path) -> None:
    """Never an empty report for a vault that is gone: that would read as 'every note
    was deleted'."""
    with pytest.raises(VaultUnreadableError):
        walk_default(tmp_path / "missing")
    write(tmp_path / "file")
    with pytest.raises(VaultUnreadableError):
        walk_default(tmp_path / "file")


def test_skips_are_logged_once_per_process(tmp_path: Path, logs: list[str]) -> None:
    write(tmp_path / "ok.md")
    (tmp_path / "dangling.md").symlink_to("nowhere.md")
    first = walk_default(tmp_path)
    second = walk_default(tmp_path)
    assert first.skipped == second.skipped == [("dangling.md", "dangling symlink (-> nowhere.md)")]
    lines = [line for line in logs if "skip dangling.md" in line]
    assert [line.split()[0] for line in lines] == ["WARNING", "DEBUG"]


def test_walk_timing(tmp_path: Path) -> None:
    """A 2,000-note generated vault; the figure is printed, the bound is loose."""
    root = tmp_path / "v"
    truth = own_vault(root, notes=2000, seed=2, bad=False)
    rules = IgnoreRules.load(root)
    start = time.perf_counter()
    report = walk(root, rules)
    elapsed = time.perf_counter() - start
    print(f"walk: {len(report.files)} files in {elapsed * 1000:.1f} ms")
    assert set(keys(report)) == set(truth)
    assert elapsed < 10


def test_real_obsidian_vault(tmp_path: Path) -> None:
    """The obsidian-hub corpus (a real vault, 6,000+ files, emoji and '&' in names): the
    walk finds exactly the files an independent os.walk finds outside dot-names."""
    hub_corpus(tmp_path)
    expected = set()
    for folder, dirs, files in os.walk(tmp_path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(tmp_path)
        expected |= {vault_key(rel / name) for name in files if not name.startswith(".")}
    report = walk_default(tmp_path)
    assert len(expected) > 6000
    assert set(keys(report)) == expected
    assert report.skipped == []


def test_own_vault_walk_equals_an_independent_os_walk(tmp_path: Path) -> None:
    """The hub corpus's check on an own vault (names with emoji, '&', accents in NFC and
    NFD, nested folders): the walk finds exactly the files an independent os.walk finds,
    less the ignored files the generator wrote (dot-names, litter, userIgnoreFilters,
    .cccignore)."""
    own_vault(tmp_path, notes=600, seed=3, bad=False)
    expected = set()
    for folder, _dirs, files in os.walk(tmp_path):
        rel = Path(folder).relative_to(tmp_path)
        expected |= {vault_key(rel / name) for name in files}
    expected -= set(vaultgen.IGNORED)
    report = walk_default(tmp_path)
    assert len(expected) > 600
    assert any(not k.isascii() for k in expected) and any("&" in k for k in expected)
    assert set(keys(report)) == expected
    assert report.skipped == []
