"""What the indexer keeps: classification levels, which of them are private, record-type
rules and the size limit for parsing. One IndexPolicy is shared by the indexer, the
store's writers and the mirror."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ccc_watch.config import Settings, parse_level

PRIVATE = frozenset({"CONFIDENTIAL", "SECRET"})  # their text never reaches a database
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

    def keeps_body(self, classification: str) -> bool:
        """Whether a note's body may be written to any database."""
        return classification not in self.private_classifications

    def classification(self, frontmatter: Mapping[str, Any]) -> str:
        """A note's level: its frontmatter's, else the default."""
        return parse_level(frontmatter.get("classification")) or self.default_classification

    def record_type(self, key: str, extension: str, frontmatter: Mapping[str, Any]) -> str:
        """The first type rule that matches, else the fallback type."""
        for rule in self.type_rules:
            if rule.matches(key, extension, frontmatter):
                return rule.record_type
        return self.fallback_type
