"""The line the daemon logs (INFO) for each batch of changes it applied to the store,
so that "did it pick up my edit?" has an answer in the log:

    APPLIED <n> change[s] (<cause>): upsert Daily/x.md, move a.md -> b.md, delete c.md and 2 more

At most NAMED changes are named. Paths are written as in drift lines (log.drift): bare,
or a JSON string when they hold a space, a quote, '=', a backslash or anything not
printable; so the line is one line of printable text whatever the names, `, ` and
` -> ` only ever separate, and `ccc-watch log --ops` finds exactly these lines. A
path is a path whatever the note's level, as in drift lines (SECRET ones too): the
line carries no text of a note.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from ccc_watch.log.drift import field_text

NAMED = 5  # changes named in one line; the rest are counted

_FIELD = r'(?:"(?:[^"\\]|\\.)*"|[^\s"]+)'
# The message of an APPLIED entry, as documented in the README ("Logs").
APPLIED_MESSAGE = re.compile(
    r"APPLIED (?P<count>\d+) changes? \((?P<cause>[a-z-]+(?:, [a-z-]+)*)\): "
    rf"(?P<changes>[a-z]+ {_FIELD}(?: -> {_FIELD})?(?:, [a-z]+ {_FIELD}(?: -> {_FIELD})?)*)"
    r"(?: and (?P<more>\d+) more)?$"
)


class AppliedChange(Protocol):
    """What the line needs of a change (the store's changelog entry, store.Change)."""

    @property
    def op(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def prev_path(self) -> str | None: ...
    @property
    def cause(self) -> str: ...


def applied_line(changes: Sequence[AppliedChange]) -> str:
    """The APPLIED line for a batch of changes (not empty), in the order applied."""
    named = []
    for c in changes[:NAMED]:
        if c.op == "move" and c.prev_path is not None:
            named.append(f"move {field_text(c.prev_path)} -> {field_text(c.path)}")
        else:
            named.append(f"{c.op} {field_text(c.path)}")
    more = len(changes) - NAMED
    tail = f" and {more} more" if more > 0 else ""
    n = len(changes)
    why = ", ".join(sorted({c.cause for c in changes})) or "unknown"
    return f"APPLIED {n} change{'' if n == 1 else 's'} ({why}): {', '.join(named)}{tail}"
