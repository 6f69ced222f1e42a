"""A note's body, scanned for what Obsidian's metadata cache finds in it: the first
heading (a title when the frontmatter gives none), links, tags, tasks and words.

- Nothing inside fenced or indented code, inline code, `<!-- -->` or `%% %%` comments
  is a link, tag or task, or counts as a word (inline code does count as words).
- Inline `#tag`s: '#' at a line start or after whitespace or '(', then letters,
  digits, '_', '-', '/', combining marks or emoji, not all digits. Counted per
  spelling: tags are one tag whatever their case (note.py keeps the most used one).
- A task is any list item `[c]` box; like Obsidian's metadata cache, a space is open
  and any other character (`x`, `X`, `-`, `/`, `>` ...) is done. Its status is the
  character itself, its section the heading above it; fields.py reads its dates.
- Headings are ATX headings (`#` to `######`, not in a blockquote); a block id is a
  `^id` (letters, digits, '-') ending a line, after a space or alone on it.
- Inline fields follow Dataview (fields.py); like links and tags, none is read in
  code or comments, and inline code inside a field's value is left out.
- Wikilink targets are kept as written (Obsidian does not URL-decode them); Markdown
  link targets are URL-decoded. Reference-style links, raw HTML blocks and math are
  not looked at.

`scan_body` runs the compiled scanner (rust/src/scan.rs, without the GIL);
`scan_body_reference` is this module's Python scanner, the reference it is tested
against (tests/test_scan_differential.py) and the fallback for a str the compiled one
cannot read (lone surrogates have no UTF-8 form).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ccc_watch._redb import scan_body as _compiled_scan
from ccc_watch.index.fields import EMOJI, MAX_FIELDS, MAX_LINE, bracketed, full_line, task_meta


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


@functools.cache
def _tag_pattern() -> re.Pattern[str]:
    """An inline tag: made at first use, as only the reference scanner needs it (the
    marks' ranges take ~16 ms to list, at every start-up of every command)."""
    # Letters, digits, '_', '-', '/', combining marks, and emoji (which Obsidian accepts).
    chars = r"\w\-/" + _mark_ranges() + EMOJI
    # '#' at the start or after whitespace or '('.
    # The lookbehind follows the '#' so that the regex engine can search for the literal.
    return re.compile(rf"#(?<![^\s(]#)([{chars}]+)")


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
_HEADING = re.compile(r" {0,3}(#{1,6})[ \t]+(.*)")
_BLOCK_ID = re.compile(r"[A-Za-z0-9-]+")
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
class Body:
    """What a note's body holds, as Obsidian's metadata cache sees it."""

    title: str | None
    links: list[dict[str, Any]]
    tags: dict[str, int]  # each spelling and how often it is used
    tasks: list[dict[str, Any]]
    words: int
    headings: list[dict[str, Any]]  # level, text, line
    blocks: list[dict[str, Any]]  # id, line
    fields: list[dict[str, Any]]  # key, value, line, task (on a task's line)


def _block_id(scan: str) -> str | None:
    """The `^id` that ends a line, if any."""
    at = scan.rfind("^")
    if at < 0 or (at > 0 and scan[at - 1] not in " \t"):
        return None
    found = scan[at + 1 :].rstrip(" \t")
    return found if _BLOCK_ID.fullmatch(found) else None


def scan_body(body: str, first_line: int) -> Body:
    """Scan a note's body (its first line is first_line of the file)."""
    try:
        return Body(*_compiled_scan(body, first_line))
    except UnicodeEncodeError:  # lone surrogates: no UTF-8 text for the compiled scanner
        return scan_body_reference(body, first_line)


def scan_body_reference(body: str, first_line: int) -> Body:
    """Scan a note's body (its first line is first_line of the file) line by line: the
    Python definition of what scan_body finds."""
    title: str | None = None
    links: list[dict[str, Any]] = []
    tags: dict[str, int] = {}
    tasks: list[dict[str, Any]] = []
    words = 0
    headings: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    fields: list[dict[str, Any]] = []
    section: str | None = None  # the text of the last heading

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
        unlinked = scan  # code and comments masked, links still there: for fields
        if "[" in scan:
            scan = _links(scan, lineno, links)
        if "#" in scan:
            for tag in _tag_pattern().findall(scan):
                if not tag.isdigit():
                    tags[tag] = tags.get(tag, 0) + 1
        if "^" in scan:
            block = _block_id(scan)
            if block is not None:
                blocks.append({"id": block, "line": lineno})
        has_fields = (
            ":" in unlinked
            and "::" in unlinked
            and len(unlinked) <= MAX_LINE
            and len(fields) < MAX_FIELDS
        )
        if resumed:
            if has_fields:
                _add_fields(fields, bracketed(unlinked), lineno, False)
            continue
        if "#" in text[:4]:
            heading = _HEADING.match(text)
            if heading is not None:
                section = _heading_text(heading.group(2))
                if section is not None:
                    level = len(heading.group(1))
                    headings.append({"level": level, "text": section, "line": lineno})
                    if title is None and level == 1:
                        title = section
        task = _TASK.match(text) if "[" in text else None
        pairs = bracketed(unlinked) if has_fields else []
        if task is not None:
            mark = task.group(1)
            tasks.append(
                {
                    "line": lineno,
                    "done": not mark.isspace(),
                    "text": (task.group(2) or "").strip(),
                    "status": mark,
                    "section": section,
                    **task_meta(unlinked, pairs),
                }
            )
            _add_fields(fields, pairs, lineno, True)
        elif pairs:
            _add_fields(fields, pairs, lineno, False)
        elif has_fields:
            whole = full_line(unlinked)
            if whole is not None:
                _add_fields(fields, [(0, *whole)], lineno, False)
    return Body(title, links, tags, tasks, words, headings, blocks, fields)


def _add_fields(
    out: list[dict[str, Any]], found: list[tuple[int, str, str]], line: int, task: bool
) -> None:
    for _, key, value in found[: MAX_FIELDS - len(out)]:
        key = key.replace(_CODE_MASK, "").strip()
        if key:
            value = value.replace(_CODE_MASK, "").strip()
            out.append({"key": key, "value": value, "line": line, "task": task})
