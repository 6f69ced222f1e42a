"""Where a rebuild's time goes, phase by phase, in one process.

    python bench/rebuild_phases.py VAULT [VAULT ...]

Each phase runs on its own over every file of the vault, in batches of 1,000 (memory
stays bounded), in this one process, so the figures add up CPU time, not wall time
(`rebuild` spreads the parsing over worker processes; see bench/rebuild_bench.py for
the whole command):

- walk: the walk of the vault (ignore rules, stat);
- read + hash: read_file (beneath the vault, stat before and after) with its blake3;
  "hash" alone is blake3 over the same bytes in memory;
- frontmatter: splitting the block off and parsing its YAML;
- body scan: links, tags, tasks, fields, headings (the compiled scanner, and the
  Python reference beside it when both exist);
- record, rest: what indexing a file costs beyond the above (classification, ids,
  privacy policy, the record's dict);
- serialization: codec.encode of each record (JSON, compressed: what the store writes);
- mirror rows: the mirror's Arrow rows of the batch;
- transfer: pickling what a worker sends the main process (the encoded records, their
  path, id and blake3, the rows) and unpickling it;
- store commit: Store.apply of the encoded records into a fresh store (a transaction
  per batch, changelog entries and their chain included);
- mirror load: inserting the rows into a fresh DuckDB file (and its checkpoint).
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import blake3
import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ccc_watch.index import body as body_scan  # noqa: E402
from ccc_watch.index.frontmatter import parse_yaml, split_frontmatter  # noqa: E402
from ccc_watch.index.indexer import Indexer  # noqa: E402
from ccc_watch.index.pool import chunks  # noqa: E402
from ccc_watch.mirror.rows import Rows  # noqa: E402
from ccc_watch.mirror.schema import TABLES  # noqa: E402
from ccc_watch.store import Upsert, codec, open_store  # noqa: E402
from ccc_watch.vault.ignore import IgnoreRules  # noqa: E402
from ccc_watch.vault.read import read_file  # noqa: E402
from ccc_watch.vault.walk import walk  # noqa: E402

BATCH = 1000


def profile(vault: Path, work: Path) -> tuple[int, int, dict[str, float]]:
    """(files, bytes, seconds per phase) for one vault."""
    spent: dict[str, float] = defaultdict(float)

    def timed(phase: str, started: float) -> float:
        now = time.perf_counter()
        spent[phase] += now - started
        return now

    t = time.perf_counter()
    files = walk(vault, IgnoreRules.load(vault)).files
    timed("walk", t)
    indexer = Indexer(vault, "00000000-0000-4000-8000-000000000000")
    store = open_store(work / "store", vault_root=vault)
    con = duckdb.connect(str(work / "mirror.duckdb"))
    for table in TABLES:
        con.execute(table.ddl())
    compiled = getattr(body_scan, "scan_body", None)
    reference = getattr(body_scan, "scan_body_reference", None)
    size = 0
    for batch in chunks(files, BATCH):
        texts = []
        t = time.perf_counter()
        contents = [read_file(vault, f.path, 2**31) for f in batch]
        t = timed("read + hash", t)
        for c in contents:
            size += len(c.data or b"")
            blake3.blake3(c.data or b"").hexdigest()
        t = timed("  of which hash", t)
        for f, c in zip(batch, contents, strict=True):
            if f.key.endswith(".md") and c.data is not None:
                texts.append(c.data.decode("utf-8", "replace"))
        t = timed("decode", t)
        bodies = []
        for text in texts:
            yaml_text, text_body, line = split_frontmatter(text)
            if yaml_text is not None:
                parse_yaml(yaml_text)
            bodies.append((text_body, line))
        t = timed("frontmatter", t)
        if compiled is not None:
            for text_body, line in bodies:
                compiled(text_body, line)
            t = timed("body scan", t)
        if reference is not None:
            for text_body, line in bodies:
                reference(text_body, line)
            t = timed("body scan (Python reference)", t)
        results = [indexer.index_content(f.key, c) for f, c in zip(batch, contents, strict=True)]
        t = timed("index, all in", t)
        records = [r.record for r in results if r.record is not None]
        blobs = [codec.encode(r) for r in records]
        t = timed("serialization", t)
        rows = Rows.of(records, indexer.policy)
        t = timed("mirror rows", t)
        sent = (blobs, [{k: r[k] for k in ("path", "id", "blake3")} for r in records], rows)
        blobs, light, rows = pickle.loads(pickle.dumps(sent, protocol=pickle.HIGHEST_PROTOCOL))
        t = timed("transfer", t)
        store.apply(
            Upsert(rec, cause="rebuild", encoded=blob)
            for rec, blob in zip(light, blobs, strict=True)
        )
        t = timed("store commit", t)
        for name, arrow in rows.tables():
            if arrow.num_rows:
                con.register("incoming", arrow)
                con.execute(f"INSERT INTO {name} SELECT * FROM incoming")
                con.unregister("incoming")
        t = timed("mirror load", t)
    con.execute("CHECKPOINT")
    con.close()
    timed("mirror load", t)
    store.close()
    scan = spent.get("body scan", spent.get("body scan (Python reference)", 0.0))
    parts = spent["decode"] + spent["frontmatter"] + scan  # of what was read above
    spent["record, rest"] = max(0.0, spent.pop("index, all in") - parts)
    return len(files), size, dict(spent)


ORDER = (
    "walk", "read + hash", "  of which hash", "decode", "frontmatter", "body scan",
    "body scan (Python reference)", "record, rest", "serialization", "mirror rows",
    "transfer", "store commit", "mirror load",
)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("vaults", nargs="+", type=Path)
    args = ap.parse_args()
    print(f"command:  {' '.join(sys.argv)}")
    print(f"python:   {platform.python_version()}  cpus: {os.cpu_count()}")
    for vault in args.vaults:
        with tempfile.TemporaryDirectory(prefix="phases-") as tmp:
            n, size, spent = profile(vault.resolve(), Path(tmp))
        total = sum(v for k, v in spent.items() if not k.startswith(" ") and "reference" not in k)
        print()
        print(f"{vault}: {n:,} files, {size / 1e6:.1f} MB read")
        print(f"{'phase':<30} {'seconds':>8} {'us/file':>8} {'share':>6}")
        for phase in ORDER:
            if phase in spent:
                s = spent[phase]
                print(f"{phase:<30} {s:>8.2f} {s / n * 1e6:>8.1f} {s / total:>6.0%}")
        print(f"{'total (one process)':<30} {total:>8.2f} {total / n * 1e6:>8.1f}")


if __name__ == "__main__":
    main()
