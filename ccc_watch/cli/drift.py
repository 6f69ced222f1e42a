"""Compare this node's vault, as its store holds it now (a manifest built fresh, not the
published file), with another node's published manifest: paths missing here or there,
content that differs (which side is newer by mtime, and which copy headquarters_wins
keeps: headquarters'), renames, sync-conflict copies on either side; a stale node is
reported once. Default: an outpost against headquarters (with none, every other
node), headquarters against every outpost. Each finding is printed and logged as a
DRIFT line. `--missing` prints only the paths this node lacks or holds stale, one per
line, for a sync tool's file list.
Exit 0 when the nodes agree, 1 when they differ (or a node is stale). Read-only: it
never changes a file."""

from __future__ import annotations

import argparse
import json

from loguru import logger

from ccc_watch.cli._common import add_json, read_store
from ccc_watch.config import Config
from ccc_watch.errors import CccWatchError
from ccc_watch.log.safe import shown

HELP = "compare this node's files with another node's manifest (exit 1 when they differ)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--against NODE, --missing, --json."""
    parser.add_argument("--against", metavar="NODE", help="the node to compare with")
    parser.add_argument(
        "--missing",
        action="store_true",
        help="print only the paths this node lacks or holds stale, one per line",
    )
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Compare and print; exit 0 when no differences, 1 when some."""
    from ccc_watch.nodes.carrier import Carrier, Manifest, ManifestHeader
    from ccc_watch.nodes.carriers import require_carriers
    from ccc_watch.nodes.drift import HQ, compare, missing_paths
    from ccc_watch.nodes.identity import node_name
    from ccc_watch.nodes.manifest import build_manifest

    me = node_name(cfg)
    targets = require_carriers(cfg)
    headers: dict[str, tuple[ManifestHeader, Carrier]] = {}
    for carrier in targets:
        for h in carrier.headers():
            if h.node != me and (
                h.node not in headers or h.written_at > headers[h.node][0].written_at
            ):
                headers[h.node] = (h, carrier)
    if args.against is not None:
        if args.against == me:
            raise CccWatchError(f"drift: --against {shown(me)} is this node; name another")
        if args.against not in headers:
            raise CccWatchError(
                f"drift: node {shown(args.against)} has published no readable manifest "
                "(`ccc-watch nodes` lists those that have)"
            )
        others = [args.against]
    elif cfg.role == HQ:
        others = sorted(n for n, (h, _) in headers.items() if h.role != HQ)
        if not others:
            raise CccWatchError("drift: no outpost has published a manifest yet")
    else:  # an outpost: against headquarters, or with none every other node
        others = sorted(n for n, (h, _) in headers.items() if h.role == HQ) or sorted(headers)
        if not others:
            raise CccWatchError(
                "drift: no other node has published a readable manifest yet "
                "(`ccc-watch nodes` lists those that have)"
            )
    with read_store(cfg) as store:
        here = build_manifest(cfg, store)
    findings = []
    compared = []
    for node in others:
        there: Manifest | None = headers[node][1].load(node)
        if there is None:  # its rows are bad (logged): the other nodes are still compared
            if args.against is not None or len(others) == 1:
                raise CccWatchError(
                    f"drift: the manifest of node {shown(node)} cannot be read (see the "
                    "line above); it is replaced at its next publication"
                )
            continue
        compared.append(node)
        findings += compare(here, there, stale_after=cfg.stale_after)
    if not compared:
        raise CccWatchError(
            "drift: no manifest of " + ", ".join(map(shown, others)) + " can be read (see the "
            "lines above)"
        )
    others = compared
    for f in findings:
        logger.warning(f.drift().line())
    if args.missing:
        for path in missing_paths(findings):
            print(shown(path))
    elif args.json:
        print(json.dumps({"node": me, "against": others,
                          "findings": [f.as_dict() for f in findings]}, indent=2))  # fmt: skip
    else:
        for f in findings:
            extra = ""
            if f.kind == "renamed":
                extra = f" -> there {shown(f.other or '')}"
            elif f.kind == "differs":
                extra = f"  newer: {f.newer or 'same mtime'}"
                if f.authoritative:
                    extra += f"; headquarters_wins: {shown(f.authoritative)}'s copy"
            elif f.kind == "conflict":
                extra = f"  on {f.side}"
            elif f.kind == "stale":
                extra = f"  manifest {f.age:.0f} s old (stale_after {cfg.stale_after:g} s)"
            print(f"{f.kind:<14} {shown(f.node):<16} {shown(f.key)}{extra}")
        if not findings:
            print(f"{me} agrees with {', '.join(others)}")
    return 1 if findings else 0
