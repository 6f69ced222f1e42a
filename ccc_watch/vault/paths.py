"""Vault-relative keys: POSIX separators, Unicode NFC, never leaving the vault."""

from __future__ import annotations

import os
import unicodedata
from pathlib import PurePath, PurePosixPath, PureWindowsPath

from ccc_watch.errors import InvalidPathError


def nfc(text: str) -> str:
    """text in Unicode NFC (macOS and some sync tools write names in NFD)."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _is_canonical(text: str) -> bool:
    """The common case, checked cheaply: already a clean relative NFC POSIX key."""
    return (
        bool(text)
        and not text.startswith("/")
        and "\\" not in text
        and "\x00" not in text
        and unicodedata.is_normalized("NFC", text)
        and all(part not in ("", ".", "..") for part in text.split("/"))
    )


def vault_key(path: str | PurePath) -> str:
    """Return the canonical store key for a vault-relative path.

    Backslashes from Windows paths become '/', the name is normalized to NFC (macOS
    and some sync tools write NFD), and '.' parts are dropped. An absolute path, a
    '..' part, an empty path or a name that is not valid UTF-8 raises InvalidPathError
    naming the path.
    """
    windows = isinstance(path, PureWindowsPath) or os.name == "nt"
    text = path.as_posix() if isinstance(path, PureWindowsPath) else str(path)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a name of undecodable bytes (surrogate escapes)
            raise InvalidPathError(f"name is not valid UTF-8: {text!r}") from None
    if not windows and _is_canonical(text):
        return text
    if "\x00" in text:
        raise InvalidPathError(f"path contains a NUL byte: {text!r}")
    text = unicodedata.normalize("NFC", text.replace("\\", "/"))
    pure = PurePosixPath(text)
    if pure.is_absolute() or (windows and PureWindowsPath(text).drive):
        raise InvalidPathError(f"path must be relative to the vault: {text!r}")
    parts = [p for p in pure.parts if p != "."]
    if not parts:
        raise InvalidPathError(f"path is empty: {text!r}")
    if ".." in parts:
        raise InvalidPathError(f"path leaves the vault: {text!r}")
    return "/".join(parts)
