"""What the indexer keeps: classification levels, which of them are private and what a
private record keeps, record-type rules and the size limit for parsing. One IndexPolicy
is shared by the indexer, the store's writers and the mirror."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from ccc_watch.config import CLASSIFICATIONS, Config, Settings
from ccc_watch.index.seal import SEALED, Sealer
from ccc_watch.keys import NoKeyError, key_for

PRIVATE = frozenset({"CONFIDENTIAL", "SECRET"})  # their text never reaches a database
# A private level whose records keep only the file's facts: not even the note's shape.
FACTS_ONLY = "SECRET"
# Raised whenever what a record keeps changes, so that stores indexed under the old
# rules are indexed again (see IndexPolicy.fingerprint). 3: Dataview's fields, task
# metadata, headings and block ids (a private note keeps none of them).
REDACTION_VERSION = 3
_ERROR_LINE = re.compile(r"line \d+")
# What a CONFIDENTIAL record does with the text it drops (the confidential_text setting).
CONFIDENTIAL_TEXT = ("drop", "seal")
KeySource = Callable[[str], bytes]  # the vault's key, given its vault id


def key_source(cfg: Config) -> KeySource:
    """The vault's key by vault id, from the sources the settings name (keys.key_for:
    the OS keyring, a systemd credential, key_file)."""
    return functools.partial(key_for, cfg)


RECORD_TYPES = ("Log", "Template", "AgentPrompt", "StructuredData", "Metadata", "Index")


@dataclass(frozen=True)
class TypeRule:
    """A record type given to files whose path matches, or whose frontmatter has a key."""

    record_type: str
    path_pattern: str | None = None  # a regex searched in the lower-cased vault path
    marker: str | None = None  # a frontmatter key whose presence decides
    extensions: frozenset[str] = frozenset()

    @functools.cached_property
    def _search(self) -> Callable[[str], re.Match[str] | None] | None:
        """The path pattern's compiled search (re.search would look it up in re's cache
        at every call, for every file)."""
        return re.compile(self.path_pattern).search if self.path_pattern else None

    def matches(self, key: str, extension: str, frontmatter: Mapping[str, Any]) -> bool:
        """Whether this rule applies to the file."""
        if self.extensions and extension in self.extensions:
            return True
        if self._search is not None and self._search(key.lower()):
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
    confidential_text: str = "drop"
    # The vault key's sealer when confidential_text is "seal": never shown, compared,
    # nor written out (policy_json leaves it out: the mirror's child needs no key).
    sealer: Sealer | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexPolicy:
        """The policy the settings ask for (max_note_bytes, default_classification,
        confidential_text), without a key: what the mirror and the readers need.
        Indexing under "seal" needs keyed_for() too."""
        return cls(
            max_note_bytes=settings.max_note_bytes,
            default_classification=settings.default_classification,
            confidential_text=settings.confidential_text,
        )

    @property
    def seals(self) -> bool:
        """Whether CONFIDENTIAL records keep their dropped text sealed."""
        return self.confidential_text == "seal"

    def keyed_for(
        self, vault_id: str, key_source: KeySource | None, new_vault: bool = False
    ) -> IndexPolicy:
        """This policy ready to index the vault: with its key read (once) from
        key_source when it seals. NoKeyError when it seals and no key is available:
        indexing never falls back to storing the text, nor silently to dropping it.
        new_vault: the vault id is not kept anywhere yet (a first rebuild), so the
        error does not send the user to the keyring with it."""
        if not self.seals or self.sealer is not None:
            return self
        try:
            if key_source is None:
                raise NoKeyError(vault_id)
            return replace(self, sealer=Sealer(key_source(vault_id)))
        except NoKeyError:
            if not new_vault:
                raise
            raise NoKeyError(vault_id, new_vault=True) from None

    def sealable(self, level: object) -> bool:
        """Whether a record of this level keeps its dropped text sealed: CONFIDENTIAL
        (a private level that keeps the note's shape) under "seal"; SECRET never."""
        return self.seals and level in self.private_classifications and level != FACTS_ONLY

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
        or keys, task text or metadata, headings, block ids, inline fields, nor the
        parser's message (it can quote the note). Other than SECRET it keeps the note's
        shape: word count, each task's line and state, a record type from a frontmatter
        key. SECRET keeps no shape.
        """
        level = record.get("classification")
        if level not in self.private_classifications:
            return {k: v for k, v in record.items() if k != SEALED}
        error = record.get("frontmatter_error")
        if error is not None:
            where = _ERROR_LINE.match(error)
            error = f"{where.group() + ': ' if where else ''}the frontmatter does not parse"
            error += f" (the parser's message is withheld: the note is {level})"
        kept = dict(
            record, frontmatter={}, frontmatter_error=error, title=None, aliases=[], tags=[],
            links=[], body=None, headings=[], blocks=[], fields=[],
            tasks=[{"line": t.get("line"), "done": t.get("done"), "text": None}
                   for t in record.get("tasks") or []],
        )  # fmt: skip
        if level == FACTS_ONLY:
            path = str(record.get("path", ""))
            extension = os.path.splitext(path)[1].lower()
            record_type = self.record_type(path, extension, {})
            kept.update(tasks=[], word_count=None, record_type=record_type)
        kept.pop(SEALED, None)  # a reader's view (the mirror): no ciphertext either
        return kept

    def shown(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """What a reader may see of a record: redact()'s, without the copy when there is
        nothing to take away (a record of a level that keeps everything, no sealed
        text), for readers that only read it."""
        if record.get("classification") in self.private_classifications or SEALED in record:
            return self.redact(record)
        return record

    def stored(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """What the store keeps of a freshly indexed record: redact()'s, plus, for a
        sealable level, the fields it dropped in `sealed` (README "Privacy")."""
        kept = self.redact(record)
        if not self.sealable(kept.get("classification")):
            return kept
        if self.sealer is None:  # a bug: Indexer refuses such a policy up front
            raise RuntimeError("a policy that seals has no key: nothing indexed")
        dropped = {k: record.get(k) for k in kept.keys() | record.keys()
                   if k != SEALED and kept.get(k) != record.get(k)}  # fmt: skip
        kept[SEALED] = self.sealer.seal(dropped, kept.get("id"), kept.get("blake3"))
        return kept

    def reidentified(self, record: Mapping[str, Any], new_id: str) -> dict[str, Any]:
        """The record under another id (a move found by content keeps the old note's
        id), its sealed text sealed anew for that id."""
        if SEALED not in record or record.get("id") == new_id:
            return dict(record, id=new_id)
        if self.sealer is None:
            raise RuntimeError("a sealed record to move without the key")
        whole = opened(record, self.sealer, str(record.get("path")))
        return self.stored(dict(whole, id=new_id))

    def fingerprint(self) -> str:
        """A digest of everything that decides a record's fields: a store indexed under
        another fingerprint is indexed again."""
        text = f"{policy_json(self)}\0{REDACTION_VERSION}"
        if self.seals:  # a new key seals every CONFIDENTIAL note anew
            text += f"\0{self.sealer.key_id if self.sealer else 'no key'}"
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def record_type(self, key: str, extension: str, frontmatter: Mapping[str, Any]) -> str:
        """The first type rule that matches, else the fallback type."""
        for rule in self.type_rules:
            if rule.matches(key, extension, frontmatter):
                return rule.record_type
        return self.fallback_type


def opened(record: Mapping[str, Any], sealer: Sealer, where: str) -> dict[str, Any]:
    """The record with its sealed fields back in place (and no `sealed`); the record as
    it is when it has none. SealError or SealKeyError (naming `where`) when they do not
    open: all of the text, or none of it."""
    if SEALED not in record:
        return dict(record)
    hidden = sealer.open(record[SEALED], record.get("id"), record.get("blake3"), where)
    rec = {k: v for k, v in record.items() if k != SEALED}
    rec.update(hidden)
    return rec


# --- as JSON, for a child process (the mirror's flusher) ---------------------------

_POLICY_KEYS = frozenset(f.name for f in fields(IndexPolicy)) - {"sealer"}
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
        "confidential_text": policy.confidential_text,
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
        confidential_text=_choice(doc["confidential_text"], CONFIDENTIAL_TEXT, "confidential_text"),
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


def _choice(value: object, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ValueError(f"{where} must be one of {', '.join(choices)}, not {value!r:.60}")
    return str(value)


def _typed(value: object, kind: type[_T], where: str) -> _T:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"{where} must be a JSON {_JSON_NAMES[kind]}, not {value!r:.60}")
    return value


_JSON_NAMES: dict[type, str] = {int: "integer", str: "string", list: "array", dict: "object"}
