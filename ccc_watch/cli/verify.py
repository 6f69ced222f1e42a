"""Compare every file (hashed in full) with the store, and the store with the mirror.
With --deep, also every parsed field against a fresh index of each file, the ids, the
walk against an independent os.walk, and every mirror row against the store. Exit 0
when all agree, 1 when not. Read-only: works while the daemon runs."""

from __future__ import annotations

import argparse
import json

from ccc_watch.cli._common import add_json, mirror_of, say
from ccc_watch.config import Config
from ccc_watch.index.policy import IndexPolicy, key_source
from ccc_watch.log.safe import json_shown
from ccc_watch.vault.ignore import IgnoreRules

HELP = "compare files, store and mirror in full; exit 1 on a difference"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--json and --deep."""
    add_json(parser)
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also re-index every file and compare every field, id and mirror row",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print each difference and a verdict; exit 1 when there is any."""
    from ccc_watch.changes.verify import verify

    vault = cfg.require_vault().resolve()
    mirror = mirror_of(cfg)
    diffs = verify(
        vault,
        cfg.resolved_data_dir(),
        IgnoreRules.from_settings(vault, cfg),
        backend=cfg.backend,
        mirror=mirror if mirror.path.exists() else None,
        deep=args.deep,
        policy=IndexPolicy.from_settings(cfg),
        seal_key=key_source(cfg),
    )
    if args.json:
        print(json_shown(json.dumps([d.as_dict() for d in diffs], indent=2, ensure_ascii=False)))
    else:
        for d in diffs:
            print(d.line())
        say(args, "verify: clean" if not diffs else f"verify: {len(diffs)} differences")
    return 1 if diffs else 0
