"""Print which files existed with which blake3, now (from the store) or at a past
moment (--as-of, ISO 8601 or an age such as 7d; from the history), one `BLAKE3  PATH`
line per file as `b3sum` prints them, in path order (`show`, the default; read-only).
`publish` writes this node's manifest to every configured carrier: the folder
(manifest_dir) and the database (hq_url); see "Headquarters and outposts"."""

from __future__ import annotations

import argparse
import json

from ccc_watch.cli._common import add_json, read_store
from ccc_watch.config import Config
from ccc_watch.errors import UsageError
from ccc_watch.log.safe import json_shown, shown

HELP = "print each file's blake3, now or --as-of a past time; or publish this node's manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ACTION (show, publish), --as-of and --json."""
    parser.add_argument(
        "action", nargs="?", choices=("show", "publish"), default="show", help="show or publish"
    )
    parser.add_argument("--as-of", metavar="TIME", help="as the history says it was at TIME")
    add_json(parser)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the manifest, or publish it; exit 0."""
    if args.action == "publish":
        return _publish(args, cfg)
    from ccc_watch.history.queries import parse_time, state_as_of

    with read_store(cfg) as store, store.snapshot() as snap:
        if args.as_of is None:
            files = {
                r["path"]: {"id": r["id"], "blake3": r.get("blake3")}
                for r in snap.records(("blake3",))
            }
        else:
            files = state_as_of(snap, parse_time(args.as_of))
    if args.json:
        rows = [{"path": p, **files[p]} for p in sorted(files)]
        print(json_shown(json.dumps(rows, indent=2, ensure_ascii=False)))
    else:
        for path in sorted(files):
            print(f"{files[path].get('blake3') or '-'}  {shown(path)}")
    return 0


def _publish(args: argparse.Namespace, cfg: Config) -> int:
    from ccc_watch.nodes.carriers import require_carriers
    from ccc_watch.nodes.manifest import build_manifest

    if args.as_of is not None:
        raise UsageError("manifest publish: --as-of applies to show only")
    targets = require_carriers(cfg)
    with read_store(cfg) as store:
        manifest = build_manifest(cfg, store)
    reports = [c.publish(manifest) for c in targets]
    if args.json:
        out = [
            {"node": r.node, "where": r.where, "rows": r.rows, "changed": r.changed,
             "seconds": round(r.seconds, 3), "head_seq": manifest.header.head_seq}
            for r in reports
        ]  # fmt: skip
        print(json.dumps(out, indent=2))
    else:
        for r in reports:
            print(
                f"published {r.rows} rows ({r.changed} changed) of node {r.node} to "
                f"{shown(r.where)} in {r.seconds:.3f} s"
            )
    return 0
