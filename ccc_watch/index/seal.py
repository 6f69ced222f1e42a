"""Sealed text: what a CONFIDENTIAL record drops, kept encrypted in the record itself
(the `confidential_text = "seal"` policy, README "Privacy").

A record's `sealed` field is a JSON object of text only:

    {"v": 1, "cipher": "AES-256-GCM", "key_id": 16 hex digits, "digest": 32 hex digits,
     "nonce": base64 of 12 random bytes, "data": base64 of the ciphertext and its tag}

The plaintext is the JSON of the fields the privacy policy dropped (body, title,
aliases, tags, links, frontmatter, the parser's message, the tasks with their text).
Two keys are derived from the vault's key with HKDF-SHA256 (the vault's key itself
also encrypts backups): one for AES-256-GCM, with a fresh random nonce per sealing,
whose associated data binds the ciphertext to the record's id and blake3 (which a
rename keeps; the path is not bound); one for `digest`, a keyed blake3 of the
plaintext, so that the store can tell two sealings of the same text apart from a
change without the key (it reveals only that two records hide equal text, which their
blake3 mostly tells already). `key_id` names the key (the first 8 bytes of
blake3("ccc-watch key id" + key)), never gives it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ccc_watch.errors import EXIT_DATAERR, EXIT_FAILURE, CccWatchError
from ccc_watch.store import codec
from ccc_watch.store.store import SEALED_FIELD

SEALED = SEALED_FIELD  # the record field (the store compares it by key id and digest)
VERSION = 1
CIPHER = "AES-256-GCM"
_INFO = b"ccc-watch sealed fields v1"
_AAD = b"ccc-watch sealed v1\0"
_NONCE = 12
_SHAPE = frozenset({"v", "cipher", "key_id", "digest", "nonce", "data"})


class SealError(CccWatchError):
    """A sealed field does not open: altered, damaged, or not a sealed field (65)."""

    exit_code = EXIT_DATAERR


class SealKeyError(SealError):
    """A sealed field was sealed under another key than the one at hand (1)."""

    exit_code = EXIT_FAILURE


def key_id(key: bytes) -> str:
    """A short public name of a key: 16 hex digits, from which the key cannot be had."""
    return blake3.blake3(b"ccc-watch key id" + key).digest()[:8].hex()


class Sealer:
    """Seals and opens the dropped fields of records under one vault key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a vault key is 32 bytes")
        okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_INFO).derive(key)
        self._aead = okm[:32]
        self._digest = okm[32:]
        self.key_id = key_id(key)

    def __repr__(self) -> str:  # never the key
        return f"<Sealer key {self.key_id}>"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for the indexer's worker processes (a pipe to a child, never a file)."""
        return {"aead": self._aead, "digest": self._digest, "key_id": self.key_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._aead, self._digest, self.key_id = state["aead"], state["digest"], state["key_id"]

    def _aad(self, record_id: object, blake3_hex: object) -> bytes:
        parts = (self.key_id, str(record_id), "" if blake3_hex is None else str(blake3_hex))
        return _AAD + "\0".join(parts).encode()

    def _digest_of(self, plain: bytes) -> str:
        return blake3.blake3(plain, key=self._digest).digest()[:16].hex()

    def seal(
        self, fields: Mapping[str, Any], record_id: object, blake3_hex: object
    ) -> dict[str, Any]:
        """The sealed field of a record (its id and blake3) hiding `fields`."""
        plain = codec.canonical(dict(fields))
        nonce = os.urandom(_NONCE)
        data = AESGCM(self._aead).encrypt(nonce, plain, self._aad(record_id, blake3_hex))
        return {
            "v": VERSION,
            "cipher": CIPHER,
            "key_id": self.key_id,
            "digest": self._digest_of(plain),
            "nonce": base64.b64encode(nonce).decode("ascii"),
            "data": base64.b64encode(data).decode("ascii"),
        }

    def open(
        self, sealed: object, record_id: object, blake3_hex: object, where: str
    ) -> dict[str, Any]:
        """The fields a record's sealed field hides; SealKeyError when it was sealed
        under another key, SealError when it does not open (altered, damaged, moved
        onto another record). Never returns part of the text: all of it, or raises."""
        if not isinstance(sealed, Mapping) or sealed.keys() != _SHAPE:
            raise SealError(
                f"{where}: the sealed field is not one this ccc-watch writes; "
                "`ccc-watch rebuild` seals it anew from the vault"
            )
        if sealed["v"] != VERSION or sealed["cipher"] != CIPHER:
            raise SealError(
                f"{where}: sealed with format {sealed['v']!r:.20} "
                f"{sealed['cipher']!r:.20}, which this ccc-watch does not read; "
                "`ccc-watch rebuild` seals it anew from the vault"
            )
        if sealed["key_id"] != self.key_id:
            raise SealKeyError(
                f"{where}: sealed under key {str(sealed['key_id'])[:16]}, and the key at hand "
                f"is {self.key_id}: give the key it was sealed with (--key-file, the OS "
                "keyring or the systemd credential), or `ccc-watch rebuild` to seal every "
                "note anew with this one"
            )
        try:
            nonce = base64.b64decode(str(sealed["nonce"]), validate=True)
            data = base64.b64decode(str(sealed["data"]), validate=True)
            if len(nonce) != _NONCE:
                raise ValueError("bad nonce")
            plain = AESGCM(self._aead).decrypt(nonce, data, self._aad(record_id, blake3_hex))
            if self._digest_of(plain) != sealed["digest"]:  # what the store compares by
                raise ValueError("digest")
            fields = codec.decode(plain)
        except (InvalidTag, ValueError, binascii.Error):
            raise SealError(
                f"{where}: the sealed text does not open with key {self.key_id}: it was "
                "altered or damaged; `ccc-watch rebuild` recreates it from the vault"
            ) from None
        return fields
