"""Dataview's vocabulary in a line of a note: inline fields and task metadata.

Follows Dataview's own parser (blacksmithgu/obsidian-dataview,
src/data-import/inline-field.ts and markdown-file.ts) and the Tasks plugin's emoji:

- `[key:: value]` and `(key:: value)` anywhere in a line: the key is what lies between
  the bracket and the first `::` (trimmed, no bracket or parenthesis in it), the value
  runs to the matching closing bracket (nested brackets and `\\` escapes respected).
- `Key:: value` filling a line that has no bracketed field (a task line never gives
  one): the key's leading non-word characters (`**`, `>`, `#`, a list marker) and
  trailing `*`, `~`, backtick are dropped; what is left must be letters, digits, `_`,
  `-`, `/`, spaces or emoji.
- Lines longer than MAX_LINE characters hold no field (Dataview skips them too), the
  bracket search of a line stops after a budget linear in its length, so no line can
  make the scan quadratic, and a note gives at most MAX_FIELDS fields.
- A task's dates: the Tasks plugin's emoji (➕ created, 🛫 start, ⏳/⌛ scheduled,
  📅/📆/🗓 due, ✅ done, each optionally followed by U+FE0F, then an ISO date) and
  Dataview's fields of the same names (`[due:: 2024-05-01]`, `completion` for the
  done date); the emoji wins when a task has both. Priority: 🔺 ⏫ 🔼 🔽 ⏬ (highest to
  lowest) or a `[priority:: ...]` field.
"""

# ruff: noqa: RUF002 (the docstring names the emoji the Tasks plugin writes)
from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

EMOJI = r"\u200d\u2600-\u27bf\U0001f000-\U0001faff"
MAX_LINE = 32768
MAX_FIELDS = 10_000  # per note: the rest of a note past that many gives no field
MAX_KEY = 1024  # a longer full-line key is no field: nobody writes one

# Possessive quantifiers: no backtracking, as Dataview's parser (parsimmon) does none.
_FULL_KEY = re.compile(rf"[^\w]*+([\w\s/\-{EMOJI}]++)[_*~`]*+")
_ORDERED = re.compile(r"\d{1,9}[.)][ \t]+")
_WRAPPER_CHARS = re.compile(r"[\[\]()]")
# A run of backslashes and the character after it, or a bracket of the kind looked for.
_CLOSERS = {
    "[": (re.compile(r"\\+[^\\]?|[\[\]]"), "]"),
    "(": (re.compile(r"\\+[^\\]?|[()]"), ")"),
}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TASK_DATES = (
    ("created", re.compile("\u2795\ufe0f?\\s*(\\d{4}-\\d{2}-\\d{2})")),
    ("start", re.compile("\U0001f6eb\ufe0f?\\s*(\\d{4}-\\d{2}-\\d{2})")),
    ("scheduled", re.compile("[\u23f3\u231b]\ufe0f?\\s*(\\d{4}-\\d{2}-\\d{2})")),
    ("due", re.compile("[\U0001f4c5\U0001f4c6\U0001f5d3]\ufe0f?\\s*(\\d{4}-\\d{2}-\\d{2})")),
    ("completion", re.compile("\u2705\ufe0f?\\s*(\\d{4}-\\d{2}-\\d{2})")),
)
_TASK_EMOJI = frozenset("\u2795\U0001f6eb\u23f3\u231b\U0001f4c5\U0001f4c6\U0001f5d3\u2705")
_PRIORITIES = {
    "\U0001f53a": "highest",
    "\u23eb": "high",
    "\U0001f53c": "medium",
    "\U0001f53d": "low",
    "\u23ec": "lowest",
}
_PRIORITY = re.compile("[" + "".join(_PRIORITIES) + "]")
TASK_FIELDS = ("due", "scheduled", "start", "created", "completion", "priority")


def bracketed(line: str) -> list[tuple[int, str, str]]:
    """(start, key, value) of each `[key:: value]` and `(key:: value)` in the line, in
    line order."""
    found: list[tuple[int, str, str]] = []
    budget = 2 * len(line) + 256  # characters looked at; a line with fields needs ~1x
    for opener, (closers, closer) in _CLOSERS.items():
        at = line.find(opener)
        while at >= 0 and budget > 0:
            sep = line.find("::", at + 1)
            if sep < 0:
                break
            budget -= sep - at
            if _WRAPPER_CHARS.search(line, at + 1, sep) is not None:
                at = line.find(opener, at + 1)
                continue
            stop = min(len(line), sep + 2 + max(budget, 0))
            end = _closing(line, sep + 2, stop, opener, closer, closers)
            budget -= (stop if end < 0 else end) - sep
            key = line[at + 1 : sep].strip()
            if end < 0 or not key:
                at = line.find(opener, at + 1)
                continue
            found.append((at, key, line[sep + 2 : end].strip()))
            at = line.find(opener, end + 1)
    found.sort()
    return found


def _closing(
    line: str, start: int, stop: int, opener: str, closer: str, closers: re.Pattern[str]
) -> int:
    """Where the bracket closing a field whose value starts at `start` is, or -1."""
    nesting = 0
    for m in closers.finditer(line, start, stop):
        token = m.group()
        where = m.start()
        if token[0] == "\\":
            run = len(token) - (token[-1] != "\\")
            if run % 2 == 1 or len(token) == run:  # the next character is escaped
                continue
            token, where = token[-1], m.end() - 1
        if token == opener:
            nesting += 1
        elif token == closer:
            nesting -= 1
            if nesting < 0:
                return where
    return -1


def full_line(text: str) -> tuple[str, str] | None:
    """(key, value) of a `Key:: value` line (list marker, quote or emphasis allowed
    before the key), or None."""
    sep = text.find("::")
    if sep < 0 or sep > MAX_KEY:
        return None
    raw = text[:sep].strip()
    ordered = _ORDERED.match(raw)
    if ordered is not None:
        raw = raw[ordered.end() :]
    m = _FULL_KEY.fullmatch(raw)
    if m is None:
        return None
    key = m.group(1).strip()
    return (key, text[sep + 2 :].strip()) if key else None


@functools.lru_cache(maxsize=4096)
def canonical(key: str) -> str:
    """Dataview's sanitized name of a key: letters, digits, '_' and '-' lower-cased,
    each whitespace a '-', emoji kept, anything else dropped (`Due Date` -> `due-date`)."""
    out = []
    for ch in key:
        if ch.isalpha() or ch in "0123456789_-":
            out.append(ch.lower())
        elif ch.isspace():
            out.append("-")
        elif "\u2600" <= ch <= "\u27bf" or "\U0001f000" <= ch <= "\U0001faff" or ch == "\u200d":
            out.append(ch)
    return "".join(out)


def _date(text: str) -> str | None:
    """The ISO date a value starts with, if it is a real date."""
    m = _ISO_DATE.match(text)
    if m is None:
        return None
    try:
        return dt.date.fromisoformat(m.group()).isoformat()
    except ValueError:
        return None


def task_meta(line: str, fields: list[tuple[int, str, str]]) -> dict[str, Any]:
    """The dates and priority of a task line, from its emoji and its bracketed fields."""
    meta: dict[str, Any] = dict.fromkeys(TASK_FIELDS)
    for _, key, value in fields:
        name = canonical(key)
        if name == "priority":
            meta["priority"] = value[:64].lower() or None
        elif name in meta:
            meta[name] = _date(value)
    if not _TASK_EMOJI.isdisjoint(line):
        for name, pattern in _TASK_DATES:
            m = pattern.search(line)
            if m is not None:
                meta[name] = _date(m.group(1)) or meta[name]
    m = _PRIORITY.search(line)
    if m is not None:
        meta["priority"] = _PRIORITIES[m.group()]
    return meta
