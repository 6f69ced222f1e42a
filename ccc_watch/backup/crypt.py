"""Encrypted archives: AES-256-GCM over a stream, in chunks, in bounded memory.

    file  = MAGIC | u32 header length | header (JSON) | check (32 bytes) | chunk...
    chunk = AES-256-GCM(file key, nonce = index as 12 big-endian bytes,
                        plaintext = up to `chunk` bytes,
                        associated data = blake3(MAGIC..check) | index (u64) | final (u8))

The header (format, cipher, chunk size, a random salt, the vault id and the time) is
readable without the key, so that retention can tell whose archive a file is and
`restore` which key to ask the keyring for; it holds no note text. The file key and a
check key are derived from the vault's key and the salt with HKDF-SHA256, so every
archive has keys of its own and chunk indexes can serve as nonces. The check (an
HMAC of everything before it) tells a wrong key from a damaged chunk, and makes the
header itself tamper-evident. Every chunk authenticates its index and whether it is
the last: chunks reordered, dropped, spliced from another archive, or an archive cut
short at any byte, fail to decrypt. Only whole, authenticated chunks are ever
returned to the reader.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from typing import Any, BinaryIO

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ccc_watch.errors import CccWatchError

MAGIC = b"CCCWENC1"
CHUNK = 1 << 20  # plaintext bytes per chunk: memory stays at a few MiB
_TAG = 16
_MAX_HEADER = 64 * 1024
_INFO = b"ccc-watch backup archive v1"


class ArchiveError(CccWatchError):
    """An archive is damaged, cut short, not an archive, or not for this key."""


class WrongKeyError(ArchiveError):
    """The key given does not open the archive."""


def _keys(key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(file key, check key) for one archive."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=_INFO).derive(key)
    return okm[:32], okm[32:]


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(prefix_digest: bytes, index: int, final: bool) -> bytes:
    return prefix_digest + struct.pack(">QB", index, 1 if final else 0)


def is_encrypted(head: bytes) -> bool:
    """Whether a file starting with these bytes is an encrypted archive."""
    return head.startswith(MAGIC)


class EncryptingWriter:
    """A write-only stream that encrypts what it is given into `out`, chunk by chunk;
    close() writes the final chunk (and does not close `out`)."""

    def __init__(self, out: BinaryIO, key: bytes, header: dict[str, Any]) -> None:
        salt = os.urandom(16)
        meta = json.dumps(
            {**header, "cipher": "AES-256-GCM", "kdf": "HKDF-SHA256", "chunk": CHUNK,
             "salt": salt.hex()},
            sort_keys=True,
        ).encode()  # fmt: skip
        file_key, check_key = _keys(key, salt)
        prefix = MAGIC + struct.pack(">I", len(meta)) + meta
        prefix += hmac.new(check_key, prefix, hashlib.sha256).digest()
        out.write(prefix)
        self._out = out
        self._aead = AESGCM(file_key)
        self._digest = blake3.blake3(prefix).digest()
        self._buffer = bytearray()
        self._index = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Take data; every chunk that is surely not the last is written at once."""
        self._buffer += data
        while len(self._buffer) > CHUNK:  # more follows: this chunk is not the final one
            self._emit(bytes(self._buffer[:CHUNK]), final=False)
            del self._buffer[:CHUNK]
        return len(data)

    def _emit(self, plain: bytes, final: bool) -> None:
        aad = _aad(self._digest, self._index, final)
        self._out.write(self._aead.encrypt(_nonce(self._index), plain, aad))
        self._index += 1

    def flush(self) -> None:
        """Nothing to do: chunks are written as they fill."""

    def close(self) -> None:
        """Write what is left as the final chunk (an empty one for an empty stream)."""
        if not self.closed:
            self._emit(bytes(self._buffer), final=True)
            self._buffer.clear()
            self.closed = True


def read_header(f: BinaryIO) -> tuple[dict[str, Any], bytes]:
    """(header, the bytes it spans, check included) of an encrypted archive open at its
    start; ArchiveError when it is none."""
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise ArchiveError("not an encrypted ccc-watch archive")
    raw_len = f.read(4)
    if len(raw_len) != 4:
        raise ArchiveError("encrypted archive cut short in its header")
    (length,) = struct.unpack(">I", raw_len)
    if length > _MAX_HEADER:
        raise ArchiveError("encrypted archive's header is too long to be one")
    meta = f.read(length)
    check = f.read(32)
    if len(meta) != length or len(check) != 32:
        raise ArchiveError("encrypted archive cut short in its header")
    try:
        header = json.loads(meta)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError("encrypted archive's header is not JSON") from None
    if not isinstance(header, dict):
        raise ArchiveError("encrypted archive's header is not a JSON object")
    return header, magic + raw_len + meta + check


class DecryptingReader:
    """A read-only stream of an encrypted archive's plaintext. Raises WrongKeyError at
    once when the key does not open it, and ArchiveError at the first chunk that does
    not authenticate (damaged, reordered, spliced) or when the file ends before its
    final chunk."""

    def __init__(self, f: BinaryIO, key: bytes) -> None:
        header, prefix = read_header(f)
        self.header = header
        if header.get("cipher") != "AES-256-GCM" or header.get("kdf") != "HKDF-SHA256":
            raise ArchiveError("encrypted archive of an unknown kind (cipher or key derivation)")
        chunk, salt = header.get("chunk"), header.get("salt")
        if not isinstance(chunk, int) or not 0 < chunk <= 64 * CHUNK:
            raise ArchiveError("encrypted archive's header gives no usable chunk size")
        try:
            salt_bytes = bytes.fromhex(salt) if isinstance(salt, str) else b""
        except ValueError:
            salt_bytes = b""
        if len(salt_bytes) != 16:
            raise ArchiveError("encrypted archive's header gives no usable salt")
        file_key, check_key = _keys(key, salt_bytes)
        expected = hmac.new(check_key, prefix[:-32], hashlib.sha256).digest()
        if not hmac.compare_digest(expected, prefix[-32:]):
            raise WrongKeyError(
                "the key does not open this archive (a wrong key, or a damaged header)"
            )
        self._f = f
        self._aead = AESGCM(file_key)
        self._digest = blake3.blake3(prefix).digest()
        self._size = chunk + _TAG
        self._index = 0
        self._pending = f.read(self._size)  # the next chunk's ciphertext
        self._plain = b""
        self._pos = 0
        self._done = False

    def _next_chunk(self) -> None:
        current = self._pending
        if len(current) < _TAG:
            raise ArchiveError(f"encrypted archive cut short (chunk {self._index} is missing)")
        following = self._f.read(self._size) if len(current) == self._size else b""
        final = not following
        try:
            self._plain = self._aead.decrypt(
                _nonce(self._index), current, _aad(self._digest, self._index, final)
            )
        except InvalidTag:
            raise ArchiveError(
                f"encrypted archive is damaged or cut short: chunk {self._index} does not "
                "authenticate"
            ) from None
        self._pos = 0
        self._index += 1
        self._pending = following
        self._done = final

    def read(self, size: int = -1) -> bytes:
        """Up to size bytes of plaintext (all that is left when size < 0); b"" at the end."""
        out = bytearray()
        while size < 0 or len(out) < size:
            if self._pos >= len(self._plain):
                if self._done:
                    break
                self._next_chunk()
                continue
            want = len(self._plain) - self._pos if size < 0 else size - len(out)
            piece = self._plain[self._pos : self._pos + want]
            self._pos += len(piece)
            out += piece
        return bytes(out)
