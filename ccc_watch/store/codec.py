"""How records and changelog entries are stored as bytes.

orjson, chosen by bench/serialization.py: on a typical 3.5 KB note record it encodes
4.5x faster than the standard json module and 1.4x faster than msgpack, decodes 1.8x
faster than msgpack, and the bytes stay JSON that a person can read with any tool.
"""

from __future__ import annotations

from typing import Any

import orjson

# Sorted keys make equal records encode to equal bytes.
_OPTIONS = orjson.OPT_SORT_KEYS


def encode(value: dict[str, Any]) -> bytes:
    """Serialize a record or changelog entry."""
    return orjson.dumps(value, option=_OPTIONS)


def decode(blob: bytes) -> dict[str, Any]:
    """Inverse of encode()."""
    value = orjson.loads(blob)
    if not isinstance(value, dict):
        raise ValueError(f"stored value is not an object: {blob[:60]!r}")
    return value
