"""Print the record of one vault path as JSON (read-only). PATH is relative to the vault,
or an absolute path inside it, or a note's name as a link gives it (`Welcome` finds
`Notes/Welcome.md` when only one note has that name). No record: exit 1, with the
nearest paths; a name several notes have: exit 1, naming them. With --reveal, a CONFIDENTIAL
note's sealed text (confidential_text = "seal") is opened with the vault's key and
shown in place of `sealed`: body, title, aliases, tags, links, frontmatter, task text.
No key: exit 78; a key other than the one it was sealed with: exit 1; sealed text that
does not open (altered or damaged): exit 65. Either way one line, and no text."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ccc_watch.cli._common import read_store
from ccc_watch.config import Config
from ccc_watch.errors import CccWatchError
from ccc_watch.index.policy import FACTS_ONLY, PRIVATE, opened
from ccc_watch.index.seal import SEALED, Sealer
from ccc_watch.keys import key_for
from ccc_watch.log.safe import json_shown, shown
from ccc_watch.store import Record, Store
from ccc_watch.vault.names import NEAR_LIMIT, link_matches, near_matches, relative_to_vault
from ccc_watch.vault.paths import vault_key

HELP = "print one record as JSON (--reveal: with its sealed text opened)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """PATH and --reveal."""
    parser.add_argument(
        "path",
        help="the note's vault-relative path, an absolute path inside the vault, or its "
        "name as a link gives it (no .md needed)",
    )
    parser.add_argument(
        "--reveal",
        action="store_true",
        help="open a CONFIDENTIAL note's sealed text with the vault's key and show it",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Print the record; an error when the path has none."""
    key = args.path
    if os.path.isabs(key):
        key = relative_to_vault(key, cfg.require_vault())
    with read_store(cfg) as store:
        record = find(store, key)
        vault_id = str(store.meta.get("vault_id", ""))
    path = str(record["path"])
    if args.reveal:
        if SEALED in record:
            # All of the text or none of it: a key that does not open it raises.
            record = opened(record, Sealer(key_for(cfg, vault_id)), shown(path))
        elif record.get("classification") == FACTS_ONLY:
            print(f"note: {shown(path)} is SECRET: its record keeps no text, sealed or "
                  "not", file=sys.stderr)  # fmt: skip
        elif record.get("classification") in PRIVATE:
            print(f"note: {shown(path)} has no sealed text (indexed with "
                  "confidential_text = drop): its text is in the vault only",
                  file=sys.stderr)  # fmt: skip
    print(json_shown(json.dumps(record, indent=2, ensure_ascii=False)))
    return 0


def find(store: Store, key: str) -> Record:
    """The record at key, else the one note a link to key means; CccWatchError when
    there is none (naming the nearest paths) or several (naming them)."""
    key = vault_key(key)  # '/' separators, NFC: as the store's paths are
    record = store.get(key)
    if record is not None:
        return record
    with store.snapshot() as snap:
        paths = [str(r["path"]) for r in snap.records(fields=())]
    matches = link_matches(key, paths)
    if len(matches) == 1:
        found = store.get(matches[0])
        if found is not None:  # else it went away just now: not found after all
            return found
    if len(matches) > 1:
        raise CccWatchError(
            f"{shown(key)} names {len(matches)} records: {_listed(matches)}; "
            "give one of these paths"
        )
    near = near_matches(key, paths)
    hint = f"; did you mean: {_listed(near)}" if near else ""
    raise CccWatchError(f"no record at {shown(key)}{hint}")


def _listed(paths: list[str]) -> str:
    more = len(paths) - NEAR_LIMIT
    text = ", ".join(shown(p) for p in paths[:NEAR_LIMIT])
    return f"{text} and {more} more" if more > 0 else text
