"""Drift findings: one stable, greppable log line each.

    DRIFT kind=<kind> path=<path> detail=<detail>

`path` and `detail` are JSON strings when they contain a space, a quote, '=', a
backslash or a character that is not printable (so a line always splits the same
way), bare otherwise. In a JSON string every character that is not printable is a
\\uXXXX escape (C0 and C1 controls, line separators, bidirectional overrides; a byte
that was not UTF-8 is its surrogate escape), so json.loads gives the value back and
the line stays one line of printable text.
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
    # Between nodes (`ccc-watch drift`): this node against another one's manifest.
    "node-missing-here",
    "node-missing-there",
    "node-differs",
    "node-renamed",
    "node-conflict",
    "node-stale",
]

_BARE = re.compile(r"^[^\s\"=\\\x00-\x1f\x7f]+$")

# Sync tools' conflict copies: (pattern on the file name, whether case is ignored); the
# stem and ext groups make the name of the note it shadows. Written in the regular
# expression syntax Python and PostgreSQL share (nodes/postgres.py drops the group names).
CONFLICT_PATTERNS = (
    # Syncthing: n.sync-conflict-20260413-091523-K3X2R2T.md
    (r"^(?P<stem>.*)\.sync-conflict-[0-9]{8}-[0-9]{6}-[A-Z0-9]{7}(?P<ext>\.[^.]*)?$", False),
    # Obsidian Sync: n (Conflicted copy MyMac 202411281430).md
    (r"^(?P<stem>.*) \(Conflicted copy [^)]*\)(?P<ext>\.[^.]*)?$", False),
    # Dropbox: n (Jane's conflicted copy 2024-01-15).md
    (r"^(?P<stem>.*) \([^)]*conflicted copy[^)]*\)(?P<ext>\.[^.]*)?$", True),
)
# DOTALL: a name may hold a newline.
_CONFLICTS = tuple(
    re.compile(p, re.DOTALL | (re.IGNORECASE if icase else 0)) for p, icase in CONFLICT_PATTERNS
)


def field_text(value: str) -> str:
    """value as a field of a log line: bare when it is plain printable text without a
    space, quote, `=` or backslash, else a JSON string of printable text."""
    if _BARE.fullmatch(value) and value.isprintable():
        return value
    text = json.dumps(value, ensure_ascii=False)
    if text.isprintable():
        return text
    # json.dumps of one character, ASCII only: its \uXXXX escape (a pair beyond the BMP).
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


@dataclass(frozen=True)
class Drift:
    """One difference between the vault and the index that events did not report."""

    kind: DriftKind
    path: str
    detail: str = ""

    def line(self) -> str:
        """The log line, in the documented shape."""
        path, detail = field_text(self.path), field_text(self.detail)
        return f"DRIFT kind={self.kind} path={path} detail={detail}"


def conflict_original(key: str) -> str | None:
    """The vault path a sync-conflict copy shadows, or None when key is no conflict copy."""
    folder, _, name = key.rpartition("/")
    for pattern in _CONFLICTS:
        m = pattern.match(name)
        if m:
            original = m.group("stem") + (m.group("ext") or "")
            return f"{folder}/{original}" if folder else original
    return None
