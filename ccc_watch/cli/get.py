"""Print the record of one vault path as JSON (read-only). With --reveal, a CONFIDENTIAL
note's sealed text (confidential_text = "seal") is opened with the vault's key and
shown in place of `sealed`: body, title, aliases, tags, links, frontmatter, task text.
No key: exit 78; a key other than the one it was sealed with: exit 1; sealed text that
does not open (altered or damaged): exit 65. Either way one line, and no text."""

from __future__ import annotations

import argparse
import json
import sys

from ccc_watch.cli._common import read_store
from ccc_watch.config import Config
from ccc_watch.errors import CccWatchError
from ccc_watch.index.policy import FACTS_ONLY, PRIVATE, opened
from ccc_watch.index.seal import SEALED, Sealer
from ccc_watch.keys import key_for
from ccc_watch.log.safe import json_shown, shown

HELP = "print one record as JSON (--reveal: with its sealed text opened)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """PATH and --reveal."""
    parser.add_argument("path", help="the note's vault-relative path")
    parser.add_argument(
        "--reveal",
        action="store_true",
        help="open a CONFIDENTIAL note's sealed text with the vault's key and show it",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the record; an error when the path has none."""
    with read_store(cfg) as store:
        record = store.get(args.path)
        vault_id = str(store.meta.get("vault_id", ""))
    if record is None:
        raise CccWatchError(f"no record for {shown(args.path)}")
    if args.reveal:
        if SEALED in record:
            # All of the text or none of it: a key that does not open it raises.
            record = opened(record, Sealer(key_for(cfg, vault_id)), shown(args.path))
        elif record.get("classification") == FACTS_ONLY:
            print(f"note: {shown(args.path)} is SECRET: its record keeps no text, sealed or "
                  "not", file=sys.stderr)  # fmt: skip
        elif record.get("classification") in PRIVATE:
            print(f"note: {shown(args.path)} has no sealed text (indexed with "
                  "confidential_text = drop): its text is in the vault only",
                  file=sys.stderr)  # fmt: skip
    print(json_shown(json.dumps(record, indent=2, ensure_ascii=False)))
    return 0
