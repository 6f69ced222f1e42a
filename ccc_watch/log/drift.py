"""Drift findings: one stable, greppable log line each.

    DRIFT kind=<kind> path=<path> detail=<detail>

`path` and `detail` are JSON strings when they contain a space, a quote, '=' or a
control character (so a line always splits the same way), bare otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

DriftKind = Literal[
    "modified-offline",
    "created-offline",
    "deleted-offline",
    "missed-event",
    "orphan-record",
    "checksum-mismatch",
    "mirror-lag",
    "sync-conflict",
    "classification-unsure",
]

_BARE = re.compile(r"^[^\s\"=\\\x00-\x1f\x7f]+$")

# Sync tools' conflict copies: (pattern on the file name, the name of the note it shadows).
_CONFLICTS = (
    # Syncthing: n.sync-conflict-20260413-091523-K3X2R2T.md
    re.compile(r"^(?P<stem>.*)\.sync-conflict-\d{8}-\d{6}-[A-Z0-9]{7}(?P<ext>\.[^.]*)?$"),
    # Obsidian Sync: n (Conflicted copy MyMac 202411281430).md
    re.compile(r"^(?P<stem>.*) \(Conflicted copy [^)]*\)(?P<ext>\.[^.]*)?$"),
    # Dropbox: n (Jane's conflicted copy 2024-01-15).md
    re.compile(r"^(?P<stem>.*) \([^)]*conflicted copy[^)]*\)(?P<ext>\.[^.]*)?$", re.IGNORECASE),
)


def _field(value: str) -> str:
    return value if _BARE.match(value) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Drift:
    """One difference between the vault and the index that events did not report."""

    kind: DriftKind
    path: str
    detail: str = ""

    def line(self) -> str:
        """The log line, in the documented shape."""
        return f"DRIFT kind={self.kind} path={_field(self.path)} detail={_field(self.detail)}"


def conflict_original(key: str) -> str | None:
    """The vault path a sync-conflict copy shadows, or None when key is no conflict copy."""
    folder, _, name = key.rpartition("/")
    for pattern in _CONFLICTS:
        m = pattern.match(name)
        if m:
            original = m.group("stem") + (m.group("ext") or "")
            return f"{folder}/{original}" if folder else original
    return None
