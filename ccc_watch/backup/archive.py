"""One backup archive: a tar of manifest.json, the store file and mirror.duckdb, written
as one stream (plain, or through crypt.EncryptingWriter), and read back the same way.

Reading treats the archive as hostile: the members must be exactly the manifest's,
each a regular file of the size it states, in order; names are never used as paths
(each member is written to a fixed name in a folder the caller gives), and nothing is
trusted until its size and blake3 match the manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import blake3

from ccc_watch.backup.crypt import (
    ArchiveError,
    DecryptingReader,
    EncryptingWriter,
    is_encrypted,
    read_header,
)

FORMAT = "ccc-watch-backup"
VERSION = 1
MANIFEST = "manifest.json"
STORE_MEMBERS = ("index.redb", "index.sqlite")
MIRROR_MEMBER = "mirror.duckdb"
_MAX_MANIFEST = 1 << 20
_COPY = 1 << 20

KeySource = Callable[[str], bytes]  # vault id -> the key


def file_digest(path: Path) -> tuple[int, str]:
    """(size, blake3 hex) of a file, read in chunks."""
    h = blake3.blake3()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_COPY):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What an archive holds (never note text): see README "Backup, restore and audit"."""

    data: dict[str, Any]

    @property
    def vault_id(self) -> str:
        """The vault id of the archived store."""
        return str(self.data["vault_id"])

    @property
    def backend(self) -> str:
        """The archived store's engine: redb or sqlite."""
        return str(self.data["backend"])

    @property
    def members(self) -> list[dict[str, Any]]:
        """[{name, size, blake3}] of the files after the manifest, in archive order."""
        return list(self.data["members"])

    @property
    def chain_head(self) -> tuple[int, str | None]:
        """(seq, hash) of the archived changelog's newest entry."""
        head = self.data["chain_head"]
        return int(head["seq"]), head["hash"]

    def to_bytes(self) -> bytes:
        """The manifest.json member."""
        return json.dumps(self.data, indent=1, sort_keys=True).encode()

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """A manifest read from an archive, checked for shape; ArchiveError otherwise."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ArchiveError("the archive's manifest.json is not JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArchiveError("the archive's manifest.json is not a ccc-watch backup manifest")
        if data.get("version") != VERSION:
            raise ArchiveError(
                f"the archive is of backup format version {data.get('version')!r}; this "
                f"ccc-watch reads version {VERSION}"
            )
        members = data.get("members")
        head = data.get("chain_head")
        ok = (
            isinstance(data.get("vault_id"), str)
            and data.get("backend") in ("redb", "sqlite")
            and isinstance(head, dict)
            and isinstance(head.get("seq"), int)
            and isinstance(members, list)
            and [m.get("name") if isinstance(m, dict) else None for m in members]
            == [STORE_MEMBERS[data.get("backend") == "sqlite"], MIRROR_MEMBER]
            and all(
                isinstance(m.get("size"), int) and isinstance(m.get("blake3"), str) for m in members
            )
        )
        if not ok:
            raise ArchiveError("the archive's manifest.json lacks its fields")
        return cls(data)


def write_archive(
    out: BinaryIO,
    manifest: Manifest,
    folder: Path,
    *,
    key: bytes | None = None,
    header: dict[str, Any] | None = None,
) -> None:
    """Write the archive to out: manifest.json, then each member file from folder; through
    the cipher when a key is given (header: what the encrypted file says in the clear)."""
    sink: Any = out if key is None else EncryptingWriter(out, key, header or {})
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        raw = manifest.to_bytes()
        tar.addfile(_info(MANIFEST, len(raw), manifest), _BytesReader(raw))
        for member in manifest.members:
            with (folder / member["name"]).open("rb") as f:
                tar.addfile(_info(member["name"], member["size"], manifest), f)
    if key is not None:
        sink.close()


def _info(name: str, size: int, manifest: Manifest) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(manifest.data.get("created_ts", 0))
    return info


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        out = self._data[self._pos : end]
        self._pos += len(out)
        return out


def archive_header(path: Path) -> dict[str, Any] | None:
    """What an archive says about itself without a key (vault id, created), or None when
    the file is no ccc-watch archive: an encrypted one's clear header, a plain one's
    manifest. For retention: reads at most the first MiB."""
    try:
        with path.open("rb") as f:
            head = f.read(len(b"CCCWENC1"))
            f.seek(0)
            if is_encrypted(head):
                return read_header(f)[0]
            with tarfile.open(fileobj=f, mode="r|") as tar:
                first = tar.next()
                if first is None or first.name != MANIFEST or not first.isfile():
                    return None
                if first.size > _MAX_MANIFEST:
                    return None
                reader = tar.extractfile(first)
                if reader is None:
                    return None
                return Manifest.parse(reader.read()).data
    except (OSError, ArchiveError, tarfile.TarError, ValueError):
        return None


@contextlib.contextmanager
def _opened(path: Path, key_source: KeySource | None) -> Iterator[tuple[Any, bool]]:
    """(plaintext stream, encrypted?) of an archive file."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ArchiveError(f"{path}: a folder, not an archive") from None
    except OSError as e:
        raise ArchiveError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        head = f.read(8)
        f.seek(0)
        if not is_encrypted(head):
            yield f, False
            return
        header, _ = read_header(f)
        f.seek(0)
        vault_id = header.get("vault_id")
        if not isinstance(vault_id, str) or key_source is None:
            raise ArchiveError("the encrypted archive names no vault id")
        yield DecryptingReader(f, key_source(vault_id)), True


@dataclass(frozen=True)
class Unpacked:
    """An archive read whole: its manifest, and its members written into a folder."""

    manifest: Manifest
    encrypted: bool
    folder: Path


def unpack(path: Path, folder: Path, key_source: KeySource | None) -> Unpacked:
    """Read an archive whole, writing each member to folder/<its manifest name> (0600),
    and check every member against the manifest: present, in order, a regular file, of
    its size and blake3, nothing else. ArchiveError naming the first fault."""
    with _opened(path, key_source) as (stream, encrypted):
        try:
            manifest = _unpack(stream, folder)
        except tarfile.ReadError as e:
            raise ArchiveError(f"not a ccc-watch archive, or damaged: {e}") from None
        except (tarfile.TarError, EOFError) as e:
            raise ArchiveError(f"the archive is damaged or cut short: {e}") from None
    return Unpacked(manifest, encrypted, folder)


def _unpack(stream: Any, folder: Path) -> Manifest:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        first = tar.next()
        if first is None or first.name != MANIFEST:
            raise ArchiveError("the archive does not start with manifest.json")
        if not first.isfile() or first.size > _MAX_MANIFEST:
            raise ArchiveError("the archive's manifest.json is no small regular file")
        reader = tar.extractfile(first)
        assert reader is not None  # a regular file
        manifest = Manifest.parse(reader.read())
        for expected in manifest.members:
            name = expected["name"]
            member = tar.next()
            if member is None:
                raise ArchiveError(f"the archive lacks {name}")
            if member.name != name:
                raise ArchiveError(
                    f"the archive holds {member.name!r} where the manifest puts {name}"
                )
            if not member.isfile():
                raise ArchiveError(f"{name} in the archive is not a regular file")
            if member.size != expected["size"]:
                raise ArchiveError(
                    f"{name} is {member.size} bytes, the manifest says {expected['size']}"
                )
            source = tar.extractfile(member)
            assert source is not None
            size, digest = _copy_out(source, folder / name)
            if size != expected["size"]:
                raise ArchiveError(f"{name} is cut short ({size} of {expected['size']} bytes)")
            if digest != expected["blake3"]:
                raise ArchiveError(f"{name}'s blake3 does not match the manifest")
        extra = tar.next()
        if extra is not None:
            raise ArchiveError(f"the archive holds {extra.name!r}, which the manifest lacks")
        # Read to the end: an encrypted stream authenticates its final chunk only there.
        while stream.read(_COPY):
            pass
    return manifest


def _copy_out(source: Any, target: Path) -> tuple[int, str]:
    h = blake3.blake3()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_COPY):
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size, h.hexdigest()
