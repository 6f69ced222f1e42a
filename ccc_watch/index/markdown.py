"""Parse the text of an Obsidian note into the parsed fields of its index record.

Pure functions, no file I/O: the indexer decodes the bytes and calls `parse_note`.
The aim is to find what Obsidian shows, not what a generic Markdown parser would:

- Frontmatter is the block between a first line `---` (after an optional BOM) and the
  next line `---` or `...`. YAML scalars follow the YAML 1.2 core schema, as
  Obsidian's parser does: `yes`/`no`/`on`/`off` stay strings, `12:30` stays a string,
  `010` is ten; an impossible date (`2025-02-30`) stays a string. Values are made
  JSON-safe (dates -> ISO strings, sets -> sorted lists, bytes -> base64, NaN/inf and
  other non-JSON scalars -> str, mapping keys -> str).
- Nothing inside fenced or indented code, inline code, `<!-- -->` or `%% %%` comments
  is a link, tag or task, or counts as a word (inline code does count as words).
- Tags come from the first frontmatter key matching `tags?` (any case, as Obsidian's
  parseFrontMatterEntry does; a string is split on commas and spaces) and from inline
  `#tag`s: '#' at a line start or after whitespace or '(', then letters, digits, '_',
  '-', '/', combining marks or emoji, not all digits. Kept as written (`#Tag` and
  `#tag` are two entries), sorted.
- A task is any list item `[c]` box; like Obsidian's metadata cache, a space is open
  and any other character (`x`, `X`, `-`, `/`, `>` ...) is done.
- Wikilink targets are kept as written (Obsidian does not URL-decode them); Markdown
  link targets are URL-decoded. Links in frontmatter values, reference-style links,
  raw HTML blocks and math are not looked at.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

# No stubs are installed in every environment; 'unused-ignore' keeps mypy quiet
# when types-PyYAML is present too.
import yaml  # type: ignore[import-untyped, unused-ignore]
import yaml_rs

__all__ = ["ParsedNote", "parse_note", "split_frontmatter"]

FrontmatterStatus = Literal["valid", "invalid", "absent"]


@dataclass(frozen=True)
class ParsedNote:
    """The parsed fields of a note's index record."""

    frontmatter: dict[str, Any]
    frontmatter_status: FrontmatterStatus
    frontmatter_error: str | None
    title: str | None
    aliases: list[str]
    tags: list[str]
    links: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    word_count: int
    body: str = ""  # the text after the frontmatter block


# --------------------------------------------------------------------------- YAML

_BaseLoader: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(_BaseLoader):  # type: ignore[misc, unused-ignore]
    """PyYAML's safe loader (libyaml when available) with YAML 1.2 core scalars."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _construct_int(loader: Any, node: Any) -> int:
    value = str(loader.construct_scalar(node))
    try:
        return int(value)
    except ValueError:
        return int(value, 0)  # 0x.., 0o.., and 0b.. under an explicit !!int


def _construct_timestamp(loader: Any, node: Any) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:  # 2025-02-30 looks like a date but is not one
        return loader.construct_scalar(node)


def _with_mark(construct: Any) -> Any:
    """Turn a bad explicit scalar (`!!int zz`) into a YAML error that has a line number."""

    def checked(loader: Any, node: Any) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, KeyError) as exc:
            kind = str(node.tag).rsplit(":", 1)[-1]
            problem = f"cannot read {node.value!r} as {kind}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc

    return checked


_Loader.add_constructor(_INT, _with_mark(_construct_int))
_Loader.add_constructor(_FLOAT, _with_mark(yaml.SafeLoader.construct_yaml_float))
_Loader.add_constructor(_BOOL, _with_mark(yaml.SafeLoader.construct_yaml_bool))
_Loader.add_constructor(_TIMESTAMP, _construct_timestamp)

_MAX_DEPTH = 64
_MAX_NODES = 100_000


class _TooComplex(ValueError):
    pass


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, dt.date):
        return key.isoformat()
    return str(key)


def _json_safe(value: Any, depth: int, budget: list[int]) -> Any:
    """A copy of `value` that JSON can encode; bounded so alias bombs stay cheap."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooComplex(f"frontmatter has more than {_MAX_NODES} values (alias expansion?)")
    if depth > _MAX_DEPTH:
        raise _TooComplex(f"frontmatter is nested more than {_MAX_DEPTH} levels (recursive?)")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {_json_key(k): _json_safe(v, depth + 1, budget) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1, budget) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_json_safe(v, depth + 1, budget) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, (set, frozenset)):
        return "set"
    return type(value).__name__


def _yaml_error(exc: Exception, yaml_text: str) -> str:
    """The parser's message with the line number as it is in the file."""
    # The YAML starts on the file's line 2, after the opening '---'.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        msg = f"line {mark.line + 2}: {problem} (column {mark.column + 1})"
        context = getattr(exc, "context", None)
        context_mark = getattr(exc, "context_mark", None)
        if context and context_mark is not None:
            msg += f"; {context} at line {context_mark.line + 2}"
        elif context:
            msg += f"; {context}"
        return msg
    position = getattr(exc, "position", None)
    reason = getattr(exc, "reason", None)
    if isinstance(position, int) and reason:  # ReaderError: a character YAML refuses
        line = yaml_text.count("\n", 0, position) + 2
        char = getattr(exc, "character", None)
        code = ord(char) if isinstance(char, str) and len(char) == 1 else char
        what = f"character #x{code:04x}: " if isinstance(code, int) else ""
        return f"line {line}: unacceptable {what}{reason}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# Where the two loaders differ, the reference (PyYAML) decides: anchors, aliases and
# merge keys, tags, complex keys, control characters, and digit groups like 1_000.
# Plain frontmatter, by far the most common, has none of these.
_NEEDS_REFERENCE = re.compile(r"[&*!?\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|<<|\d_")


def _parse_yaml(
    yaml_text: str, fast: bool = True
) -> tuple[dict[str, Any], FrontmatterStatus, str | None]:
    """(frontmatter, status, error) of a YAML block; fast=False uses PyYAML only."""
    # yaml_rs (Rust, YAML 1.2 core schema) first: ~10x faster than PyYAML's Python
    # constructor. tests/test_frontmatter_loaders.py checks that both give the same
    # frontmatter on the hub corpus and the synthetic vaults. What yaml_rs rejects goes
    # to PyYAML, which decides and words the error the way users see it.
    try:
        if not fast or _NEEDS_REFERENCE.search(yaml_text):
            raise ValueError("use the reference loader")
        data = yaml_rs.loads(yaml_text)
    except Exception:
        try:
            data = yaml.load(yaml_text, Loader=_Loader)
        except Exception as exc:  # YAMLError, or RecursionError on absurd nesting
            return {}, "invalid", _yaml_error(exc, yaml_text)
    if data is None:
        return {}, "valid", None
    if not isinstance(data, dict):
        return {}, "invalid", f"frontmatter is a {_kind(data)}, not a mapping"
    try:
        safe = _json_safe(data, 0, [_MAX_NODES])
    except _TooComplex as exc:
        return {}, "invalid", str(exc)
    return safe, "valid", None


_FM_CLOSE = re.compile(r"^(?:---|\.\.\.)\r?$", re.MULTILINE)


def split_frontmatter(text: str) -> tuple[str | None, str, int]:
    """Split a note into (YAML text or None, body, 1-based line where the body starts).

    The YAML text has '\\n' line endings. An unterminated block is no frontmatter: the
    whole text (less a BOM) is the body.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("---"):
        return None, text, 1
    eol = text.find("\n")
    if eol < 0 or text[3:eol] not in ("", "\r"):
        return None, text, 1
    close = _FM_CLOSE.search(text, eol + 1)
    if close is None:
        return None, text, 1
    raw_yaml = text[eol + 1 : close.start()]
    body_at = close.end() + 1  # past the '\n' of the closing line (or past the end)
    body_line = raw_yaml.count("\n") + 3
    return raw_yaml.replace("\r\n", "\n"), text[body_at:], body_line


# --------------------------------------------------------------------------- body


def _mark_ranges() -> str:
    """Combining marks of the BMP as a regex class body: tags like #हिंदी need them."""
    out: list[str] = []
    start = -1
    for cp in range(0x300, 0x10001):
        is_mark = cp < 0x10000 and unicodedata.category(chr(cp))[0] == "M"
        if is_mark and start < 0:
            start = cp
        elif not is_mark and start >= 0:
            out.append(f"\\u{start:04x}-\\u{cp - 1:04x}" if cp - 1 > start else f"\\u{start:04x}")
            start = -1
    return "".join(out)


# Letters, digits, '_', '-', '/', combining marks, and emoji (which Obsidian accepts).
_TAG_CHARS = r"\w\-/" + _mark_ranges() + r"\u200d\u2600-\u27bf\U0001f000-\U0001faff"
# '#' at the start or after whitespace or '('.
# The lookbehind follows the '#' so that the regex engine can search for the literal.
_TAG = re.compile(rf"#(?<![^\s(]#)([{_TAG_CHARS}]+)")
# Matched only where a '[' is (see _links): a leading optional '!' defeats re's search.
_LINK = re.compile(
    r"(?P<bang>!?)(?:\[\[(?P<inner>[^\[\]\n]+)\]\]"
    r"|\[(?P<text>(?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\(\s*"
    r"(?:<(?P<angle>[^<>\n]*)>|(?P<dest>[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*))"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?\s*\))"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_INLINE_SPECIAL = re.compile(r"`+|<!--|%%")
_BACKTICKS = re.compile(r"`+")
_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})(.*)")
_QUOTE_PREFIX = re.compile(r"(?:>[ \t]?)+")
_LIST_ITEM = re.compile(r"(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
# Written so that no two quantifiers compete for the same spaces: no backtracking blow-up.
_TASK = re.compile(r"[ \t]*(?:>[ \t]*)*(?:[-*+]|\d{1,9}[.)])[ \t]+\[([^\]\n])\](?:[ \t]+(.*))?$")
_H1 = re.compile(r" {0,3}#[ \t]+(.*)")
_ITEM_START = frozenset("-*+0123456789")
_FENCE_START = frozenset("`~")
_CODE_MASK = "\x00"  # stands in for code and links: neither space nor a tag character


def _heading_text(raw: str) -> str | None:
    """ATX heading content without its optional closing '#' run."""
    text = raw.rstrip(" \t")
    unclosed = text.rstrip("#")
    if not unclosed:
        return None
    if len(unclosed) < len(text) and unclosed[-1] in " \t":
        text = unclosed.rstrip(" \t")
    return text or None


def _mask_inline(text: str) -> tuple[str, str, str | None]:
    """(text without comments, text without comments and code spans, open comment closer)."""
    words: list[str] = []
    scan: list[str] = []
    runs: dict[int, list[int]] | None = None  # backtick run length -> run starts
    pos = 0
    while True:
        m = _INLINE_SPECIAL.search(text, pos)
        if m is None:
            words.append(text[pos:])
            scan.append(text[pos:])
            return "".join(words), "".join(scan), None
        start, end = m.span()
        words.append(text[pos:start])
        scan.append(text[pos:start])
        token = m.group()
        if token[0] == "`":
            if runs is None:  # indexed once, so many backtick runs cannot go quadratic
                runs = {}
                for r in _BACKTICKS.finditer(text):
                    runs.setdefault(r.end() - r.start(), []).append(r.start())
            same = runs[len(token)]
            i = bisect_left(same, end)
            if i < len(same):  # the next run of the same length closes the span
                close = same[i] + len(token)
                words.append(text[start:close])
                scan.append(_CODE_MASK)
                pos = close
            else:  # no closing run: literal backticks
                words.append(token)
                scan.append(token)
                pos = end
            continue
        closer = "%%" if token == "%%" else "-->"
        words.append(" ")
        scan.append(" ")
        found = text.find(closer, end)
        if found < 0:
            return "".join(words), "".join(scan), closer
        pos = found + len(closer)


def _wikilink(inner: str, embed: bool, line: int) -> dict[str, Any] | None:
    target, bar, alias = inner.partition("|")
    if bar and target.endswith("\\"):  # '\|' inside a table cell
        target = target[:-1]
    target, hash_, sub = target.partition("#")
    heading = block = None
    if hash_:
        if sub.startswith("^"):
            block = sub[1:].strip() or None
        else:
            heading = sub.strip() or None
    target = target.strip()
    if not target and heading is None and block is None:
        return None
    return {
        "target": target,
        "kind": "embed" if embed else "wikilink",
        "alias": (alias.strip() or None) if bar else None,
        "heading": heading,
        "block": block,
        "line": line,
    }


def _mdlink(text: str, dest: str, line: int) -> dict[str, Any] | None:
    dest = dest.strip()
    if not dest or dest[0] == "#" or dest.startswith("//") or _SCHEME.match(dest):
        return None
    path, hash_, sub = dest.partition("#")
    target = unquote(path).strip()
    if not target:
        return None
    heading = block = None
    if hash_:
        sub = unquote(sub)
        if sub.startswith("^"):
            block = sub[1:].strip() or None
        else:
            heading = sub.strip() or None
    return {
        "target": target,
        "kind": "markdown",
        "alias": text.strip() or None,
        "heading": heading,
        "block": block,
        "line": line,
    }


def _links(text: str, line: int, out: list[dict[str, Any]]) -> str:
    """Append the links of `text` to `out`; return `text` with each link masked."""
    pieces: list[str] = []
    pos = 0
    at = text.find("[")
    while at >= 0:
        m = _LINK.match(text, at - 1 if at > pos and text[at - 1] == "!" else at)
        if m is None:
            at = text.find("[", at + 1)
            continue
        inner = m.group("inner")
        if inner is not None:
            link = _wikilink(inner, bool(m.group("bang")), line)
            if link is not None:
                out.append(link)
        else:
            label = m.group("text")
            angle = m.group("angle")
            link = _mdlink(label, angle if angle is not None else m.group("dest"), line)
            if link is not None:
                out.append(link)
            if "](" in label:  # [![image](a.png)](b.md)
                _links(label, line, out)
        pieces.append(text[pos : m.start()])
        pieces.append(_CODE_MASK)
        pos = m.end()
        at = text.find("[", pos)
    if not pieces:
        return text
    pieces.append(text[pos:])
    return "".join(pieces)


_OTHER_ASCII_SPACE = ("\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def _count_words(text: str) -> int:
    """len(text.split()), without building the list for long plain-ASCII prose."""
    if len(text) < 256 or not text.isascii() or "  " in text:
        return len(text.split())
    for space in _OTHER_ASCII_SPACE:
        if space in text:
            return len(text.split())
    # Words are separated by single spaces: count the gaps, less a leading/trailing one.
    return text.count(" ") + 1 - (text[0] == " ") - (text[-1] == " ")


def _indent(line: str) -> int:
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4 - width % 4
        else:
            break
    return width


@dataclass
class _Body:
    title: str | None
    links: list[dict[str, Any]]
    tags: set[str]
    tasks: list[dict[str, Any]]
    words: int


def _scan_body(body: str, first_line: int) -> _Body:
    title: str | None = None
    links: list[dict[str, Any]] = []
    tags: set[str] = set()
    tasks: list[dict[str, Any]] = []
    words = 0

    fence = ""  # the opening fence run while inside a fenced block
    fence_quoted = False  # that fence opened inside a blockquote
    comment: str | None = None  # the closer we wait for inside a multi-line comment
    indented_code = False
    prev_blank = True
    in_list = False

    for lineno, line in enumerate(body.split("\n"), first_line):
        if line.endswith("\r"):
            line = line[:-1]
        if fence:
            s = line.lstrip(" \t")
            if fence_quoted:
                if not s.startswith(">"):  # the blockquote ended, and the fence with it
                    fence = ""
                else:
                    s = _QUOTE_PREFIX.sub("", s, count=1).lstrip(" \t")
            if fence:
                s = s.rstrip(" \t")
                if len(s) >= len(fence) and s == fence[0] * len(s):
                    fence = ""
                    prev_blank = False
                continue
        resumed = comment is not None
        if comment is not None:
            found = line.find(comment)
            if found < 0:
                continue
            line = " " + line[found + len(comment) :]
            comment = None
        else:
            stripped = line.lstrip(" \t")
            if not stripped:
                prev_blank = True
                continue
            indent = _indent(line) if line[0] in " \t" else 0
            first = stripped[0]
            is_item = first in _ITEM_START and _LIST_ITEM.match(stripped) is not None
            if indented_code and indent >= 4:
                continue
            indented_code = False
            if indent >= 4 and prev_blank and not in_list and not is_item:
                indented_code = True
                continue
            if is_item:
                in_list = True
            elif prev_blank and indent == 0:
                in_list = False
            prev_blank = False
            quoted = first == ">"
            opener = _QUOTE_PREFIX.sub("", stripped, count=1).lstrip(" \t") if quoted else stripped
            if opener[:1] in _FENCE_START and opener[:3] in ("```", "~~~"):
                m = _FENCE_OPEN.match(opener)
                if m is not None and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                    fence = m.group(1)
                    fence_quoted = quoted
                    continue

        # Single characters first: `in` is a memchr for them, much slower for "%%".
        if "`" in line or ("%" in line and "%%" in line) or ("<" in line and "<!--" in line):
            text, scan, comment = _mask_inline(line)
        else:
            text = scan = line
        words += _count_words(text)
        if "[" in scan:
            scan = _links(scan, lineno, links)
        if "#" in scan:
            for tag in _TAG.findall(scan):
                if not tag.isdigit():
                    tags.add(tag)
        if resumed:
            continue
        if title is None and "#" in text[:4]:
            h1 = _H1.match(text)
            if h1 is not None:
                title = _heading_text(h1.group(1))
        if "[" in text:
            task = _TASK.match(text)
            if task is not None:
                mark = task.group(1)
                tasks.append(
                    {
                        "line": lineno,
                        "done": not mark.isspace(),
                        "text": (task.group(2) or "").strip(),
                    }
                )
    return _Body(title, links, tags, tasks, words)


# --------------------------------------------------------------------------- note

_TAGS_KEY = re.compile(r"^tags?$", re.IGNORECASE)
_ALIASES_KEY = re.compile(r"^alias(?:es)?$", re.IGNORECASE)
_TAG_SPLIT = re.compile(r"[,\s]+")


def _entry(frontmatter: dict[str, Any], key: re.Pattern[str]) -> Any:
    """The first value whose key matches, as Obsidian's parseFrontMatterEntry finds it."""
    for name, value in frontmatter.items():
        if key.match(name):
            return value
    return None


def _scalar_strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [
        str(v).strip()
        for v in items
        if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip()
    ]


def _frontmatter_tags(frontmatter: dict[str, Any]) -> list[str]:
    value = _entry(frontmatter, _TAGS_KEY)
    raw = _TAG_SPLIT.split(value) if isinstance(value, str) else _scalar_strings(value)
    return [t for t in (r.strip().lstrip("#") for r in raw) if t]


def _aliases(frontmatter: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for alias in _scalar_strings(_entry(frontmatter, _ALIASES_KEY)):
        seen.setdefault(alias)
    return list(seen)


def parse_note(text: str) -> ParsedNote:
    """Parse the decoded text of a note into the fields of its index record."""
    yaml_text, body, body_line = split_frontmatter(text)
    frontmatter: dict[str, Any] = {}
    status: FrontmatterStatus = "absent"
    error: str | None = None
    if yaml_text is not None:
        frontmatter, status, error = _parse_yaml(yaml_text)
    scanned = _scan_body(body, body_line)
    title = frontmatter.get("title")
    title = title.strip() if isinstance(title, str) else None
    scanned.tags.update(_frontmatter_tags(frontmatter))
    return ParsedNote(
        frontmatter=frontmatter,
        frontmatter_status=status,
        frontmatter_error=error,
        title=title or scanned.title,
        aliases=_aliases(frontmatter),
        tags=sorted(scanned.tags),
        links=scanned.links,
        tasks=scanned.tasks,
        word_count=scanned.words,
        body=body,
    )
