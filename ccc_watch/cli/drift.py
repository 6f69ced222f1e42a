"""Compare this node's vault, as its store holds it now, with another node's published
manifest: paths missing here or there,
content that differs (which side is newer by mtime, and which copy headquarters_wins
keeps: headquarters'), renames, sync-conflict copies on either side; a stale node is
reported once. Default: an outpost against headquarters (with none, every other
node), headquarters against every outpost. Each finding is printed and logged as a
DRIFT line. `--missing` prints only the paths this node lacks or holds stale, one per
line, for a sync tool's file list.
This node's side is a manifest built fresh from its store (from the mirror when that is
at the store's head), never its published one; with the database carrier, when this
node's published manifest is its store's head, the server compares the two nodes by
one SQL query instead (`--json` says where each node was compared: "here" or "server").
Exit 0 when the nodes agree, 1 when they differ (or a node is stale). Read-only: it
never changes a file."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from loguru import logger

from ccc_watch.cli._common import add_json, read_store
from ccc_watch.config import Config
from ccc_watch.errors import CccWatchError
from ccc_watch.log.safe import shown

if TYPE_CHECKING:
    from ccc_watch.nodes.carrier import ManifestHeader

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


def _others(
    args: argparse.Namespace, cfg: Config, me: str, headers: dict[str, tuple[ManifestHeader, Any]]
) -> list[str]:
    """The nodes to compare with: --against's, else an outpost's headquarters (with
    none, every other node), else headquarters' outposts."""
    from ccc_watch.nodes.drift import HQ

    if args.against is not None:
        if args.against == me:
            raise CccWatchError(f"drift: --against {shown(me)} is this node; name another")
        if args.against not in headers:
            raise CccWatchError(
                f"drift: node {shown(args.against)} has published no readable manifest "
                "(`ccc-watch nodes` lists those that have)"
            )
        return [args.against]
    if cfg.role == HQ:
        others = sorted(n for n, (h, _) in headers.items() if h.role != HQ)
        if not others:
            raise CccWatchError("drift: no outpost has published a manifest yet")
        return others
    others = sorted(n for n, (h, _) in headers.items() if h.role == HQ) or sorted(headers)
    if not others:
        raise CccWatchError(
            "drift: no other node has published a readable manifest yet "
            "(`ccc-watch nodes` lists those that have)"
        )
    return others


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Compare and print; exit 0 when no differences, 1 when some."""
    from ccc_watch.nodes.carrier import Carrier, Manifest
    from ccc_watch.nodes.carriers import require_carriers
    from ccc_watch.nodes.drift import Finding, compare, missing_paths
    from ccc_watch.nodes.identity import node_name
    from ccc_watch.nodes.manifest import build_manifest

    me = node_name(cfg)
    targets = require_carriers(cfg)
    headers: dict[str, tuple[ManifestHeader, Carrier]] = {}
    mine: dict[int, ManifestHeader] = {}  # this node's published header, per carrier
    for carrier in targets:
        for h in carrier.headers():
            if h.node == me:
                mine[id(carrier)] = h
            elif h.node not in headers or h.written_at > headers[h.node][0].written_at:
                headers[h.node] = (h, carrier)
    others = _others(args, cfg, me, headers)
    findings: list[Finding] = []
    compared: list[str] = []
    where: dict[str, str] = {}
    with read_store(cfg) as store:
        with store.snapshot() as snap:
            head = snap.chain_head()
        here: Manifest | None = None
        for node in others:
            carrier = headers[node][1]
            published = mine.get(id(carrier))
            on_server = getattr(carrier, "drift", None)
            if (
                on_server is not None
                and published is not None
                and (published.head_seq, published.head_hash) == head
            ):
                # This node's published rows are its store as it is now: the server
                # compares them with the other node's in one query.
                found = on_server(me, node, stale_after=cfg.stale_after)
                findings += [Finding(**f) for f in found]
                compared.append(node)
                where[node] = "server"
                continue
            there: Manifest | None = carrier.load(node)
            if there is None:  # its rows are bad (logged): the other nodes are compared
                if args.against is not None or len(others) == 1:
                    raise CccWatchError(
                        f"drift: the manifest of node {shown(node)} cannot be read (see the "
                        "line above); it is replaced at its next publication"
                    )
                continue
            if here is None:
                here = build_manifest(cfg, store)
            compared.append(node)
            where[node] = "here"
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
        print(json.dumps({"node": me, "against": others, "compared_on": where,
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
