"""Compare record serializations for the store's values: json, orjson, msgpack.

Run: python bench/serialization.py
Prints encode and decode throughput and the encoded size of a typical note record.
The store uses the winner (see ccc_watch/codec.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import msgpack
import orjson


def sample_record(i: int) -> dict[str, Any]:
    """A note record shaped like what the indexer produces, with a 2 KB body."""
    return {
        "path": f"Projects/Area {i % 40}/Note {i}.md",
        "id": f"0b9c6f1e-4a1d-5c7e-9f00-{i:012d}",
        "record_type": "Metadata",
        "size": 2300 + i % 97,
        "mtime_ns": 1_760_000_000_000_000_000 + i,
        "blake3": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        "frontmatter": {
            "title": f"Note {i}",
            "tags": ["project", "area/sub"],
            "status": "open",
            "created": "2026-01-02",
            "rating": 4,
            "done": False,
        },
        "frontmatter_status": "valid",
        "frontmatter_error": None,
        "classification": "INTERNAL",
        "title": f"Note {i}",
        "aliases": ["N" + str(i)],
        "tags": ["area/sub", "project", "todo"],
        "links": [
            {
                "target": f"Note {j}",
                "kind": "wikilink",
                "alias": None,
                "heading": None,
                "block": None,
            }
            for j in range(i, i + 8)
        ],
        "tasks": [{"line": 10 + k, "done": k % 2 == 0, "text": f"do thing {k}"} for k in range(4)],
        "word_count": 350,
        "body": ("Lorem ipsum dolor sit amet, [[Note 1]] consectetur #todo adipiscing. " * 30),
        "indexed_at": 1_760_000_000.123,
    }


def measure(
    name: str,
    enc: Callable[[Any], bytes],
    dec: Callable[[bytes], Any],
    records: list[dict[str, Any]],
) -> tuple[str, float, float, float]:
    t0 = time.perf_counter()
    blobs = [enc(r) for r in records]
    t1 = time.perf_counter()
    for b in blobs:
        dec(b)
    t2 = time.perf_counter()
    n = len(records)
    return name, n / (t1 - t0), n / (t2 - t1), sum(map(len, blobs)) / n


def main() -> None:
    records = [sample_record(i) for i in range(20_000)]
    rows = [
        measure("json (stdlib)", lambda r: json.dumps(r).encode(), json.loads, records),
        measure("orjson", orjson.dumps, orjson.loads, records),
        measure("msgpack", msgpack.packb, msgpack.unpackb, records),
    ]
    print(f"{'codec':<15} {'encode rec/s':>14} {'decode rec/s':>14} {'bytes/rec':>10}")
    for name, enc, dec, size in rows:
        print(f"{name:<15} {enc:>14,.0f} {dec:>14,.0f} {size:>10,.0f}")


if __name__ == "__main__":
    main()
