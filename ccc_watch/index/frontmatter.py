"""A note's frontmatter: the block between a first line `---` (after an optional BOM)
and the next line `---` or `...`, read as Obsidian reads it.

YAML scalars follow the YAML 1.2 core schema, as Obsidian's parser does: `yes`/`no`/
`on`/`off` stay strings, `12:30` stays a string, `010` is ten; an impossible date
(`2025-02-30`) stays a string. yaml_rs (Rust) parses; PyYAML is the reference for the
unusual (anchors, tags, merge keys). Values are made JSON-safe (dates -> ISO strings,
sets -> sorted lists, bytes -> base64, NaN/inf and other non-JSON scalars -> str,
mapping keys -> str), within a depth and size budget. Tags and aliases come from the
first key matching `tags?` / `alias(es)?` (any case, as Obsidian's
parseFrontMatterEntry does; a string is split on commas and spaces).
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
from typing import Any, Literal

# No stubs are installed in every environment; 'unused-ignore' keeps mypy quiet
# when types-PyYAML is present too.
import yaml  # type: ignore[import-untyped, unused-ignore]
import yaml_rs

FrontmatterStatus = Literal["valid", "invalid", "absent"]


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


_TOO_MANY = f"frontmatter has more than {_MAX_NODES} values (alias expansion?)"
_TOO_DEEP = f"frontmatter is nested more than {_MAX_DEPTH} levels (recursive?)"


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


_LEAVES = frozenset({str, int, bool, type(None)})  # JSON as they are (exact types)


def _json_safe(value: Any, depth: int, budget: list[int]) -> Any:
    """A copy of `value` that JSON can encode; bounded so alias bombs stay cheap.

    Every value counts against the budget and the depth, leaves too; a plain leaf of
    a mapping or a list is taken in the loop, without a call (most of a note's
    frontmatter), with the same counting."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooComplex(_TOO_MANY)
    if depth > _MAX_DEPTH:
        raise _TooComplex(_TOO_DEEP)
    kind = type(value)
    if kind in _LEAVES:
        return value
    inner = depth + 1
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                key = _json_key(key)
            if type(item) in _LEAVES and inner <= _MAX_DEPTH:
                budget[0] -= 1
                if budget[0] < 0:
                    raise _TooComplex(_TOO_MANY)
                out[key] = item
            else:
                out[key] = _json_safe(item, inner, budget)
        return out
    if kind is list:
        items = []
        for item in value:
            if type(item) in _LEAVES and inner <= _MAX_DEPTH:
                budget[0] -= 1
                if budget[0] < 0:
                    raise _TooComplex(_TOO_MANY)
                items.append(item)
            else:
                items.append(_json_safe(item, inner, budget))
        return items
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {_json_key(k): _json_safe(v, inner, budget) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, inner, budget) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_json_safe(v, inner, budget) for v in value]
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
_REFERENCE_CHARS = re.compile(r"[&*!?\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _needs_reference(text: str) -> bool:
    """Whether the block has one of those (one pattern with `<<` and `\\d_` as
    alternatives cost 4 µs on a ten-line block, this a third of it)."""
    if _REFERENCE_CHARS.search(text) is not None or "<<" in text:
        return True
    at = text.find("_", 1)
    while at > 0:  # a digit before an underscore, as \d_ matches (any decimal digit)
        if text[at - 1].isdecimal():
            return True
        at = text.find("_", at + 1)
    return False


def parse_yaml(
    yaml_text: str, fast: bool = True
) -> tuple[dict[str, Any], FrontmatterStatus, str | None]:
    """(frontmatter, status, error) of a YAML block; fast=False uses PyYAML only."""
    # yaml_rs (Rust, YAML 1.2 core schema) first: ~10x faster than PyYAML's Python
    # constructor. tests/test_frontmatter_loaders.py checks that both give the same
    # frontmatter on the hub corpus and the synthetic vaults. What yaml_rs rejects goes
    # to PyYAML, which decides and words the error the way users see it.
    try:
        if not fast or _needs_reference(yaml_text):
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


def _opened(text: str) -> int | None:
    """Where the line after an opening `---` first line starts, or None (BOM stripped)."""
    if not text.startswith("---"):
        return None
    eol = text.find("\n")
    if eol < 0 or text[3:eol] not in ("", "\r"):
        return None
    return eol + 1


def split_frontmatter(text: str) -> tuple[str | None, str, int]:
    """Split a note into (YAML text or None, body, 1-based line where the body starts).

    The YAML text has '\\n' line endings. An unterminated block is no frontmatter: the
    whole text (less a BOM) is the body.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    start = _opened(text)
    close = None if start is None else _FM_CLOSE.search(text, start)
    if start is None or close is None:
        return None, text, 1
    raw_yaml = text[start : close.start()]
    body_at = close.end() + 1  # past the '\n' of the closing line (or past the end)
    body_line = raw_yaml.count("\n") + 3
    return raw_yaml.replace("\r\n", "\n"), text[body_at:], body_line


def unclosed_block(text: str) -> str | None:
    """The text after an opening `---` line that no closing line follows (no frontmatter
    to Obsidian, but what the user may have meant as one), or None."""
    text = text.removeprefix("\ufeff")
    start = _opened(text)
    if start is None or _FM_CLOSE.search(text, start) is not None:
        return None
    return text[start:]


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


def frontmatter_tags(frontmatter: dict[str, Any]) -> list[str]:
    value = _entry(frontmatter, _TAGS_KEY)
    raw = _TAG_SPLIT.split(value) if isinstance(value, str) else _scalar_strings(value)
    return [t for t in (r.strip().lstrip("#") for r in raw) if t]


def aliases(frontmatter: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for alias in _scalar_strings(_entry(frontmatter, _ALIASES_KEY)):
        seen.setdefault(alias)
    return list(seen)
