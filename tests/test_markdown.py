"""ccc_watch.index.note (frontmatter and body): what a note's text says, as Obsidian shows it.

Focused cases for every rule, then a ground truth: synthetic vaults from the project's
tests/vaultgen.py and (when ../shared is present) ../shared's independent make_vault.py,
whose every note must parse to exactly what the generator recorded.
"""

from __future__ import annotations

import json
import os
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from conftest import SOURCES, build_vault

from ccc_watch.index.classify import classify
from ccc_watch.index.note import ParsedNote, parse_note, split_frontmatter


def targets(note: ParsedNote) -> list[str]:
    return [link["target"] for link in note.links]


def only_link(text: str) -> dict[str, Any]:
    links = parse_note(text).links
    assert len(links) == 1, links
    return links[0]


# --------------------------------------------------------------------------- split


def test_split_without_frontmatter() -> None:
    assert split_frontmatter("# Title\nbody\n") == (None, "# Title\nbody\n", 1)


def test_split_with_frontmatter() -> None:
    assert split_frontmatter("---\na: 1\nb: 2\n---\nbody\n") == ("a: 1\nb: 2\n", "body\n", 5)


def test_split_bom_and_crlf() -> None:
    yaml_text, body, line = split_frontmatter("\ufeff---\r\na: 1\r\n---\r\nbody\r\n")
    assert yaml_text == "a: 1\n"
    assert body == "body\r\n"
    assert line == 4


def test_split_bom_without_frontmatter_drops_the_bom() -> None:
    assert split_frontmatter("\ufeffbody") == (None, "body", 1)


def test_split_empty_block() -> None:
    assert split_frontmatter("---\n---\nbody") == ("", "body", 3)


def test_split_dots_close_the_block() -> None:
    assert split_frontmatter("---\na: 1\n...\nbody") == ("a: 1\n", "body", 4)


def test_split_frontmatter_only() -> None:
    assert split_frontmatter("---\na: 1\n---") == ("a: 1\n", "", 4)


@pytest.mark.parametrize(
    "text",
    [
        "---\na: 1\n",  # never closed
        "---",
        "---\n",
        "--- \na: 1\n---\n",  # the opening line must be exactly '---'
        "----\na: 1\n---\n",
        " ---\na: 1\n---\n",
        "\n---\na: 1\n---\n",  # not on the first line
        "---\na: 1\n --- \n",  # the closing line must be exactly '---'
    ],
)
def test_split_unterminated_or_not_a_delimiter_is_absent(text: str) -> None:
    assert split_frontmatter(text) == (None, text, 1)


# --------------------------------------------------------------------------- frontmatter


def test_absent_frontmatter() -> None:
    note = parse_note("just a body\n")
    assert note.frontmatter == {}
    assert note.frontmatter_status == "absent"
    assert note.frontmatter_error is None


def test_valid_frontmatter() -> None:
    note = parse_note("---\ntitle: Hello\nclassification: SECRET\ncount: 3\n---\nbody\n")
    assert note.frontmatter == {"title": "Hello", "classification": "SECRET", "count": 3}
    assert note.frontmatter_status == "valid"
    assert note.frontmatter_error is None


@pytest.mark.parametrize("yaml_text", ["", "# only a comment\n", "~\n", "   \n"])
def test_empty_frontmatter_is_valid(yaml_text: str) -> None:
    note = parse_note(f"---\n{yaml_text}---\nbody #tag\n")
    assert (note.frontmatter, note.frontmatter_status, note.frontmatter_error) == (
        {},
        "valid",
        None,
    )
    assert note.tags == ["tag"]


def test_bom_crlf_frontmatter() -> None:
    note = parse_note("\ufeff---\r\ntitle: bom\r\ntags: [crlf]\r\n---\r\nbody #crlf-tag\r\n")
    assert note.frontmatter_status == "valid"
    assert note.frontmatter == {"title": "bom", "tags": ["crlf"]}
    assert note.title == "bom"
    assert note.tags == ["crlf", "crlf-tag"]


def test_unterminated_frontmatter_is_absent_and_all_body() -> None:
    note = parse_note("---\ntitle: never closed\ntags: x\n\n# heading\n#real\n")
    assert note.frontmatter_status == "absent"
    assert note.frontmatter == {}
    assert note.title == "heading"
    assert note.tags == ["real"]


@pytest.mark.parametrize(
    ("yaml_text", "reason"),
    [
        ("- just\n- a list\n", "frontmatter is a list, not a mapping"),
        ("just a string\n", "frontmatter is a string, not a mapping"),
        ("42\n", "frontmatter is a number, not a mapping"),
        ("true\n", "frontmatter is a boolean, not a mapping"),
        ("2025-01-02\n", "frontmatter is a date, not a mapping"),
    ],
)
def test_frontmatter_not_a_mapping_is_invalid(yaml_text: str, reason: str) -> None:
    note = parse_note(f"---\n{yaml_text}---\nbody [[Link]]\n")
    assert note.frontmatter_status == "invalid"
    assert note.frontmatter == {}
    assert note.frontmatter_error == reason
    assert targets(note) == ["Link"]  # the body still counts


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # the flow sequence opened on line 2 is still open on line 3
        ("---\ntitle: [unclosed\ntags: {a: b\n---\n# body\n", 3),
        ("---\ntitle:\tx\n\tkey: value\n---\nbody\n", 3),  # tab indentation
        ("---\na: 1\nb: 2\nc: d: e\n---\n", 4),
        ("\ufeff---\r\na: 1\r\nb: [\r\n---\r\n", 4),  # BOM and CRLF do not shift lines
        ("---\na: 1\nb: \x07\n---\n", 3),  # a character YAML refuses
        ("---\na: 1\nb: !!int zz\n---\n", 3),  # a bad explicit scalar
        ("---\na: [1, *nowhere]\n---\n", 2),  # an undefined alias
    ],
)
def test_yaml_error_names_the_file_line(text: str, line: int) -> None:
    note = parse_note(text)
    assert note.frontmatter_status == "invalid"
    assert note.frontmatter == {}
    assert note.frontmatter_error is not None
    assert note.frontmatter_error.startswith(f"line {line}: "), note.frontmatter_error


def test_invalid_frontmatter_keeps_the_body() -> None:
    note = parse_note("---\ntitle: [unclosed\n---\n# body survives\n[[Note 00000]] #ok\n")
    assert note.frontmatter_status == "invalid"
    assert note.title == "body survives"
    assert targets(note) == ["Note 00000"]
    assert note.links[0]["line"] == 5
    assert note.tags == ["ok"]


def test_frontmatter_values_are_json_safe() -> None:
    note = parse_note(
        "---\n"
        "day: 2025-01-02\n"
        "at: 2025-01-02 03:04:05\n"
        "zoned: 2025-01-02T03:04:05+02:00\n"
        "set: !!set {b, a}\n"
        "blob: !!binary aGk=\n"
        "nan: .nan\n"
        "inf: -.inf\n"
        "1: int key\n"
        "2025-01-02: date key\n"
        "null: null key\n"
        "false: bool key\n"
        "nested: {list: [2025-01-03, {deep: 1.5}]}\n"
        "---\n"
    )
    assert note.frontmatter == {
        "day": "2025-01-02",
        "at": "2025-01-02T03:04:05",
        "zoned": "2025-01-02T03:04:05+02:00",
        "set": ["a", "b"],
        "blob": "aGk=",
        "nan": "nan",
        "inf": "-inf",
        "1": "int key",
        "2025-01-02": "date key",
        "null": "null key",
        "false": "bool key",
        "nested": {"list": ["2025-01-03", {"deep": 1.5}]},
    }
    json.dumps(note.frontmatter, allow_nan=False)


def test_yaml_scalars_follow_yaml_1_2_like_obsidian() -> None:
    note = parse_note(
        "---\n"
        "a: yes\nb: no\nc: on\nd: off\ne: NO\n"  # the Norway problem: strings
        "f: 12:30\n"  # not base-60
        "g: 010\nh: 0x1F\ni: 0o17\nj: 1_000\n"
        "k: true\nl: False\nm: 1.5\nn: 1e3\no: ~\n"
        "p: 2025-02-30\n"  # looks like a date, is not one: stays text
        "---\n"
    )
    assert note.frontmatter_status == "valid"
    assert note.frontmatter == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": "off",
        "e": "NO",
        "f": "12:30",
        "g": 10,
        "h": 31,
        "i": 15,
        "j": "1_000",
        "k": True,
        "l": False,
        "m": 1.5,
        "n": 1000.0,
        "o": None,
        "p": "2025-02-30",
    }


def test_yaml_merge_keys_still_work() -> None:
    note = parse_note("---\nbase: &b {x: 1}\nchild:\n  <<: *b\n  y: 2\n---\n")
    assert note.frontmatter["child"] == {"x": 1, "y": 2}


def test_yaml_alias_bomb_is_invalid_and_cheap() -> None:
    lines = ["a: &a [" + ", ".join(["x"] * 10) + "]"]
    for i in range(9):
        prev = "a" if i == 0 else f"b{i - 1}"
        lines.append(f"b{i}: &b{i} [" + ", ".join([f"*{prev}"] * 10) + "]")
    started = time.perf_counter()
    note = parse_note("---\n" + "\n".join(lines) + "\n---\nbody\n")
    assert time.perf_counter() - started < 5
    assert note.frontmatter_status == "invalid"
    assert note.frontmatter_error is not None
    assert "more than" in note.frontmatter_error


def test_recursive_yaml_is_invalid() -> None:
    note = parse_note("---\na: &a [*a]\n---\n")
    assert note.frontmatter_status == "invalid"
    assert note.frontmatter_error is not None
    assert "nested" in note.frontmatter_error


def test_unhashable_yaml_key_is_invalid() -> None:
    note = parse_note("---\n? [a, b]\n: c\n---\n")
    assert note.frontmatter_status == "invalid"
    assert note.frontmatter_error is not None
    assert note.frontmatter_error.startswith("line ")


# --------------------------------------------------------------------------- title


def test_title_from_frontmatter_wins() -> None:
    assert parse_note("---\ntitle: '  From YAML '\n---\n# From heading\n").title == "From YAML"


@pytest.mark.parametrize("title", ["42", "[a, b]", "''", "~"])
def test_title_falls_back_to_first_h1(title: str) -> None:
    assert parse_note(f"---\ntitle: {title}\n---\n# Heading\n").title == "Heading"


@pytest.mark.parametrize(
    ("body", "title"),
    [
        ("intro\n## Second\n# First H1\n# Later H1\n", "First H1"),
        ("# Closed heading ##\n", "Closed heading"),
        ("#   Spaced   \n", "Spaced"),
        ("#\tTabbed\n", "Tabbed"),
        ("   # Indented three\n", "Indented three"),
        ("# C# is a language\n", "C# is a language"),
        ("# #\n# Real\n", "Real"),  # an empty heading
        ("```\n# In code\n```\n# After code\n", "After code"),
        ("%%\n# In comment\n%%\n# After comment\n", "After comment"),
        ("    # Indented code\n\n# Real\n", "Real"),
        ("#NoSpace is a tag\n", None),
        ("> # Quoted\n", None),
        ("## Only H2\n", None),
        ("", None),
    ],
)
def test_title_from_body(body: str, title: str | None) -> None:
    assert parse_note(body).title == title


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    ("yaml_text", "aliases"),
    [
        ("aliases: [One, Two]", ["One", "Two"]),
        ("aliases:\n  - One\n  - 2024\n  - ~\n  - ''", ["One", "2024"]),
        ("aliases: Single, with comma", ["Single, with comma"]),
        ("alias: Old Key", ["Old Key"]),
        ("Aliases: [Case]", ["Case"]),
        ("aliases: [Dup, Dup, Other]", ["Dup", "Other"]),
        ("aliases: 2025-01-02", ["2025-01-02"]),
        ("aliases: {not: valid}", []),
        ("other: x", []),
    ],
)
def test_aliases(yaml_text: str, aliases: list[str]) -> None:
    assert parse_note(f"---\n{yaml_text}\n---\n").aliases == aliases


# --------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("yaml_text", "tags"),
    [
        ("tags: [b, a]", ["a", "b"]),
        ("tags:\n  - '#hashed'\n  - nested/tag", ["hashed", "nested/tag"]),
        ("tags: one, two three,#four", ["four", "one", "three", "two"]),
        ("tags: single", ["single"]),
        ("tag: [old]", ["old"]),
        ("tag: 'x, y'", ["x", "y"]),
        ("Tags: [Case]", ["Case"]),
        ("tags: []", []),
        ("tags:", []),
        ("tags: [a, a, ~]", ["a"]),
    ],
)
def test_frontmatter_tags(yaml_text: str, tags: list[str]) -> None:
    assert parse_note(f"---\n{yaml_text}\n---\n").tags == tags


def test_frontmatter_and_inline_tags_merge_sorted_without_duplicates() -> None:
    note = parse_note("---\ntags: [zeta, alpha]\n---\n#alpha and #mid/level\n")
    assert note.tags == ["alpha", "mid/level", "zeta"]


@pytest.mark.parametrize(
    ("body", "tags"),
    [
        ("#start of line", ["start"]),
        ("after space #tag", ["tag"]),
        ("after tab\t#tag", ["tag"]),
        ("in parens (#tag)", ["tag"]),
        ("nested #a/b/c", ["a/b/c"]),
        ("dash and underscore #a-b_c", ["a-b_c"]),
        ("punctuation ends it #tag. #other, #third!", ["other", "tag", "third"]),
        ("#123 is a number, #2024 too", []),
        ("#1a and #a1 and #1/2", ["1/2", "1a", "a1"]),
        ("unicode #café #日本語 #हिंदी", ["café", "हिंदी", "日本語"]),
        ("emoji #🚀", ["🚀"]),
        ("word#notatag and a#b", []),
        ("## heading #tagged", ["tagged"]),
        ("# Heading is not a tag", []),
        ("url https://example.com/page#frag and http://x.org/#/route", []),
        ("[[Note#Heading]] and [[Note #spaced]] and [[#local]]", []),
        ("[anchor](#section) and [x](Note.md#part)", []),
        ("`#code` and ``#double ` tick`` then #after", ["after"]),
        ("%% #hidden %% #shown <!-- #gone -->", ["shown"]),
        ("escaped \\#not", []),
        ("double ##not", []),
        ("| #in | #table |", ["in", "table"]),
        ("- [ ] task with #todo", ["todo"]),
        ("> quoted #q", ["q"]),
    ],
)
def test_inline_tags(body: str, tags: list[str]) -> None:
    assert parse_note(body).tags == tags


def test_tags_in_code_blocks_do_not_count() -> None:
    body = "```\n#fenced\n```\n~~~python\n#tilde\n~~~\npara\n\n    #indented\n\n#real\n"
    assert parse_note(body).tags == ["real"]


# --------------------------------------------------------------------------- links


def test_wikilink_forms() -> None:
    note = parse_note(
        "[[Plain]] [[Target|Alias text]] [[Page#Some Heading]] [[Page#^block-id]] "
        "[[#Local heading]] [[#^localblock]] ![[Embedded.png]] ![[Doc#Part|Shown]]"
    )
    assert [{k: v for k, v in link.items() if k != "line"} for link in note.links] == [
        {"target": "Plain", "kind": "wikilink", "alias": None, "heading": None, "block": None},
        {"target": "Target", "kind": "wikilink", "alias": "Alias text", "heading": None,
         "block": None},
        {"target": "Page", "kind": "wikilink", "alias": None, "heading": "Some Heading",
         "block": None},
        {"target": "Page", "kind": "wikilink", "alias": None, "heading": None,
         "block": "block-id"},
        {"target": "", "kind": "wikilink", "alias": None, "heading": "Local heading",
         "block": None},
        {"target": "", "kind": "wikilink", "alias": None, "heading": None,
         "block": "localblock"},
        {"target": "Embedded.png", "kind": "embed", "alias": None, "heading": None,
         "block": None},
        {"target": "Doc", "kind": "embed", "alias": "Shown", "heading": "Part", "block": None},
    ]  # fmt: skip
    assert {link["line"] for link in note.links} == {1}


def test_link_line_without_frontmatter() -> None:
    assert only_link("x\n\ny [[A]]")["line"] == 3


@pytest.mark.parametrize("text", ["[[]]", "[[ ]]", "[[|alias]]", "[ [Not] ]", "[[a\nb]]"])
def test_not_wikilinks(text: str) -> None:
    assert parse_note(text).links == []


def test_wikilink_targets_are_stripped_and_not_url_decoded() -> None:
    assert only_link("[[  Spaced Name  |  alias  ]]")["target"] == "Spaced Name"
    assert only_link("[[  Spaced Name  |  alias  ]]")["alias"] == "alias"
    assert only_link("[[100%25 done]]")["target"] == "100%25 done"


def test_escaped_pipe_in_a_table_row_separates_the_alias() -> None:
    note = parse_note("| a | b |\n|---|---|\n| [[Target Note\\|Shown]] | ![[Img.png\\|100]] |\n")
    assert note.links[0]["target"] == "Target Note"
    assert note.links[0]["alias"] == "Shown"
    assert note.links[0]["line"] == 3
    assert note.links[1]["target"] == "Img.png"
    assert note.links[1]["kind"] == "embed"
    assert note.links[1]["alias"] == "100"


def test_markdown_links() -> None:
    note = parse_note(
        "[Text](Folder/My%20Note.md) ![alt](Attachments/img%201.png) "
        "[t](<Folder/Angle Note.md>) [h](Note.md#Sec%20One) [b](Note.md#^blk) "
        '[titled](Other.md "A title") [paren](Thing_(draft).md)'
    )
    assert [(link["target"], link["kind"], link["alias"]) for link in note.links] == [
        ("Folder/My Note.md", "markdown", "Text"),
        ("Attachments/img 1.png", "markdown", "alt"),
        ("Folder/Angle Note.md", "markdown", "t"),
        ("Note.md", "markdown", "h"),
        ("Note.md", "markdown", "b"),
        ("Other.md", "markdown", "titled"),
        ("Thing_(draft).md", "markdown", "paren"),
    ]
    assert note.links[3]["heading"] == "Sec One"
    assert note.links[4]["block"] == "blk"


@pytest.mark.parametrize(
    "text",
    [
        "[web](https://example.com/Note.md)",
        "[web](http://example.com)",
        "[mail](mailto:someone@example.com)",
        "[app](obsidian://open?vault=v&file=Note)",
        "[file](file:///etc/hosts)",
        "[proto-relative](//example.com/x)",
        "[anchor](#heading)",
        "[empty]()",
        "[spaces](not a link.md)",
        "[unclosed](Note.md",
        "[text] (Note.md)",
    ],
)
def test_markdown_links_skipped(text: str) -> None:
    assert parse_note(text).links == []


def test_image_inside_a_link_gives_both() -> None:
    assert sorted(targets(parse_note("[![badge](b.png)](Page.md)"))) == ["Page.md", "b.png"]


def test_links_in_order_of_appearance_with_file_lines() -> None:
    note = parse_note("---\na: 1\nb: 2\n---\n[[First]] [m](Second.md) ![[Third]]\n\n[[Fourth]]\n")
    assert [(link["target"], link["line"]) for link in note.links] == [
        ("First", 5),
        ("Second.md", 5),
        ("Third", 5),
        ("Fourth", 7),
    ]


def test_link_lines_with_crlf_and_bom() -> None:
    note = parse_note("\ufeff---\r\na: 1\r\n---\r\n\r\n[[Here]]\r\n")
    assert note.links[0]["line"] == 5
    assert note.links[0]["target"] == "Here"


@pytest.mark.parametrize(
    "body",
    [
        "```\n[[Fenced]]\n```\n",
        "~~~\n[[Tilde]]\n~~~\n",
        "```python\n[[WithInfo]]\n```\n",
        "````\n```\n[[Inner fence does not close]]\n```\n````\n",
        "```\n[[Tilde does not close backticks]]\n~~~\n```\n",
        "~~~~\n[[Shorter does not close]]\n~~~\n~~~~\n",
        "```\n[[Unclosed runs to the end]]\n\n# heading\n",
        "  ```\n  [[Indented fence]]\n  ```\n",
        "> ```\n> [[In a quoted fence]]\n> ```\n",
        "`[[Inline code]]`",
        "``[[Double `tick` code]]``",
        "<!-- [[Html comment]] -->",
        "<!--\n[[Multi-line\nhtml comment]]\n-->\n",
        "%% [[Obsidian comment]] %%",
        "%%\n[[Multi-line]]\nObsidian comment\n%%\n",
        "%% unclosed comment runs to the end\n[[Hidden]]\n",
        "para\n\n    [[Indented code]]\n\n\t[[Tab code]]\n",
    ],
)
def test_no_links_in_code_or_comments(body: str) -> None:
    assert parse_note(body).links == []


def test_text_after_code_and_comments_still_counts() -> None:
    note = parse_note(
        "```\n[[no]]\n```\n[[A]]\n"
        "`[[no]]` [[B]]\n"
        "%% [[no]] %% [[C]] <!-- [[no]] --> [[D]]\n"
        "%%\n[[no]]\nend %% [[E]]\n"
        "~~~\n[[no]]\n~~~~\n[[F]]\n"
        "``` closes ``` as inline code, not a fence [[G]]\n"
        "> ```\n> [[no]]\nquote ended, fence with it [[H]]\n"
        "`%%` is code, not a comment [[I]]\n"
    )
    assert targets(note) == ["A", "B", "C", "D", "E", "F", "G", "H", "I"]


def test_unmatched_backticks_are_literal() -> None:
    assert targets(parse_note("a ` lone tick [[Seen]]")) == ["Seen"]
    assert targets(parse_note("``a` [[Seen]]")) == ["Seen"]


def test_indented_list_items_are_not_code() -> None:
    note = parse_note(
        "- item [[A]]\n\n    continuation [[B]]\n\n    - nested - [ ] not a task\n"
        "para\n\n    - [ ] indented task [[C]]\n\n        1. [x] deeper [[D]]\n"
    )
    assert targets(note) == ["A", "B", "C", "D"]
    assert [task["text"] for task in note.tasks] == ["indented task [[C]]", "deeper [[D]]"]


def test_indented_code_needs_a_blank_line_before() -> None:
    assert targets(parse_note("para\n    [[Lazy continuation]]\n")) == ["Lazy continuation"]
    assert targets(parse_note("    [[Code at start]]\nafter [[X]]\n")) == ["X"]


# --------------------------------------------------------------------------- tasks


@pytest.mark.parametrize(
    ("line", "done", "text"),
    [
        ("- [ ] dash open", False, "dash open"),
        ("* [x] star done", True, "star done"),
        ("+ [X] plus done", True, "plus done"),
        ("1. [ ] numbered", False, "numbered"),
        ("12) [x] paren numbered", True, "paren numbered"),
        ("    - [ ] indented", False, "indented"),
        ("\t- [x] tab indented", True, "tab indented"),
        ("- [-] cancelled counts as checked", True, "cancelled counts as checked"),
        ("- [/] in progress counts as checked", True, "in progress counts as checked"),
        ("- [ ]    spaced text   ", False, "spaced text"),
        ("- [ ]", False, ""),
        ("> - [ ] in a quote", False, "in a quote"),
        ("> [!note] callout\n> - [x] in a callout", True, "in a callout"),
        ("- [ ] with [[Link]] and `code`", False, "with [[Link]] and `code`"),
        ("- [ ] with %% a comment %% removed", False, "with   removed"),
    ],
)
def test_tasks(line: str, done: bool, text: str) -> None:
    tasks = parse_note(line).tasks
    assert len(tasks) == 1
    assert tasks[0]["done"] is done
    assert tasks[0]["text"] == text


@pytest.mark.parametrize(
    "body",
    [
        "- [] empty box",
        "- [ ]no space after",
        "-[ ] no space before",
        "[ ] no bullet",
        "- [[Link]] list item",
        "- [xx] two chars",
        "```\n- [ ] fenced\n```",
        "para\n\n    [ ] indented code",
        "%%\n- [ ] commented\n%%",
        "<!-- - [ ] commented -->",
        "`- [ ] code span`",
    ],
)
def test_not_tasks(body: str) -> None:
    assert parse_note(body).tasks == []


def test_task_lines_count_frontmatter() -> None:
    note = parse_note("---\ntitle: t\n---\n- [ ] one\n- [x] two\n")
    assert [{k: t[k] for k in ("line", "done", "text", "status")} for t in note.tasks] == [
        {"line": 4, "done": False, "text": "one", "status": " "},
        {"line": 5, "done": True, "text": "two", "status": "x"},
    ]


# --------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("one two  three\tfour\n five", 5),
        ("---\ntitle: not counted here\n---\nbody words\n", 2),
        ("a\n```\nnot counted at all\n```\nb", 2),
        ("a %% hidden words %% b <!-- more\nhidden -->c", 3),
        ("inline `code words` count", 4),
        ("para\n\n    indented code here\n", 1),
        ("# Heading", 2),
    ],
)
def test_word_count(text: str, words: int) -> None:
    assert parse_note(text).word_count == words


@pytest.mark.parametrize("spacing", [" ", "  ", "\t", " \u00a0", "\x0c", "\u2003"])
def test_word_count_of_long_lines(spacing: str) -> None:
    line = spacing.join(["word"] * 500)
    for text in (line, f" {line} ", f"{line}\n{line}"):
        assert parse_note(text).word_count == len(text.split())


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "text",
    [
        "\ufffd" * 100,
        "\x00\x01\x02 [[\x00]] #\x00",
        "---\n\x00\n---\n",
        "[" * 20_000,
        "[[a]" * 10_000,
        "[a](" * 10_000,
        '[a](x "' * 10_000,
        "`" * 20_001,
        "``x ` ``` ````" * 2_000,
        "# a" + " " * 50_000 + "b",
        " " * 50_000 + "[",
        "%%" * 20_001,
        "<!--" * 10_000,
        "```\n" * 10_001,
        "- [ ] " + "[[x|" * 10_000,
        "#" * 50_000,
        "\r\n" * 10_000,
    ],
)
def test_odd_inputs_parse_quickly(text: str) -> None:
    started = time.perf_counter()
    note = parse_note(text)
    assert time.perf_counter() - started < 2.0
    json.dumps(note.frontmatter)


def test_parsed_note_is_frozen() -> None:
    note = parse_note("x")
    with pytest.raises(AttributeError):
        note.title = "y"  # type: ignore[misc]


# --------------------------------------------------------------------------- ground truth


def vault_files(root: Path) -> dict[str, Path]:
    """Every file under root by its NFC, POSIX, vault-relative name, without following links."""
    found: dict[str, Path] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            found[unicodedata.normalize("NFC", rel)] = path
    return found


def level(note: ParsedNote) -> str:
    """The indexer's reading of a note's level (the documented default: INTERNAL)."""
    fm, status, raw = note.frontmatter, note.frontmatter_status, note.raw_frontmatter
    return classify(fm, status, raw, "INTERNAL", unclosed=note.unclosed).level


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("source", SOURCES)
def test_ground_truth(source: str, seed: int, tmp_path: Path) -> None:
    vault = tmp_path / f"vault{seed}"
    truth: dict[str, dict[str, Any]] = build_vault(source, vault, notes=300, seed=seed)
    files = vault_files(vault)

    checked = 0
    mismatches: list[str] = []
    for rel, want in sorted(truth.items()):
        if want["kind"] not in ("note", "bad") or not rel.endswith(".md"):
            continue
        path = files.get(rel)
        assert path is not None, f"{rel} is in the truth but not in the vault"
        if path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:  # Bad/unreadable.md, for anyone but root
            continue
        note = parse_note(data.decode("utf-8", errors="replace"))
        json.dumps(note.frontmatter, allow_nan=False)
        checked += 1
        got: dict[str, Any] = {
            "tags": note.tags,
            "links": sorted(targets(note)),
            "tasks_open": sum(not task["done"] for task in note.tasks),
            "tasks_done": sum(task["done"] for task in note.tasks),
            "frontmatter": note.frontmatter_status,
            "classification": level(note),
        }
        for field, value in got.items():
            if field in want and want[field] != value:
                mismatches.append(f"{rel}: {field} = {value!r}, truth says {want[field]!r}")
    assert not mismatches, "\n".join(mismatches)
    assert checked >= 300
