"""The audit chain: every changelog entry carries a hash over the previous entry's hash
and its own content, so an entry edited, deleted or moved in the store file (or in the
mirror's `events`) no longer matches what follows it.

    hash(n) = blake3( hash(n-1) as ASCII hex || the entry's stored JSON without "hash" )

The first entry links to GENESIS (64 zeros), or, once older entries were pruned, to the
anchor the pruning left in the store's meta: the seq and hash of the last entry it
removed. The meta value "chain_tip" repeats the newest entry's seq and hash in the
same transaction, so cutting entries off the end shows too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import blake3

from ccc_watch.store import codec

GENESIS = "0" * 64
ANCHOR = "chain_anchor"  # meta: {"seq", "hash", "ts", "removed"} of the last pruned entry
TIP = "chain_tip"  # meta: {"seq", "hash"} of the newest entry


def link(prev: str, entry: Mapping[str, Any]) -> str:
    """The hash of an entry (its fields; "hash" itself left out) after prev."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return blake3.blake3(prev.encode("ascii") + codec.canonical(body)).hexdigest()


def anchor_of(meta: Mapping[str, Any]) -> tuple[int, str]:
    """(seq, hash) the oldest kept entry links to: the pruning anchor, or (0, GENESIS)."""
    anchor = meta.get(ANCHOR)
    if isinstance(anchor, dict) and isinstance(anchor.get("seq"), int):
        return anchor["seq"], str(anchor.get("hash"))
    return 0, GENESIS
