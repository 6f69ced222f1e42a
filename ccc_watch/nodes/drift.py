"""Compare this node's manifest with another node's: which paths one lacks, which
differ, which were renamed, which are sync-conflict copies, and whether the other node
is stale. DuckDB joins the two Arrow tables by key (in memory); nothing is changed.

A finding's kind (each also a DRIFT line, see README "Drift reports"):
- missing-here: the other node has the key, this one does not;
- missing-there: this node has it, the other does not;
- differs: both have it with other content (blake3); `newer` names the side with the
  newer mtime, `authoritative` the side headquarters_wins makes authoritative
  (headquarters' copy; None between two outposts);
- renamed: one file under two paths (the same id, or else the same content on a path
  each side lacks);
- conflict: a sync engine's conflict copy on either side (`side`: here, there, both);
- stale: the other node's manifest is older than stale_after: reported once, instead of
  every difference.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from typing import Any

import duckdb
import pyarrow as pa

from ccc_watch.log.drift import Drift, DriftKind, conflict_original
from ccc_watch.nodes.carrier import Manifest

HQ = "headquarters"


@dataclass(frozen=True)
class Finding:
    """One difference between this node (here) and another (there)."""

    kind: str  # missing-here, missing-there, differs, renamed, conflict, stale
    node: str  # the other node
    key: str  # the path (or "secret:<digest>"); for a rename, the path here
    other: str | None = None  # for a rename: the path there
    newer: str | None = None  # differs: "here", "there" or None (same mtime)
    authoritative: str | None = None  # differs: the node whose copy headquarters_wins keeps
    side: str | None = None  # conflict: here, there or both
    age: float | None = None  # stale: the manifest's age in seconds

    def drift(self) -> Drift:
        """The DRIFT line of this finding."""
        kind: DriftKind = f"node-{self.kind}"  # type: ignore[assignment]
        detail = {k: v for k, v in self.as_dict().items() if k not in ("kind", "key")}
        # A path in the detail (a rename's other name) is quoted as JSON when it holds a
        # space, '=' or a quote, so the detail splits the same way whatever the names.
        return Drift(kind, self.key, " ".join(f"{k}={_value(v)}" for k, v in detail.items()))

    def as_dict(self) -> dict[str, Any]:
        """The finding's fields that are set."""
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {k: v for k, v in values if v is not None}


def _value(v: object) -> str:
    text = str(v)
    if text and not any(c in text for c in ' ="\\') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


# The rows where two manifests (tables h and t) differ; PostgresCarrier.diff() gives the
# same table from the server (tests/test_postgres.py holds the two together).
DIFF_SQL = """
SELECT coalesce(h.key, t.key) AS key,
       h.key IS NOT NULL AS here, t.key IS NOT NULL AS there,
       h.path AS hpath, t.path AS tpath, h.id AS hid, t.id AS tid,
       h.blake3 AS hb, t.blake3 AS tb, h.mtime_ns AS hm, t.mtime_ns AS tm
FROM h FULL OUTER JOIN t ON h.key = t.key
WHERE h.key IS NULL OR t.key IS NULL OR h.blake3 IS DISTINCT FROM t.blake3
ORDER BY key
"""


def compare(
    here: Manifest, there: Manifest, *, stale_after: float, now: float | None = None
) -> list[Finding]:
    """The findings of here against there, sorted by kind then key."""
    other = there.header.node
    age = (time.time() if now is None else now) - there.header.written_at
    if age > stale_after:
        return [Finding("stale", other, other, age=round(age, 1))]
    authoritative = (
        there.header.node
        if there.header.role == HQ and here.header.role != HQ
        else here.header.node
        if here.header.role == HQ and there.header.role != HQ
        else None
    )
    con = duckdb.connect(":memory:")
    try:
        con.register("h", here.rows)
        con.register("t", there.rows)
        diff: pa.Table = con.sql(DIFF_SQL).to_arrow_table()
    finally:
        con.close()
    findings: list[Finding] = []
    only_here: dict[str, dict[str, Any]] = {}
    only_there: dict[str, dict[str, Any]] = {}
    for row in diff.to_pylist():
        key = row["key"]
        conflict_here = row["here"] and conflict_original(key) is not None
        conflict_there = row["there"] and conflict_original(key) is not None
        if conflict_here or conflict_there:
            side = (
                "both" if conflict_here and conflict_there else "here" if conflict_here else "there"
            )
            findings.append(Finding("conflict", other, key, side=side))
        elif row["here"] and row["there"]:
            hm, tm = row["hm"] or 0, row["tm"] or 0
            newer = "here" if hm > tm else "there" if tm > hm else None
            findings.append(
                Finding("differs", other, key, newer=newer, authoritative=authoritative)
            )
        elif row["here"]:
            only_here[key] = row
        else:
            only_there[key] = row
    # Renames: the same id on a key each side lacks; else the same content, when one
    # file on each side has it (several equal files are no evidence of a rename).
    renamed: list[tuple[str, str]] = []
    for h_col, t_col in (("hid", "tid"), ("hb", "tb")):
        by_here: dict[str, list[str]] = {}
        for k, r in only_here.items():
            if r[h_col] is not None:
                by_here.setdefault(r[h_col], []).append(k)
        by_there: dict[str, list[str]] = {}
        for k, r in only_there.items():
            if r[t_col] is not None:
                by_there.setdefault(r[t_col], []).append(k)
        for value, keys_here in by_here.items():
            keys_there = by_there.get(value, [])
            if len(keys_here) == 1 and len(keys_there) == 1:
                renamed.append((keys_here[0], keys_there[0]))
                del only_here[keys_here[0]]
                del only_there[keys_there[0]]
    findings += [Finding("renamed", other, h, other=t) for h, t in renamed]
    findings += [Finding("missing-there", other, k) for k in only_here]
    findings += [Finding("missing-here", other, k) for k in only_there]
    order = ("stale", "missing-here", "missing-there", "differs", "renamed", "conflict")
    findings.sort(key=lambda f: (order.index(f.kind), f.key))
    return findings


def missing_paths(findings: list[Finding]) -> list[str]:
    """For outpost recovery: the paths this node lacks, or holds stale (the other side's
    copy is newer or authoritative), or holds under another name; plain paths only
    (SECRET digests are no paths), sorted, once each."""
    out = set()
    for f in findings:
        if f.key.startswith("secret:"):
            continue
        if f.kind == "missing-here":
            out.add(f.key)
        elif f.kind == "renamed" and f.other is not None:
            out.add(f.other)
        elif f.kind == "differs" and (f.newer == "there" or f.authoritative == f.node):
            out.add(f.key)
    return sorted(out)
