"""ccc_watch.vault.paths.vault_key: the canonical, vault-relative store key of a path.

Pure string logic, so plain asserts on strings and PurePath objects; nothing here
touches a file system.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

import pytest

from ccc_watch.errors import InvalidPathError, StoreError
from ccc_watch.vault.paths import vault_key

# "Café/Résumé.md" spelled with combining accents (NFD, as macOS writes it) and
# precomposed (NFC).
NFD = "Cafe\u0301/Re\u0301sume\u0301.md"
NFC = "Caf\u00e9/R\u00e9sum\u00e9.md"


def test_nfd_input_gives_nfc() -> None:
    """An NFD name (macOS, some sync tools) becomes the NFC key, so both spellings of
    the same name map to one record."""
    assert unicodedata.is_normalized("NFD", NFD)
    assert NFD != NFC
    key = vault_key(NFD)
    assert key == NFC
    assert unicodedata.is_normalized("NFC", key)
    assert vault_key(NFC) == NFC


def test_nfd_hangul_gives_nfc() -> None:
    """Normalization is not limited to Latin accents: decomposed Hangul jamo compose."""
    nfd = unicodedata.normalize("NFD", "\ud55c\uae00.md")
    assert nfd != "\ud55c\uae00.md"
    assert vault_key(nfd) == "\ud55c\uae00.md"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("notes\\daily\\2024-01-01.md", "notes/daily/2024-01-01.md"),
        ("notes\\a.md", "notes/a.md"),
        ("a\\b/c\\d.md", "a/b/c/d.md"),
    ],
)
def test_backslashes_become_slashes(raw: str, expected: str) -> None:
    """Windows separators in a string become '/' (keys are POSIX on every platform)."""
    assert vault_key(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("./a.md", "a.md"),
        ("a/./b.md", "a/b.md"),
        ("./a/././b/./c.md", "a/b/c.md"),
        (".\\a\\.\\b.md", "a/b.md"),
        ("a//b.md", "a/b.md"),
        ("a/b/", "a/b"),
    ],
)
def test_dot_parts_and_redundant_separators_dropped(raw: str, expected: str) -> None:
    """'.' parts, doubled and trailing separators vanish from the key."""
    assert vault_key(raw) == expected


def test_plain_key_is_unchanged_and_idempotent() -> None:
    """A key that is already canonical comes back as is, and vault_key(vault_key(p))
    equals vault_key(p)."""
    for raw in ["a.md", "Projects/Budget.md", NFD, "./x\\y.md"]:
        key = vault_key(raw)
        assert vault_key(key) == key
    assert vault_key("Projects/Budget.md") == "Projects/Budget.md"


@pytest.mark.parametrize(
    "raw",
    [
        "/etc/passwd",
        "/a.md",
        "//server/share/a.md",
        "\\a.md",
        "\\\\server\\share\\a.md",
    ],
)
def test_absolute_paths_rejected(raw: str) -> None:
    """An absolute POSIX path, a UNC path or a Windows drive path is refused with
    InvalidPathError whose message names the (slash-normalized) path."""
    with pytest.raises(InvalidPathError) as info:
        vault_key(raw)
    assert raw.replace("\\", "/") in str(info.value)
    assert "relative" in str(info.value)


@pytest.mark.parametrize("raw", ["C:a.md", "C:/Users/me/a.md", "a:b.md", "Meeting 10:30.md"])
def test_colons_are_ordinary_characters_on_posix(raw: str) -> None:
    """On Linux and macOS 'C:' is a valid folder or file name, not a drive: it is kept."""
    if os.name == "nt":
        pytest.skip("drive letters are real on Windows")
    assert vault_key(raw) == raw


@pytest.mark.parametrize(
    "raw",
    ["..", "../a.md", "a/../b.md", "a/b/..", "..\\secret.md", "./../a.md", "a/./../../b"],
)
def test_parent_parts_rejected(raw: str) -> None:
    """A '..' part anywhere (even one that would stay inside the vault) is refused:
    InvalidPathError naming the path."""
    with pytest.raises(InvalidPathError) as info:
        vault_key(raw)
    assert raw.replace("\\", "/") in str(info.value)
    assert "leaves the vault" in str(info.value)


@pytest.mark.parametrize("raw", ["", ".", "./", "././.", ".\\"])
def test_empty_paths_rejected(raw: str) -> None:
    """An empty path, or one made of '.' parts only, names no file: InvalidPathError."""
    with pytest.raises(InvalidPathError) as info:
        vault_key(raw)
    assert "empty" in str(info.value)
    assert repr(raw.replace("\\", "/")) in str(info.value)


@pytest.mark.parametrize("raw", ["a\x00b.md", "\x00", "notes/\x00/a.md", "a.md\x00"])
def test_nul_rejected(raw: str) -> None:
    """A NUL byte can never be in a file name: InvalidPathError naming the path."""
    with pytest.raises(InvalidPathError) as info:
        vault_key(raw)
    assert "NUL" in str(info.value)
    assert repr(raw) in str(info.value)


def test_invalid_path_error_is_a_value_error_and_store_error() -> None:
    """Callers may catch InvalidPathError as ValueError or as StoreError."""
    with pytest.raises(ValueError):
        vault_key("../x")
    with pytest.raises(StoreError):
        vault_key("/x")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (PureWindowsPath("notes\\daily\\a.md"), "notes/daily/a.md"),
        (PureWindowsPath("notes/a.md"), "notes/a.md"),
        (PureWindowsPath(".\\a\\b.md"), "a/b.md"),
        (PurePosixPath("notes/./a.md"), "notes/a.md"),
        (PurePosixPath(NFD), NFC),
    ],
)
def test_pure_path_input(raw: PureWindowsPath | PurePosixPath, expected: str) -> None:
    """PureWindowsPath and PurePosixPath objects are accepted and give the same key as
    the equivalent string."""
    assert vault_key(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [PureWindowsPath("C:\\a.md"), PureWindowsPath("\\\\srv\\share\\a.md"), PurePosixPath("/a")],
)
def test_absolute_pure_path_rejected(raw: PureWindowsPath | PurePosixPath) -> None:
    """An absolute PurePath is refused like an absolute string."""
    with pytest.raises(InvalidPathError):
        vault_key(raw)


def test_windows_path_with_parent_part_rejected() -> None:
    """A PureWindowsPath with '..' leaves the vault: refused."""
    with pytest.raises(InvalidPathError):
        vault_key(PureWindowsPath("a\\..\\..\\b.md"))


@pytest.mark.parametrize(
    "raw",
    [
        "My notes/Garden plan.md",
        " leading space.md",
        "trailing space .md",
        "Topic #1/#tag.md",
        "[[Wiki link]].md",
        "a [[b]] #c/d.md",
        "line\nbreak.md",
        "tab\there.md",
        "Meeting 10:30.md",
        ".obsidian/app.json",
        ".hidden.md",
        "...md",
        "a..b.md",
        "~/not-home.md",
        "emoji \U0001f331.md",
        "%20 and ?query=1&x.md",
    ],
)
def test_unusual_names_kept_as_they_are(raw: str) -> None:
    """Spaces, '#', '[[', newlines, tabs, leading dots, '~' and the like are ordinary
    file name characters: the key is the name itself."""
    assert vault_key(raw) == raw


def test_255_byte_names_kept() -> None:
    """A name at the usual 255-byte file-name limit (ASCII, and multi-byte UTF-8) is
    kept whole; vault_key does not truncate."""
    ascii_name = "a" * 252 + ".md"
    utf8_name = "\u00e9" * 126 + ".md"  # 126 * 2 + 3 = 255 bytes
    assert len(ascii_name.encode()) == 255
    assert len(utf8_name.encode()) == 255
    assert vault_key(ascii_name) == ascii_name
    assert vault_key(utf8_name) == utf8_name
    deep = f"{ascii_name[:-3]}/{utf8_name}"
    assert vault_key(deep) == deep


def test_255_byte_nfd_name_becomes_shorter_nfc() -> None:
    """A 255-byte NFD name is normalized to NFC (fewer bytes), not left NFD."""
    nfd = "e\u0301" * 84 + ".md"  # 84 * 3 + 3 = 255 bytes
    assert len(nfd.encode()) == 255
    key = vault_key(nfd)
    assert key == "\u00e9" * 84 + ".md"
    assert len(key.encode()) == 171
