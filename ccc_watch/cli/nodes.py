"""List the nodes whose manifests the configured carriers hold (this one too, also
before it has published): role, the manifest's age, its record count, and whether it
is stale (older than stale_after). Read-only."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ccc_watch.cli._common import add_json, human_duration
from ccc_watch.config import Config
from ccc_watch.log.safe import shown

HELP = "list the nodes that published a manifest: role, age, records, stale"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--json."""
    add_json(parser)


def seen(cfg: Config) -> list[dict[str, Any]]:
    """One entry per node, the newest header across the carriers, this node included."""
    from ccc_watch.nodes.carrier import ManifestHeader
    from ccc_watch.nodes.carriers import require_carriers
    from ccc_watch.nodes.identity import node_name

    me = node_name(cfg)
    now = time.time()
    newest: dict[str, ManifestHeader] = {}
    for carrier in require_carriers(cfg):
        for h in carrier.headers():
            if h.node not in newest or h.written_at > newest[h.node].written_at:
                newest[h.node] = h
    out = []
    for node in sorted(set(newest) | {me}):
        got = newest.get(node)
        age = None if got is None else max(0.0, now - got.written_at)
        out.append(
            {
                "node": node,
                "this": node == me,
                "role": cfg.role if got is None else got.role,
                "published": got is not None,
                "age_seconds": None if age is None else round(age, 1),
                "records": None if got is None else got.records,
                "head_seq": None if got is None else got.head_seq,
                "stale": got is not None and age is not None and age > cfg.stale_after,
            }
        )
    return out


def _age(seconds: float | None) -> str:
    return "never published" if seconds is None else f"{human_duration(seconds)} ago"


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the nodes; exit 0."""
    rows = seen(cfg)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'node':<24} {'role':<13} {'age':>16} {'records':>9}  stale")
    for r in rows:
        name = shown(r["node"]) + (" *" if r["this"] else "")
        records = "-" if r["records"] is None else str(r["records"])
        stale = "stale" if r["stale"] else "-"
        print(f"{name:<24} {r['role']:<13} {_age(r['age_seconds']):>16} {records:>9}  {stale}")
    return 0
