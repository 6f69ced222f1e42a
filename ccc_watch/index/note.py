"""Parse the text of an Obsidian note into the parsed fields of its index record.

Pure functions, no file I/O: the indexer decodes the bytes and calls `parse_note`,
which splits off the frontmatter (`frontmatter.py`) and scans the body (`body.py`).
The aim is to find what Obsidian shows, not what a generic Markdown parser would.
Tags are the frontmatter's and the body's together, sorted, and one tag whatever
its case, as in Obsidian: `MOC` and `moc` are one tag, spelled as it is most often in
the note (the first seen on a tie; frontmatter first). Links in frontmatter values are
not looked at.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ccc_watch.index.body import scan_body
from ccc_watch.index.frontmatter import (
    FrontmatterStatus,
    aliases,
    frontmatter_tags,
    parse_yaml,
    split_frontmatter,
    unclosed_block,
)

__all__ = ["ParsedNote", "parse_note", "split_frontmatter"]


class ParsedNote(NamedTuple):
    """The parsed fields of a note's index record (a tuple: made for every note, and
    a frozen dataclass of this many fields costs 3 µs to make)."""

    frontmatter: dict[str, Any]
    frontmatter_status: FrontmatterStatus
    frontmatter_error: str | None
    title: str | None
    aliases: list[str]
    tags: list[str]
    links: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    word_count: int
    headings: list[dict[str, Any]]
    blocks: list[dict[str, Any]]
    fields: list[dict[str, Any]]
    body: str = ""  # the text after the frontmatter block
    # The block's raw text, for the classification's fail-closed reading: the YAML, or
    # for a block never closed (`unclosed`) the text after its opening line.
    raw_frontmatter: str | None = None
    unclosed: bool = False


def parse_note(text: str) -> ParsedNote:
    """Parse the decoded text of a note into the fields of its index record."""
    yaml_text, body, body_line = split_frontmatter(text)
    unclosed = None if yaml_text is not None else unclosed_block(text)
    frontmatter: dict[str, Any] = {}
    status: FrontmatterStatus = "absent"
    error: str | None = None
    if yaml_text is not None:
        frontmatter, status, error = parse_yaml(yaml_text)
    scanned = scan_body(body, body_line)
    title = frontmatter.get("title")
    title = title.strip() if isinstance(title, str) else None
    spellings = dict.fromkeys(frontmatter_tags(frontmatter), 1)
    for tag, count in scanned.tags.items():
        spellings[tag] = spellings.get(tag, 0) + count
    return ParsedNote(
        frontmatter=frontmatter,
        frontmatter_status=status,
        frontmatter_error=error,
        title=title or scanned.title,
        aliases=aliases(frontmatter),
        tags=fold_tags(spellings),
        links=scanned.links,
        tasks=scanned.tasks,
        word_count=scanned.words,
        headings=scanned.headings,
        blocks=scanned.blocks,
        fields=scanned.fields,
        body=body,
        raw_frontmatter=yaml_text if unclosed is None else unclosed,
        unclosed=unclosed is not None,
    )


def fold_tags(spellings: dict[str, int]) -> list[str]:
    """One spelling per tag compared case-insensitively: the most used one, the first
    seen on a tie; sorted."""
    best: dict[str, tuple[str, int]] = {}
    for tag, count in spellings.items():
        folded = tag.lower()
        kept = best.get(folded)
        if kept is None or count > kept[1]:
            best[folded] = (tag, count)
    return sorted(tag for tag, _ in best.values())
