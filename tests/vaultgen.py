#!/usr/bin/env python3
"""Synthetic Obsidian vaults with their ground truth, for ccc-watch's own tests.

    python tests/vaultgen.py build DIR [--notes N] [--seed S] [--bad] [--body-kb K]
        Writes a vault into DIR and its truth into DIR.truth.json beside it.
    python tests/vaultgen.py churn DIR [--ops N] [--seed S] [--sleep MS] [--log FILE]
        Applies N random edits to a vault the way editors, users and sync tools make
        them; with --log, one JSON line per operation.

The truth says what a correct indexer must find in every file. It is worked out here
from how Obsidian reads a vault and from the rules the README documents (record types,
ignore rules, default classification, the note size limit), never from ccc_watch: this
module does not import it. ../shared/tools/make_vault.py is a second, independent
generator; the tests compare the project against both when ../shared is present.

The truth maps each vault-relative path (POSIX separators, Unicode NFC) to:
    kind            note | data | attachment | bad (a file made to be awkward) |
                    symlink (reported, never followed) | skipped (a name that is not
                    UTF-8: reported, never indexed)
    size, blake3    of the bytes on disk (for a file symlink, its target's); None for
                    symlinks and skipped names
    frontmatter     valid | invalid (present but not a YAML mapping) | absent
    classification  the frontmatter's level, else INTERNAL (the documented default);
                    for a block that does not parse, the most private of INTERNAL and
                    the levels its text names (README "Privacy")
    record_type     by the README's rules, first match wins
    path_type       the type the path alone gives, when a frontmatter key gave another
                    (a SECRET note keeps only that one: README "Privacy")
    tags            sorted, without '#', frontmatter and body together
    links           sorted link targets as written (URL-decoded, without alias, heading
                    or block), never from code, comments or external URLs
    resolved        sorted [target, the path Obsidian opens, or None when broken]
    tasks_open, tasks_done
    problem         why a Bad/ file is special: binary | huge | not_utf8 | unreadable,
                    or None when it is only awkward (its record carries no error)
    disk            the name on disk when it is not the key (a name written in NFD)
    symlink         folder | outside | dangling for a symlink entry; for a file
                    symlink to a note of the vault, the key of that note
Bad/ entries carry only the fields that are certain. "Bad/unreadable.md" is
unreadable only for a user other than root: its `problem` says what this user gets.
Everything in IGNORED is written too, and belongs to no index.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote

Truth = dict[str, dict[str, Any]]

WORDS = (
    *("river", "copper", "lantern", "meadow", "signal", "harbor", "quartz", "ember"),
    *("orchard", "compass", "thistle", "granite", "willow", "beacon", "canyon", "saffron"),
    *("tundra", "violet", "falcon", "mosaic", "pylon", "ripple", "cobalt", "juniper"),
    *("sparrow", "basalt", "cinder", "fjord", "glacier", "hazel"),
)
PROJECTS = ("Alpha", "Borealis", "Cedar")
CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET")
DEFAULT_CLASSIFICATION = "INTERNAL"  # README: `default_classification`
MAX_NOTE_BYTES = 8 * 1024 * 1024  # README: `max_note_bytes`

# Folders notes go to, the record type their path alone gives (README: "template" in the
# path, "log" as a word, "prompt"; else Metadata), and how often they are picked. Blog
# and Catalog hold "log" inside a word, which is no Log.
FOLDERS: tuple[tuple[str, str, int], ...] = (
    ("Logs", "Log", 3),
    ("Templates", "Template", 1),
    ("Prompts", "AgentPrompt", 1),
    ("Research", "Metadata", 3),
    ("Projects", "Metadata", 3),
    ("Blog", "Metadata", 1),
    ("Catalog", "Metadata", 1),
    ("Q&A", "Metadata", 1),
    ("", "Metadata", 1),
)

# Obsidian's "Excluded files": a path prefix and a /regex/ searched in the path.
APP_JSON = {"userIgnoreFilters": ["Archive/Excluded/", "/\\.private\\.md$/"]}
CCCIGNORE = "Scratch/\n*.bak\n"
# Written into every vault; none of them is content.
IGNORED: dict[str, bytes] = {
    ".obsidian/app.json": json.dumps(APP_JSON).encode(),
    ".obsidian/workspace.json": b'{"main": {"type": "split"}}\n',
    ".obsidian/plugins/sample/main.js": b"module.exports = {};\n",
    ".trash/Old note.md": b"# trashed in Obsidian\n[[Note 00000]] #trashed\n",
    ".git/HEAD": b"ref: refs/heads/main\n",
    ".cccignore": CCCIGNORE.encode(),
    ".hidden note.md": b"# a dot-file\n",
    ".DS_Store": b"\x00\x00\x00\x01Bud1",
    "Projects/.DS_Store": b"\x00\x00\x00\x01Bud1",
    "Research/Thumbs.db": b"\xd0\xcf\x11\xe0",
    "Research/4913": b"",
    "Research/.swap note.md.swp": b"b0VIM 9.0",
    "Projects/draft.md~": b"# a backup copy\n",
    "Archive/Excluded/hidden.md": b"# excluded by userIgnoreFilters\n",
    "Archive/Excluded/Deeper/also.md": b"# excluded too\n",
    "Projects/plan.private.md": b"# excluded by a /regex/ filter\n",
    "Scratch/wip.md": b"# excluded by .cccignore\n",
    "Projects/export.bak": b"excluded by .cccignore\n",
}


def words(rng: random.Random, n: int) -> str:
    """n random words."""
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _title(i: int) -> tuple[str, bool]:
    """Note i's title, and whether its file name is written in NFD on disk."""
    kind = i % 19
    if kind == 5:
        return f"Café ☕ {i:05d}", False
    if kind == 11:
        return f"R&D plan {i:05d}", False
    if kind == 13:
        return f"🗂️ Map {i:05d}", False
    if kind == 17:
        return f"Résumé {i:05d}", True
    return f"Note {i:05d}", False


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


class _Body:
    """The lines of a note's body and what Obsidian finds in them."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.lines: list[str] = []
        self.links: list[str] = []
        self.resolved: list[list[str | None]] = []
        self.tags: set[str] = set()
        self.open = 0
        self.done = 0

    def link(self, target: str, resolved: str | None) -> None:
        self.links.append(target)
        self.resolved.append([target, resolved])

    def facts(self) -> dict[str, Any]:
        return {
            "links": sorted(self.links),
            "resolved": sorted(self.resolved, key=lambda r: (r[0] or "", r[1] or "")),
            "tasks_open": self.open,
            "tasks_done": self.done,
        }


class _Vault:
    """Writes files under root and keeps the truth of each."""

    def __init__(self, root: Path, body_kb: int = 0) -> None:
        self.root = root
        self.body_kb = body_kb
        self.nfd: set[str] = set()  # keys whose file name is written in NFD
        self.truth: Truth = {}
        self.notes: list[tuple[str, str]] = []  # (title, key) of every generated note
        self.attachments: list[str] = []

    def write(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def put(self, key: str, data: bytes, disk: str | None = None, **facts: Any) -> None:
        self.write(disk or key, data)
        self.truth[key] = dict(facts, size=len(data), blake3=_blake3(data))
        if disk is not None:
            self.truth[key]["disk"] = disk


def _blake3(data: bytes) -> str:
    from blake3 import blake3  # a dependency of the project, so of its tests too

    return str(blake3(data).hexdigest())


# --------------------------------------------------------------------------- notes


def _a_link(rng: random.Random, body: _Body, v: _Vault) -> str:
    """One link in one of the ways Obsidian reads them; its truth goes to body."""
    roll = rng.randrange(24)
    if roll == 0:
        target = f"Missing {len(v.truth):05d}-{len(body.links)}"
        body.link(target, None)
        return f"[[{target}]]"
    if roll == 1:  # a heading of the note itself
        body.link("", body.key)
        return "[[#Heading]]"
    if roll in (2, 3) and v.attachments:
        key = rng.choice(v.attachments)
        if roll == 2:
            name = key.rsplit("/", 1)[-1]
            body.link(name, key)
            return f"![[{name}]]"
        body.link(key, key)
        return f"![{words(rng, 1)}]({quote(key)})"
    title, key = rng.choice(v.notes)
    style = rng.randrange(11)
    path_no_ext = key.removesuffix(".md")
    target, text = {
        0: (title, f"[[{title}]]"),
        1: (title, f"[[{title}|{words(rng, 2)}]]"),
        2: (title, f"[[{title}#Heading {rng.randint(1, 3)}]]"),
        3: (title, f"[[{title}#^blk{rng.randrange(100)}]]"),
        4: (title, f"![[{title}]]"),
        5: (title.lower(), f"[[{title.lower()}]]"),  # Obsidian ignores case
        6: (f"{title}.md", f"[[{title}.md]]"),
        7: (path_no_ext, f"[[{path_no_ext}|{words(rng, 1)}]]"),
        8: (key, f"[{words(rng, 2)}]({quote(key)})"),
        9: (key, f"[{words(rng, 2)}](<{key}>)"),
        10: (key, f"[{words(rng, 1)}]({quote(key)}#{quote('Some heading')})"),
    }[style]
    body.link(target, key)
    return text


def _inline_tag(rng: random.Random) -> str:
    roll = rng.randrange(4)
    if roll == 0:
        return f"{rng.choice(WORDS)}/{rng.choice(WORDS)}"
    if roll == 1:
        return f"{rng.choice(WORDS)}/{rng.choice(WORDS)}/{rng.choice(WORDS)}"
    if roll == 2:
        return f"{rng.choice(WORDS)}-{rng.randrange(10)}_{rng.choice(WORDS)}"
    return rng.choice(WORDS)


# Text in which Obsidian finds no link, tag or task: code, comments, URLs, numbers.
_DISTRACTORS: tuple[tuple[str, ...], ...] = (
    ("```", "[[Fenced Link]] #fenced-tag", "- [ ] fenced task", "```"),
    ("~~~python", "x = '[[Tilde Link]]'  # not-a-tag", "- [x] tilde task", "~~~"),
    ("Use `[[Inline Code Link]]` and `#inline-code` and ``a `#b` [[c]]`` here.",),
    ("Before <!-- [[Hidden Link]] #hidden-tag --> after.",),
    ("<!--", "[[Hidden Block Link]] #hidden-block", "- [ ] hidden task", "-->"),
    ("Text %% [[Comment Link]] #comment-tag %% text.",),
    ("%%", "[[Comment Block Link]]", "- [x] commented task #commented", "%%"),
    ("Issue#12, https://example.com/page#anchor, #2024 and [a site](https://example.com/x).",),
    ("A [bare bracket], an empty [[]], [no target]() and [mail](mailto:a@example.com).",),
)
_INDENTED = ("    [[Indented Link]] #indented-tag", "    - [ ] indented task")


def _frontmatter(
    rng: random.Random, i: int, title: str, markers: list[str]
) -> tuple[list[str], dict[str, Any]]:
    """A valid YAML block (its lines) and what Obsidian reads from it."""
    lines = ["---", f"title: {json.dumps(title, ensure_ascii=False)}"]
    lines.append(f"created: 2025-{i % 12 + 1:02d}-{i % 28 + 1:02d}")
    facts: dict[str, Any] = {"classification": DEFAULT_CLASSIFICATION, "tags": []}
    if rng.random() < 0.85:
        level = rng.choice(CLASSIFICATIONS)
        lines.append(f"classification: {level}")
        facts["classification"] = level
    tags = sorted(
        {
            rng.choice(WORDS) if rng.random() < 0.7 else _inline_tag(rng)
            for _ in range(rng.randrange(4))
        }
    )
    form = rng.randrange(4)
    if tags and form == 0:
        lines += ["tags:"] + [f"  - {t}" for t in tags]
    elif tags and form == 1:
        lines.append(f"tags: [{', '.join(tags)}]")
    elif tags and form == 2:
        tags = tags[:1]
        lines.append(f"tags: {tags[0]}")
    elif form == 3:
        tags = []
        lines.append("tags: []")
    else:
        tags = []
    facts["tags"] = tags
    if rng.random() < 0.5:
        lines += ["aliases:", f"  - N{i}", f"  - {json.dumps(title.lower(), ensure_ascii=False)}"]
    if rng.random() < 0.05:
        lines.append(f"id: note-{i:05d}-own-id")
    for _ in range(rng.randrange(4)):
        lines += rng.choice(_PROPERTIES).split("\n")
    if "timestamp" in markers:
        lines.append(f"timestamp: 2026-01-{i % 28 + 1:02d}T10:30:00Z")
    if "system_prompt" in markers:
        lines += ["system_prompt: |", "  You summarise notes.", "  Be brief."]
    lines.append("---")
    return lines, facts


# Properties seen in real vaults, for variety in what the YAML loaders must agree on.
# Each key appears once per block: a later pick of the same property is skipped.
_PROPERTIES = (
    "rating: 4",
    "done: true",
    "draft: no",
    "due: 2026-01-02",
    "at: 2026-01-02T10:30:00Z",
    "meeting: '12:30'",
    "duration: 12:30",
    "url: https://example.com/a?b=c#frag",
    "ratio: 0.75",
    "big: 1e3",
    "octal: 010",
    "hex: 0x1F",
    "nothing: ~",
    "empty:",
    "cssclasses:\n  - wide\n  - cards",
    "owner:\n  name: Ana\n  budget: 1200",
    "summary: >\n  folded line one\n  folded line two",
    "steps: |\n  first step\n  second step",
    'quoted: "colon: inside, and a # too"',
    "emoji: 🗂️ hub",
    "people: [{name: Ana, role: lead}, {name: Bo}]",
    "version: 1.10",
    "delta: -0.5",
    "limit: .inf",
    "count: 1_000",
    "base: &base {x: 1}\nderived:\n  <<: *base\n  y: 2",
    "yes_no: [yes, No, on, OFF]",
    "path: C:\\Users\\ana",
    "weird key with spaces: value",
    "'quoted key': 1",
)

_BROKEN_FRONTMATTER = (
    ("tags: [one, two", "classification: SECRET"),  # an unclosed flow sequence
    ("title: tabs", "\tnested: value"),  # a tab where YAML wants spaces
    ("- a list", "- not a mapping"),
    ("only a sentence, not a mapping",),
    ("title: a: b", "timestamp: 2026-01-01"),  # a marker in a block nobody can read
    ('title: "unterminated', "classification: PUBLIC"),
)


def _note(rng: random.Random, v: _Vault, i: int, title: str, key: str, path_type: str) -> None:
    """Write note i and its truth."""
    body = _Body(key)
    markers: list[str] = []
    if path_type == "Metadata" and rng.random() < 0.06:
        markers.append(rng.choice(("timestamp", "system_prompt")))
    shape = rng.random()
    fm_lines: list[str] = []
    facts: dict[str, Any] = {}
    if shape < 0.80:
        fm_lines, facts = _frontmatter(rng, i, title, markers)
        facts["frontmatter"] = "valid"
        fm_lines = _dedupe(fm_lines)  # one key per block, as in a real note
    elif shape < 0.87:
        fm_lines = ["---", *rng.choice(_BROKEN_FRONTMATTER), "---"]
        facts = {"frontmatter": "invalid", "tags": []}
        markers = []
    else:
        facts = {"frontmatter": "absent", "classification": DEFAULT_CLASSIFICATION, "tags": []}
        markers = []
        absent = rng.randrange(6)
        if absent == 0:  # not on the first line: Obsidian reads no properties
            fm_lines = ["", "---", "title: late", "classification: SECRET", "---"]
        elif absent == 1:  # never closed: the whole file is the body
            fm_lines = ["---", "title: never closed", ""]
    record_type = path_type
    if path_type not in ("Template", "Log") and "timestamp" in markers:
        record_type = "Log"
    elif path_type == "Metadata" and "system_prompt" in markers:
        record_type = "AgentPrompt"

    lines = body.lines
    lines += [f"# {title}", "", words(rng, rng.randint(8, 30)), ""]
    for _ in range(rng.randint(0, 7)):
        prefix = "> " if rng.random() < 0.1 else ""
        lines.append(
            f"{prefix}{words(rng, rng.randint(1, 6))} {_a_link(rng, body, v)} "
            f"{words(rng, rng.randint(0, 4))}".rstrip()
        )
    lines.append("")
    if rng.random() < 0.5:  # an indented code block: after a paragraph and a blank line
        lines += [words(rng, 5), "", *_INDENTED, ""]
    for block in rng.sample(_DISTRACTORS, rng.randint(1, 4)):
        lines += [*block, ""]
    if rng.random() < 0.15:
        title_, key_ = rng.choice(v.notes)
        row = f"| {words(rng, 1)} | [[{title_}\\|see]] |"  # '\\|': a '|' inside a table cell
        lines += ["| what | where |", "| --- | --- |", row, ""]
        body.link(title_, key_)
    if rng.random() < 0.2:
        tag = _inline_tag(rng)
        lines += [f"## Section #{tag}", ""]
        body.tags.add(tag)
    inline = sorted({_inline_tag(rng) for _ in range(rng.randrange(3))})
    if inline:
        lines += [f"{words(rng, 3)} {' '.join('#' + t for t in inline)}", ""]
        body.tags.update(inline)
    bullets = ("- [ ] ", "* [ ] ", "1. [ ] ", "+ [ ] ")
    checked = ("- [x] ", "- [X] ", "2. [x] ")
    for _ in range(rng.randint(0, 3)):
        lines.append(rng.choice(bullets) + words(rng, 4))
        body.open += 1
        if rng.random() < 0.2:
            lines.append("    - [ ] " + words(rng, 2) + " #todo")
            body.open += 1
            body.tags.add("todo")
    for _ in range(rng.randint(0, 2)):
        lines.append(rng.choice(checked) + words(rng, 4))
        body.done += 1
    lines += ["", "Not tasks: -[ ] squeezed, [ ] unbulleted, - [] empty.", ""]
    if v.body_kb:
        lines.append(words(rng, v.body_kb * 1024 // 7))

    facts["tags"] = sorted(set(facts["tags"]) | body.tags)
    text = "\n".join(fm_lines + lines) + "\n"
    encoding = rng.random()
    if encoding < 0.06:
        text = text.replace("\n", "\r\n")
    elif encoding < 0.09:
        text = "\ufeff" + text.replace("\n", "\r\n")
    elif encoding < 0.12:
        text = "\ufeff" + text
    if facts["frontmatter"] == "invalid":
        facts["classification"] = broken_level("\n".join(fm_lines))
    disk = unicodedata.normalize("NFD", key) if key in v.nfd else None
    v.put(
        key, text.encode(), disk=disk, kind="note", record_type=record_type, **facts, **body.facts()
    )
    if record_type != path_type:
        v.truth[key]["path_type"] = path_type


def broken_level(block: str) -> str:
    """README "Privacy": the level of a note whose frontmatter block does not parse is the
    most private of the default and every level its text names, on a classification
    line or as a word that starts with secret or confidential."""
    named = [DEFAULT_CLASSIFICATION]
    for line in block.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == "classification":
            named += [w.upper() for w in re.findall(r"(?i)\b(?:public|internal)", value)]
    named += [w.upper() for w in re.findall(r"(?i)\b(?:secret|confidential)", block)]
    return max(named, key=CLASSIFICATIONS.index)


def _dedupe(lines: list[str]) -> list[str]:
    """Drop repeated top-level properties (and their indented lines) from a block."""
    out: list[str] = []
    seen: set[str] = set()
    skipping = False
    for line in lines:
        top = line[:1] not in (" ", "-", "\t") and ":" in line
        if top:
            name = line.split(":", 1)[0]
            skipping = name in seen
            seen.add(name)
        elif line == "---":
            skipping = False
        if not skipping:
            out.append(line)
    return out


def _hand_note(
    v: _Vault,
    key: str,
    text: str,
    record_type: str,
    *,
    frontmatter: str = "absent",
    classification: str = DEFAULT_CLASSIFICATION,
    tags: tuple[str, ...] = (),
    links: tuple[tuple[str, str | None], ...] = (),
    tasks: tuple[int, int] = (0, 0),
    kind: str = "note",
    **extra: Any,
) -> None:
    """A note written by hand, with its truth spelled out beside it."""
    body = _Body(key)
    for target, resolved in links:
        body.link(target, resolved)
    body.open, body.done = tasks
    facts = dict(body.facts(), frontmatter=frontmatter, tags=sorted(tags), **extra)
    facts["classification"] = classification
    if frontmatter == "invalid":
        facts["classification"] = broken_level(text.split("\n---", 1)[0])
    v.put(key, text.encode(), kind=kind, record_type=record_type, **facts)


def _fixed_notes(v: _Vault) -> None:
    """Notes every vault has: the record-type rules' edges, and a way in."""
    some = v.notes[:8]
    _hand_note(
        v,
        "Welcome.md",
        "# Welcome\nStart at [[index]] or the [map](Maps/index.md). #start\n",
        "Metadata",
        tags=("start",),
        links=(("index", "Maps/index.md"), ("Maps/index.md", "Maps/index.md")),
    )
    _hand_note(
        v,
        "Maps/index.md",
        "---\ntitle: Map of the vault\nclassification: PUBLIC\n---\n# Index\n"
        + "".join(f"- [[{title}]]\n" for title, _ in some),
        "Index",
        frontmatter="valid",
        classification="PUBLIC",
        links=tuple((title, key) for title, key in some),
    )
    _hand_note(
        v,
        "Projects/Alpha/moc.md",
        "# Alpha\n[[Welcome]]\n",
        "Index",
        links=(("Welcome", "Welcome.md"),),
    )
    # "template" comes first: a template whose name says log is a Template.
    _hand_note(
        v,
        "Templates/Daily log.md",
        "---\ntitle: '{{date}}'\ntags: [daily]\n---\n# {{date:YYYY-MM-DD}}\n- [ ] plan the day\n",
        "Template",
        frontmatter="valid",
        tags=("daily",),
        tasks=(1, 0),
    )
    # "log" comes before "prompt" (and before the system_prompt key).
    _hand_note(
        v,
        "Prompts/Log review.md",
        "---\nsystem_prompt: Review the log.\n---\nReview [[Welcome]].\n",
        "Log",
        frontmatter="valid",
        links=(("Welcome", "Welcome.md"),),
    )
    _hand_note(v, "Blog/Changelog.md", "# Changelog\n- 1.0 first release\n", "Metadata")
    _hand_note(v, "Research/Field log.md", "# Field log\nwind and rain\n", "Log")
    _hand_note(
        v,
        "Research/Reading notes.md",
        "---\ntimestamp: 2026-01-02T08:00:00Z\nclassification: CONFIDENTIAL\n---\nprivate text\n",
        "Log",
        frontmatter="valid",
        classification="CONFIDENTIAL",
    )
    _hand_note(
        v,
        "Research/Agent brief.md",
        "---\nsystem_prompt: |\n  You are a careful reader.\nclassification: SECRET\n---\n"
        "- [x] written\n",
        "AgentPrompt",
        frontmatter="valid",
        classification="SECRET",
        tasks=(0, 1),
        path_type="Metadata",
    )
    # Neither is under "Archive/Excluded/", the prefix Obsidian excludes.
    _hand_note(v, "Archive/kept.md", "# kept\n", "Metadata")
    _hand_note(v, "Archive/Excluded notes.md", "# a prefix is not a folder\n", "Metadata")


def _data_and_attachments(rng: random.Random, v: _Vault, notes: int) -> None:
    for i in range(max(1, notes // 50)):
        record = {"id": i, "value": words(rng, 3), "tags": ["#not-a-tag"]}
        v.put(
            f"Data/record-{i:04d}.json",
            (json.dumps(record) + "\n").encode(),
            kind="data",
            record_type="StructuredData",
        )
        v.put(
            f"Data/settings-{i:04d}.yaml",
            f"id: {i}\nlink: '[[Not A Link]]'\n".encode(),
            kind="data",
            record_type="StructuredData",
        )
        v.put(
            f"Data/feed-{i:04d}.yml",
            f"- {words(rng, 2)}\n".encode(),
            kind="data",
            record_type="StructuredData",
        )
    # The path rules come before the extension: a log's JSON is a Log.
    v.put("Logs/runs/run-0001.json", b'{"ok": true}\n', kind="data", record_type="Log")
    v.put("Data/prompt-library.yaml", b"greet: hello\n", kind="data", record_type="AgentPrompt")
    for i in range(max(1, notes // 100)):
        key = f"Attachments/image-{i:04d}.png"
        v.put(
            key,
            b"\x89PNG\r\n\x1a\n" + rng.randbytes(1024),
            kind="attachment",
            record_type="Metadata",
        )
        v.attachments.append(key)
    for i in range(max(1, notes // 200)):
        key = f"Attachments/Diagrams/diagram-{i:04d}.svg"
        svg = f'<svg xmlns="http://www.w3.org/2000/svg"><text>[[{i}]] #{i}x</text></svg>\n'
        v.put(key, svg.encode(), kind="attachment", record_type="Metadata")
        v.attachments.append(key)
    v.put(
        "Projects/Alpha/spec-0001.pdf",
        b"%PDF-1.4\n" + rng.randbytes(512),
        kind="attachment",
        record_type="Metadata",
    )
    v.attachments.append("Projects/Alpha/spec-0001.pdf")


def _bad_files(rng: random.Random, v: _Vault) -> None:
    """Files a real vault holds sooner or later. Each must get a record (with the reason
    when it is special) or a report; none may stop the indexer."""
    first, first_key = v.notes[0] if v.notes else ("Welcome", "Welcome.md")
    plain = {"record_type": "Metadata", "tasks": (0, 0)}
    link = ((first, first_key),)

    def bad(key: str, text: str | bytes, **facts: Any) -> None:
        data = text.encode() if isinstance(text, str) else text
        facts.setdefault("problem", None)
        if "frontmatter" in facts:
            _hand_note(v, key, data.decode("utf-8", "replace"), kind="bad", **{**plain, **facts})
            v.truth[key].update(size=len(data), blake3=_blake3(data))
            v.write(key, data)
        else:
            v.put(key, data, kind="bad", **facts)

    bad(
        "Bad/broken-flow.md",
        f"---\ntitle: broken\ntags: [one, two\nclassification: SECRET\n---\n"
        f"# Broken\nSee [[{first}]] #survives\n",
        frontmatter="invalid",
        tags=("survives",),
        links=link,
    )
    bad("Bad/tabs.md", "---\ntitle: tabs\n\tnested: value\n---\nbody\n", frontmatter="invalid")
    bad("Bad/sequence.md", "---\n- one\n- two\n---\nbody\n", frontmatter="invalid")
    bad("Bad/scalar.md", "---\njust words\n---\nbody\n", frontmatter="invalid")
    bad(
        "Bad/never-closed.md",
        "---\ntitle: open\n\n# Heading\n- [ ] still a task\n",
        frontmatter="absent",
        tasks=(1, 0),
    )
    bad(
        "Bad/late-frontmatter.md",
        "\n---\nclassification: SECRET\n---\nbody #late\n",
        frontmatter="absent",
        tags=("late",),
    )
    bad(
        "Bad/bom-crlf.md",
        f"\ufeff---\r\ntitle: bom\r\nclassification: CONFIDENTIAL\r\ntags: [crlf]\r\n---\r\n"
        f"body #crlf-body [[{first}]]\r\n- [x] done\r\n",
        frontmatter="valid",
        classification="CONFIDENTIAL",
        tags=("crlf", "crlf-body"),
        links=link,
        tasks=(0, 1),
    )
    bad(
        "Bad/bom.md",
        "\ufeff---\ntitle: bom\nclassification: PUBLIC\n---\n- [ ] open\n",
        frontmatter="valid",
        classification="PUBLIC",
        tasks=(1, 0),
    )
    bad(
        "Bad/crlf.md",
        "---\r\ntags:\r\n  - crlf/nested\r\n---\r\n#crlf-inline\r\n",
        frontmatter="valid",
        tags=("crlf/nested", "crlf-inline"),
    )
    bad(
        "Bad/only-frontmatter.md",
        "---\ntitle: bare\nclassification: SECRET\n---",
        frontmatter="valid",
        classification="SECRET",
    )
    bad("Bad/empty.md", b"", frontmatter="absent")
    # Not UTF-8 (Latin-1): read with replacement characters, and still parsed.
    latin1 = f"---\ntitle: latin-1\n---\ncaf\xe9 cr\xe8me [[{first}]] #latin1\n".encode("latin-1")
    bad(
        "Bad/not-utf8.md",
        latin1,
        frontmatter="valid",
        tags=("latin1",),
        links=link,
        problem="not_utf8",
    )
    v.truth["Bad/not-utf8.md"].update(size=len(latin1), blake3=_blake3(latin1))
    v.write("Bad/not-utf8.md", latin1)
    bad(
        "Bad/binary.md",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 16 + rng.randbytes(4096),
        problem="binary",
        record_type="Metadata",
    )
    line = b"lorem ipsum [[Nowhere]] #huge\n"
    huge = b"---\ntitle: huge\n---\n" + line * (MAX_NOTE_BYTES // len(line) + 1000)
    bad("Bad/huge.md", huge, problem="huge", record_type="Metadata")
    # Nine nested aliases of nine: a billion entries if anyone expands them.
    bomb = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    bad(
        "Bad/yaml-aliases.md",
        "---\n" + "\n".join(bomb) + "\n---\nbody #bomb\n",
        record_type="Metadata",
        tags=["bomb"],
        links=[],
        tasks_open=0,
        tasks_done=0,
    )
    bad(
        "Bad/deep-nesting.md",
        "---\na: " + "[" * 3000 + "]" * 3000 + "\n---\nbody #deep\n",
        record_type="Metadata",
        tags=["deep"],
        links=[],
        tasks_open=0,
        tasks_done=0,
    )
    # Long runs of what opens links, tags and code; the fence run comes last.
    runs = "[" * 65536 + "\n" + "#" * 65536 + "\n" + "[[" * 20000 + "\n" + "[a](" * 10000 + "\n"
    bad("Bad/long-runs.md", runs + "`" * 4097 + "\n", frontmatter="absent")
    for key in (
        "Bad/odd #name [1] & (copy) {x}.md",
        "Bad/#leading hash.md",
        "Bad/[[brackets]] in name.md",
        "Bad/newline\nin name.md",
        "Bad/" + "ü" * 126 + ".md",  # 255 bytes, the longest name most systems allow
        "Bad/" + "/".join(f"d{n}" for n in range(30)) + "/deep.md",
    ):
        bad(key, "# odd name\n", frontmatter="absent")
    nfc = "Bad/Crème brûlée (NFD).md"
    bad(nfc, "# decomposed name\n", frontmatter="absent")
    (v.root / nfc).rename(v.root / unicodedata.normalize("NFD", nfc))
    v.truth[nfc]["disk"] = unicodedata.normalize("NFD", nfc)

    path = v.root / "Bad" / "unreadable.md"
    bad("Bad/unreadable.md", f"# locked\n[[{first}]]\n", frontmatter="absent", links=link)
    path.chmod(0)
    try:
        path.open("rb").close()
    except PermissionError:  # root reads it anyway
        for field in (
            "frontmatter",
            "classification",
            "tags",
            "links",
            "resolved",
            "tasks_open",
            "tasks_done",
        ):
            v.truth["Bad/unreadable.md"].pop(field)
        v.truth["Bad/unreadable.md"]["problem"] = "unreadable"

    def symlink(key: str, target: str, what: str) -> None:
        os.symlink(target, v.root / key)
        v.truth[key] = {"kind": "symlink", "symlink": what, "size": None, "blake3": None}

    symlink("Bad/loop", "..", "folder")
    symlink("Bad/projects-link", "../Projects", "folder")
    outside = v.root.parent / f"{v.root.name}.outside.md"
    outside.write_text("# outside the vault\n")
    symlink("Bad/outside.md", f"../../{outside.name}", "outside")
    symlink("Bad/dangling.md", "nowhere.md", "dangling")
    os.symlink("../Maps/index.md", v.root / "Bad" / "shortcut.md")
    shortcut = dict(v.truth["Maps/index.md"], record_type="Metadata", symlink="Maps/index.md")
    v.truth["Bad/shortcut.md"] = shortcut
    # A name that is not UTF-8 (Linux allows it; macOS refuses it).
    raw = b"Bad/caf\xe9 latin-1.md"
    try:
        with open(os.path.join(os.fsencode(v.root), raw), "wb") as f:
            f.write(b"# latin-1 name\n")
    except OSError:
        return
    v.truth[os.fsdecode(raw)] = {"kind": "skipped", "size": None, "blake3": None}


# --------------------------------------------------------------------------- build


def build(root: Path, notes: int, seed: int, bad: bool = False, body_kb: int = 0) -> Truth:
    """Write a vault of `notes` generated notes (plus the fixed ones, data files,
    attachments, ignored files and, with bad, the Bad/ folder) into root, replacing
    what was there; return its truth."""
    root = Path(root)
    rng = random.Random(seed)
    if root.exists() or root.is_symlink():
        _rmtree(root)
    root.mkdir(parents=True)
    v = _Vault(root, body_kb)
    plan: list[tuple[int, str, str]] = []
    for i in range(notes):
        folder, path_type, _ = rng.choices(FOLDERS, [w for *_, w in FOLDERS])[0]
        if folder == "Logs":
            folder = f"Logs/{2021 + i % 5}/{i % 12 + 1:02d}"
        elif folder == "Projects" and rng.random() < 0.3:
            folder = f"Projects/{rng.choice(PROJECTS)}"
        title, nfd = _title(i)
        key = f"{folder}/{title}.md" if folder else f"{title}.md"
        v.notes.append((title, key))
        if nfd:
            v.nfd.add(key)
        plan.append((i, key, path_type))
    _data_and_attachments(rng, v, notes)
    for i, key, path_type in plan:
        _note(rng, v, i, v.notes[i][0], key, path_type)
    _fixed_notes(v)
    for rel, data in IGNORED.items():
        v.write(rel, data)
    if bad:
        _bad_files(rng, v)
    return {_nfc(k): t for k, t in sorted(v.truth.items())}


def _rmtree(root: Path) -> None:
    """Remove a vault this module made, unreadable files and all."""
    for folder, _dirs, _files in os.walk(root):
        os.chmod(folder, 0o755)
    shutil.rmtree(root)


# --------------------------------------------------------------------------- churn

CHURN_OPS = {  # operation: weight
    "create": 18,
    "modify": 20,
    "append": 12,
    "truncate_write": 6,  # Obsidian's in-place save
    "touch": 4,
    "delete": 9,
    "rename": 8,
    "case_rename": 2,
    "move": 5,  # to another folder
    "atomic_save": 6,  # a hidden temp file renamed over the note
    "editor_temp_save": 4,  # n.md.tmp-K, a visible temp name, renamed over the note
    "vim_save": 3,  # n.md -> n.md~, write n.md, unlink n.md~
    "nested_create": 2,  # mkdir -p a/b/c and a file at once
    "move_dir": 3,
}


def _content_notes(root: Path) -> list[str]:
    """The notes churn may touch: outside dot-folders and Bad/, sorted."""
    out = []
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not (rel == "." and d == "Bad")
        )
        for name in files:
            if name.endswith(".md") and not name.startswith("."):
                out.append(os.path.normpath(os.path.join(rel, name)))
    return sorted(out)


def _text(rng: random.Random, k: int) -> str:
    target = rng.choice(("Welcome", "Note 00001", f"Missing churn {k}"))
    level = rng.choice(CLASSIFICATIONS)
    body = f"# edit {k}\n{words(rng, 10)} [[{target}]] #edit{k % 7}\n- [ ] task {k}\n"
    return f"---\ntags: [churn]\nclassification: {level}\n---\n{body}"


def churn(root: Path, ops: int, seed: int, sleep_ms: int = 0, log: Path | None = None) -> int:
    """Apply `ops` random operations to the vault at root; return how many ran."""
    rng = random.Random(seed)
    files = _content_notes(root)
    names = list(CHURN_OPS)
    weights = list(CHURN_OPS.values())
    logf = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115
    try:
        for k in range(ops):
            op = rng.choices(names, weights)[0]
            if not files and op != "nested_create":
                op = "create"
            rec = _apply(root, rng, files, op, seed, k)
            if logf is not None:
                logf.write(json.dumps(rec, ensure_ascii=False) + "\n")
                logf.flush()
            if sleep_ms:
                time.sleep(sleep_ms / 1000)
    finally:
        if logf is not None:
            logf.close()
    return ops


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _apply(
    root: Path, rng: random.Random, files: list[str], op: str, seed: int, k: int
) -> dict[str, Any]:
    """Apply one operation; keep `files` (the notes churn knows of) up to date."""
    rec: dict[str, Any] = {"op": op}
    if op in ("create", "nested_create"):
        folders = sorted({os.path.dirname(f) for f in files}) or [""]
        folder = "Churn" if rng.random() < 0.3 else rng.choice(folders)
        if op == "nested_create":
            folder = f"Churn/{seed}-{k:06d}/a/b/c"
        rel = os.path.join(folder, f"churn {seed}-{k:06d}.md")
        _write(root / rel, _text(rng, k))
        files.append(rel)
        rec["path"] = rel
        return rec
    if op == "move_dir":
        dirs = sorted({os.path.dirname(f) for f in files} - {""})
        if not dirs:
            return _apply(root, rng, files, "create", seed, k)
        src = rng.choice(dirs)
        dst = f"Moved/{seed}-{k:06d}"
        (root / "Moved").mkdir(exist_ok=True)
        os.rename(root / src, root / dst)
        files[:] = [dst + f[len(src) :] if f.startswith(src + "/") else f for f in files]
        rec.update(path=src, to=dst)
        return rec
    i = rng.randrange(len(files))
    rel = files[i]
    path = root / rel
    rec["path"] = rel
    if op == "modify":
        _write(path, _text(rng, k))
    elif op == "append":
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"\n{words(rng, 8)} #append{k % 5}\n")
    elif op == "truncate_write":
        with open(path, "r+b") as f:
            f.truncate(0)
            f.flush()
            f.write(_text(rng, k).encode())
    elif op == "touch":
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    elif op == "delete":
        path.unlink()
        files.pop(i)
    elif op in ("rename", "case_rename", "move"):
        if op == "rename":
            new = os.path.join(os.path.dirname(rel), f"renamed {seed}-{k:06d}.md")
        elif op == "case_rename":
            name = os.path.basename(rel)
            new = os.path.join(os.path.dirname(rel), name.swapcase().replace(".MD", ".md"))
        else:
            folders = sorted({os.path.dirname(f) for f in files} | {"Churn"})
            new = os.path.join(rng.choice(folders), f"moved {seed}-{k:06d}.md")
        if new != rel and not (root / new).exists():
            (root / new).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, root / new)
            files[i] = new
        rec["to"] = files[i]
    elif op == "atomic_save":
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(_text(rng, k), encoding="utf-8")
        os.replace(tmp, path)
    elif op == "editor_temp_save":
        tmp = path.with_name(f"{path.name}.tmp-{k}")
        tmp.write_text(_text(rng, k), encoding="utf-8")
        os.replace(tmp, path)
    elif op == "vim_save":
        backup = path.with_name(path.name + "~")
        os.replace(path, backup)
        path.write_text(_text(rng, k), encoding="utf-8")
        backup.unlink()
    return rec


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """`build` or `churn`, as the module docstring says."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write a vault and DIR.truth.json")
    b.add_argument("dir", type=Path)
    b.add_argument("--notes", type=int, default=300)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--bad", action="store_true")
    b.add_argument("--body-kb", type=int, default=0)
    c = sub.add_parser("churn", help="apply random edits to a vault")
    c.add_argument("dir", type=Path)
    c.add_argument("--ops", type=int, default=100)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--sleep", type=int, default=0, help="milliseconds after each operation")
    c.add_argument("--log", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "build":
        truth = build(a.dir, a.notes, a.seed, a.bad, a.body_kb)
        out = Path(os.path.normpath(a.dir) + ".truth.json")
        out.write_text(json.dumps(truth, indent=1, sort_keys=True))
        print(f"{len(truth)} entries in {a.dir}; truth in {out}")
    else:
        n = churn(a.dir, a.ops, a.seed, a.sleep, a.log)
        print(f"{n} operations applied to {a.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
