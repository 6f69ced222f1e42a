"""A note's classification level, failing closed.

The level is certain when the frontmatter parses and holds exactly one classification
key whose value is a level's name, and its text holds no other classification line.
A classification key is `classification` in any case, quoted or not, with spaces,
BOMs and zero-width characters ignored. Otherwise the level is unsure, and is the most
private of the default and every level the frontmatter's text could mean:

- each value under a classification key, parsed or read from the raw text (a line
  `classification:` at a line start or after `{`, `,`, `- ` or `? `, with its value
  on that line and the lines indented below it), names the levels whose names it
  holds; a value that holds none (`restricted`, `3`, `TopSecret`) could mean any
  level: SECRET; an empty one (`~`, `""`, `[]`) names none;
- a block that does not parse names every level a word in it starts with
  (`secret`, `confidential`, in any case), wherever it is;
- a block opened on the first line and never closed (no frontmatter to Obsidian) is
  read for classification lines only;
- only a block's first 256 KiB and a value's first 4 KiB are read: a longer value,
  or a longer block that does not parse, could mean anything: SECRET.

Before it is read, the text is NFKC-normalised (fullwidth letters become ASCII),
format characters (BOM, zero-width) are removed and YAML's escapes (`\\x41`,
`\\u0041`, `\\U00000041`) decoded. A broken block names no level lower than the default:
it cannot make a note less private than a note without frontmatter.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from ccc_watch.config import CLASSIFICATIONS

_RANK = {level: rank for rank, level in enumerate(CLASSIFICATIONS)}  # PUBLIC < ... < SECRET
_MOST_PRIVATE = CLASSIFICATIONS[-1]


class _FormatCharacters(dict[int, int | None]):
    """For str.translate: every format character (BOM, zero-width space and joiners,
    bidi marks; invisible, so they can hide a key or a level from a plain search)
    maps to None, any other character to itself. Filled as characters are met: building
    the whole table up front walks all of Unicode (a sixth of a second per process)."""

    LIMIT = 1 << 16  # entries kept; characters past them are looked up each time

    def __missing__(self, code: int) -> int | None:
        value = None if unicodedata.category(chr(code)) == "Cf" else code
        if len(self) < self.LIMIT:
            self[code] = value
        return value


_FORMAT_CHARACTERS = _FormatCharacters()
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")
# A level's name at the start of a word; a name inside a word (`nonpublic`) is none.
_LEVEL_WORD = re.compile(r"(?<![^\W\d_])(public|internal|confidential|secret)", re.IGNORECASE)
_PRIVATE_WORD = re.compile(r"(?<![^\W\d_])(confidential|secret)", re.IGNORECASE)
_KEY_LINE = re.compile(
    r"(?:^|[{,])[ \t]*(?:[-?][ \t]+)*[\"']?classification[\"']?[ \t]*(?:\n[ \t]*)?:(?P<rest>.*)",
    re.IGNORECASE | re.MULTILINE,
)
# Bounds on the work a hostile block can cause: characters of one value read, and of a
# block (a longer block that does not parse could mean anything: SECRET).
_MAX_VALUE = 4096
_MAX_RAW = 256 * 1024
_COMMENT = re.compile(r"(?:^|\s)#.*")
_PUNCTUATION = re.compile(r"[\s\[\]{}\"',\-]+")  # what an empty YAML value may still show


class Classified(NamedTuple):
    """A note's level, and why it is not certain (None when it is)."""

    level: str
    unsure: str | None = None


def _unescape(match: re.Match[str]) -> str:
    code = int(next(g for g in match.groups() if g is not None), 16)
    return chr(code) if code <= sys.maxunicode else match.group()


def _clean(text: str) -> str:
    """The text as the search reads it: escapes decoded, NFKC, no format characters."""
    if text.isascii() and "\\" not in text:  # no escape, and NFKC leaves ASCII as it is
        return text
    text = unicodedata.normalize("NFKC", _ESCAPE.sub(_unescape, text))
    return text if text.isascii() else text.translate(_FORMAT_CHARACTERS)


def _is_key(key: str) -> bool:
    return _clean(key).strip().strip("\"'").strip().casefold() == "classification"


def _plain_key(key: str) -> bool:
    """A key that is `classification` without any cleaning but for case and spaces."""
    return key.strip().casefold() == "classification"


def _named(text: str) -> set[str]:
    """The levels a value's text names; SECRET when it names none, nothing when empty."""
    plain = text.strip()
    if plain.isascii() and plain.upper() in _RANK:  # the common case: a level's name
        return {plain.upper()}
    text = _COMMENT.sub("", text)
    if _PUNCTUATION.sub("", text).casefold() in ("", "null", "~"):
        return set()
    names = {m.upper() for m in _LEVEL_WORD.findall(text)}
    return names or {_MOST_PRIVATE}


def _scalars(value: Any) -> Iterator[Any]:
    """The scalar values inside a parsed value (mapping keys are names, not values)."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, list):
        for v in value:
            yield from _scalars(v)
    else:
        yield value


def _parsed_levels(value: Any) -> tuple[set[str], bool]:
    """(levels a parsed value names, whether it is exactly one level's name, plainly
    written: in any case, but with no fullwidth letter or invisible character)."""
    if isinstance(value, str) and value.strip().upper() in _RANK:
        return {value.strip().upper()}, True
    levels: set[str] = set()
    for scalar in _scalars(value):
        if scalar is None:
            continue
        levels |= _named(_clean(scalar) if isinstance(scalar, str) else str(scalar) or "?")
    return levels, False


def _key_lines(text: str) -> list[set[str]]:
    """For each classification line of raw text, the levels its value names."""
    found: list[set[str]] = []
    if text.isascii() and "classification" not in text.lower():
        return found  # the common case, and the pattern costs µs per line to try
    for match in _KEY_LINE.finditer(text):
        start = text.rfind("\n", 0, match.start()) + 1  # of the line the match is on
        end = text.find("\n", start)
        indent = _indent(text[start : len(text) if end < 0 else end])
        value = [match.group("rest")[:_MAX_VALUE]]
        size = len(value[0])
        # The lines below the one the value starts on (the key's colon may be on the
        # line after the key), while they are indented deeper, blank, or list items
        # at the key's own indent.
        at = text.find("\n", match.start("rest"))
        while at >= 0:
            end = text.find("\n", at + 1)
            line = text[at + 1 : len(text) if end < 0 else end]
            at = end
            if line.strip() and not (
                _indent(line) > indent or (_indent(line) == indent and line.lstrip()[:1] == "-")
            ):
                break
            size += len(line)
            if size > _MAX_VALUE:  # a value this long could mean anything
                value.append(_MOST_PRIVATE)
                break
            value.append(line)
        found.append(_named("\n".join(value)))
        if len(found) > 1 and _MOST_PRIVATE in found[-1]:
            break  # nothing can raise the level further
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def classify(
    frontmatter: Mapping[str, Any],
    status: str,
    raw: str | None,
    default: str,
    *,
    unclosed: bool = False,
) -> Classified:
    """The level of a note: from its parsed frontmatter, its status (valid, invalid,
    absent), the raw text of its block (None when there is none; for an unclosed block,
    the text after its opening line) and the default level."""
    if raw is None:
        return Classified(default)
    keys = [str(k) for k in frontmatter if _is_key(str(k))]
    entries = [frontmatter[k] for k in keys]
    text = _clean(raw[:_MAX_RAW])
    lines = _key_lines(text)
    named: set[str] = set()
    reasons: list[str] = []
    if status == "invalid" and len(raw) > _MAX_RAW:
        named.add(_MOST_PRIVATE)
        reasons.append(f"its frontmatter is longer than {_MAX_RAW // 1024} KiB")
    for value in entries:
        levels, exact = _parsed_levels(value)
        named |= levels
        if not exact:
            reasons.append("its classification is not one level's name")
    if not all(map(_plain_key, keys)):
        reasons.append("its classification key is written with hidden or unusual characters")
    if len(entries) > 1 or len(lines) > 1:
        reasons.append("it has more than one classification")
    if status == "valid" and any(not levels <= named for levels in lines):
        reasons.append("its text has a classification its parsed frontmatter lacks")
    named = named.union(*lines)
    if unclosed and named:
        reasons.append("its frontmatter block is never closed")
    elif status == "invalid" and not unclosed:
        named |= {word.upper() for word in _PRIVATE_WORD.findall(text)}
        if named:
            reasons.append("its frontmatter does not parse")
    if not named:  # no level given (or only empty values): the default
        return Classified(default)
    if not reasons:  # one level, said one way
        return Classified(named.pop())
    level = max(named | {default}, key=_RANK.__getitem__)
    says = ", ".join(sorted(named, key=_RANK.__getitem__))
    why = "; ".join(dict.fromkeys(reasons))
    return Classified(level, f"{why}; its text names {says}: counted as {level}")
