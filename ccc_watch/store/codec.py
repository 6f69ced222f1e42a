"""How records and changelog entries are stored as bytes.

orjson, chosen by bench/serialization.py: on a typical 3.5 KB note record it encodes
4.5x faster than the standard json module and 1.4x faster than msgpack, decodes 1.8x
faster than msgpack, and the bytes stay JSON that a person can read with any tool.

A value of COMPRESS_AT bytes of JSON or more is stored as a zstd frame, made by the
compiled extension (ccc_watch._redb.compress, with the GIL released, so any process or
thread may encode) with a dictionary of the records' shapes. bench/store_size.py: note
records shrink to 0.29 of their JSON, changelog entries to 0.54, and the redb file of
a rebuilt 100,000-note vault from 285 MB to 86 MB (compacted, its hash index written
in order). A stored value
is a zstd frame iff it begins with the frame's magic bytes (JSON begins with '{'), so a
store written before compression reads as it is.

What a value IS is its canonical JSON (canonical()): every hash, digest and comparison
of a value uses that, never the stored bytes, so compressing (or not, or at another
level) changes no record's identity, fingerprint or chain hash.
"""

from __future__ import annotations

from typing import Any

import orjson

from ccc_watch import _redb

# Sorted keys make equal records encode to equal bytes.
_OPTIONS = orjson.OPT_SORT_KEYS

# Values this long (bytes of JSON) and longer are compressed. bench/store_size.py on the
# synthetic and hub vaults: a 320-byte changelog entry compresses to 0.57 of its size,
# records to 0.3; a frame costs ~13 bytes, so values under ~100 bytes (meta) do not pay.
COMPRESS_AT = 128

# zstd's level. On the values of a 100,000-note synthetic vault (bench/store_size.py's
# rebuild, a sample of 10,500 of each): level 3 (zstd's default) left records at 465
# bytes and changelog entries at 189 for 9.4 and 5.4 µs each; level 5 at 438 and 182,
# for 16.9 and 7.6 µs; 6 and 9 no smaller. 3.6 MB less in a 90 MB store, for about 1
# CPU-second over 105,000 files (mostly in the workers, which encode the records).
LEVEL = 5

_MAGIC: bytes = _redb.ZSTD_MAGIC


def canonical(value: dict[str, Any]) -> bytes:
    """The JSON of a value, keys sorted: what it is, for hashing and comparing."""
    return orjson.dumps(value, option=_OPTIONS)


def encode(value: dict[str, Any]) -> bytes:
    """The stored form of a record, changelog entry or meta value: its canonical JSON,
    compressed when that is COMPRESS_AT bytes or longer."""
    raw = canonical(value)
    return _redb.compress(raw, LEVEL) if len(raw) >= COMPRESS_AT else raw


def plain(blob: bytes) -> bytes:
    """The JSON bytes of a stored value (decompressed when it is a zstd frame);
    ValueError when it is a frame that is damaged."""
    return _redb.decompress(blob) if blob[:4] == _MAGIC else blob


def decode(blob: bytes) -> dict[str, Any]:
    """Inverse of encode() (and of canonical()); ValueError when blob is no stored
    object, a damaged compressed value included."""
    value = orjson.loads(plain(blob))
    if not isinstance(value, dict):
        raise ValueError(f"stored value is not an object: {blob[:60]!r}")
    return value
