"""What the indexer keeps: classification levels, which of them are private and what a
private record keeps, record-type rules and the size limit for parsing. One IndexPolicy
is shared by the indexer, the store's writers and the mirror."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from ccc_watch.config import CLASSIFICATIONS, Settings

PRIVATE = frozenset({"CONFIDENTIAL", "SECRET"})  # their text never reaches a database
# A private level whose records keep only the file's facts: not even the note's shape.
FACTS_ONLY = "SECRET"
# Raised whenever what a record keeps changes, so that stores indexed under the old
# rules are indexed again (see IndexPolicy.fingerprint).
REDACTION_VERSION = 2
_ERROR_LINE = re.compile(r"line \d+")
RECORD_TYPES = ("Log", "Template", "AgentPrompt", "StructuredData", "Metadata", "Index")


@dataclass(frozen=True)
class TypeRule:
    """A record type given to files whose path matches, or whose frontmatter has a key."""

    record_type: str
    path_pattern: str | None = None  # a regex searched in the lower-cased vault path
    marker: str | None = None  # a frontmatter key whose presence decides
    extensions: frozenset[str] = frozenset()

    def matches(self, key: str, extension: str, frontmatter: Mapping[str, Any]) -> bool:
        """Whether this rule applies to the file."""
        if self.extensions and extension in self.extensions:
            return True
        if self.path_pattern and re.search(self.path_pattern, key.lower()):
            return True
        return bool(self.marker and self.marker in frontmatter)


# The original design's heuristics, first match wins. Words are matched whole-ish so
# that "catalog" or "blog" is not a Log.
DEFAULT_TYPE_RULES: tuple[TypeRule, ...] = (
    TypeRule("Template", path_pattern=r"templates?"),
    TypeRule("Log", path_pattern=r"(?<![a-z])logs?(?![a-z])", marker="timestamp"),
    TypeRule("AgentPrompt", path_pattern=r"prompts?", marker="system_prompt"),
    TypeRule("StructuredData", extensions=frozenset({".json", ".yaml", ".yml"})),
    TypeRule("Index", path_pattern=r"(^|/)(index|_index|moc)\.md$"),
)


@dataclass(frozen=True)
class IndexPolicy:
    """What the indexer parses and keeps; one object shared by the store and the mirror."""

    max_note_bytes: int = 8 * 1024 * 1024
    default_classification: str = "INTERNAL"
    private_classifications: frozenset[str] = PRIVATE
    type_rules: tuple[TypeRule, ...] = DEFAULT_TYPE_RULES
    fallback_type: str = "Metadata"

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexPolicy:
        """The policy the settings ask for (max_note_bytes, default_classification)."""
        return cls(
            max_note_bytes=settings.max_note_bytes,
            default_classification=settings.default_classification,
        )

    def became_private(self, before: str | None, after: str | None) -> bool:
        """Whether a note whose record was at level `before` (None: no record) and is now
        at `after` lost the right to keep its text: its old text must leave the files."""
        private = self.private_classifications
        return before is not None and before not in private and after in private

    def redact(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """What a record may keep at its level (README "Privacy"); idempotent.

        PUBLIC, INTERNAL: everything. A private level keeps the file's facts (path and
        what it gives, id, size, times, blake3, error), the level and the frontmatter's
        status, and no text: no body, title, aliases, tags, links, frontmatter values
        or keys, task text, nor the parser's message (it can quote the note). Other
        than SECRET it keeps the note's shape: word count, each task's line and state,
        a record type from a frontmatter key. SECRET keeps no shape.
        """
        level = record.get("classification")
        if level not in self.private_classifications:
            return dict(record)
        error = record.get("frontmatter_error")
        if error is not None:
            where = _ERROR_LINE.match(error)
            error = f"{where.group() + ': ' if where else ''}the frontmatter does not parse"
            error += f" (the parser's message is withheld: the note is {level})"
        kept = dict(
            record, frontmatter={}, frontmatter_error=error, title=None, aliases=[], tags=[],
            links=[], body=None,
            tasks=[{"line": t.get("line"), "done": t.get("done"), "text": None}
                   for t in record.get("tasks") or []],
        )  # fmt: skip
        if level == FACTS_ONLY:
            path = str(record.get("path", ""))
            extension = os.path.splitext(path)[1].lower()
            record_type = self.record_type(path, extension, {})
            kept.update(tasks=[], word_count=None, record_type=record_type)
        return kept

    def fingerprint(self) -> str:
        """A digest of everything that decides a record's fields: a store indexed under
        another fingerprint is indexed again."""
        text = f"{policy_json(self)}\0{REDACTION_VERSION}"
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def record_type(self, key: str, extension: str, frontmatter: Mapping[str, Any]) -> str:
        """The first type rule that matches, else the fallback type."""
        for rule in self.type_rules:
            if rule.matches(key, extension, frontmatter):
                return rule.record_type
        return self.fallback_type


# --- as JSON, for a child process (the mirror's flusher) ---------------------------

_POLICY_KEYS = frozenset(f.name for f in fields(IndexPolicy))
_RULE_KEYS = frozenset(f.name for f in fields(TypeRule))
_T = TypeVar("_T")


def policy_json(policy: IndexPolicy) -> str:
    """The policy as a JSON document of plain values, for the child's command line."""
    return json.dumps({
        "max_note_bytes": policy.max_note_bytes,
        "default_classification": policy.default_classification,
        "private_classifications": sorted(policy.private_classifications),
        "type_rules": [
            {"record_type": r.record_type, "path_pattern": r.path_pattern, "marker": r.marker,
             "extensions": sorted(r.extensions)}
            for r in policy.type_rules
        ],
        "fallback_type": policy.fallback_type,
    })  # fmt: skip


def policy_from_json(text: str) -> IndexPolicy:
    """The IndexPolicy a `policy_json` document describes; anything else is refused with
    a ValueError that says what is wrong."""
    try:
        doc = _object(json.loads(text), _POLICY_KEYS, "the policy")
    except json.JSONDecodeError as e:
        raise ValueError(f"the policy is not JSON: {e}") from None
    size = _typed(doc["max_note_bytes"], int, "max_note_bytes")
    if size <= 0:
        raise ValueError(f"max_note_bytes must be positive, not {size}")
    private = _typed(doc["private_classifications"], list, "private_classifications")
    rules = _typed(doc["type_rules"], list, "type_rules")
    return IndexPolicy(
        max_note_bytes=size,
        default_classification=_level(doc["default_classification"], "default_classification"),
        private_classifications=frozenset(_level(v, "private_classifications") for v in private),
        type_rules=tuple(_type_rule(rule, f"type_rules[{i}]") for i, rule in enumerate(rules)),
        fallback_type=_typed(doc["fallback_type"], str, "fallback_type"),
    )


def _type_rule(value: object, where: str) -> TypeRule:
    doc = _object(value, _RULE_KEYS, where)
    pattern, marker = doc["path_pattern"], doc["marker"]
    if pattern is not None:
        try:
            re.compile(_typed(pattern, str, f"{where}.path_pattern"))
        except re.error as e:
            raise ValueError(f"{where}.path_pattern is not a regular expression: {e}") from None
    extensions = _typed(doc["extensions"], list, f"{where}.extensions")
    return TypeRule(
        record_type=_typed(doc["record_type"], str, f"{where}.record_type"),
        path_pattern=pattern,
        marker=None if marker is None else _typed(marker, str, f"{where}.marker"),
        extensions=frozenset(_typed(e, str, f"{where}.extensions") for e in extensions),
    )


def _object(value: object, keys: frozenset[str], where: str) -> dict[str, Any]:
    doc = _typed(value, dict, where)
    if doc.keys() != keys:
        wrong = {"missing": keys - doc.keys(), "unknown": doc.keys() - keys}
        what = ", ".join(f"{kind} keys {sorted(k)}" for kind, k in wrong.items() if k)
        raise ValueError(f"{where}: {what}")
    return doc


def _level(value: object, where: str) -> str:
    if value not in CLASSIFICATIONS:
        raise ValueError(f"{where} must be one of {', '.join(CLASSIFICATIONS)}, not {value!r:.60}")
    return str(value)


def _typed(value: object, kind: type[_T], where: str) -> _T:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"{where} must be a JSON {_JSON_NAMES[kind]}, not {value!r:.60}")
    return value


_JSON_NAMES: dict[type, str] = {int: "integer", str: "string", list: "array", dict: "object"}
