"""The compiled body scanner (ccc_watch._redb.scan_body, rust/src/scan.rs) against its
Python reference (ccc_watch.index.body.scan_body_reference): the same Body, tag order
included, for every input.

The inputs: every markdown file of the repository's sample vault and test fixtures;
vaults of the project's tests/vaultgen.py (several seeds, with its Bad/ files); the
real hub corpus and ../shared's make_vault.py vaults when ../shared is present;
documents that hypothesis assembles from fragments of every rule the scanner knows
(fences, code, comments, links, tags, tasks, fields, headings, block ids) mixed with
arbitrary text; and the limits (MAX_LINE, MAX_FIELDS, MAX_KEY, the field search's
budget) at and past their edges.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from conftest import hub_corpus, make_vault, own_vault
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ccc_watch import _redb
from ccc_watch.index.body import Body, scan_body, scan_body_reference
from ccc_watch.index.fields import MAX_FIELDS, MAX_KEY, MAX_LINE
from ccc_watch.index.note import split_frontmatter
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.vault.read import HEAD

ROOT = Path(__file__).resolve().parents[1]

# The compiled scanner reads text as the Python that generated rust/src/tables.rs
# (3.11, Unicode 14); another Unicode version's reference differs on the characters
# it added, by design (README "The redb binding").
pytestmark = pytest.mark.skipif(
    unicodedata.unidata_version != _redb.UNICODE_VERSION,
    reason=f"the scanner's tables are Unicode {_redb.UNICODE_VERSION}, this Python's "
    f"{unicodedata.unidata_version}",
)


def as_compared(body: Body) -> dict[str, Any]:
    """Everything a Body holds; dict equality ignores order, so the tags' order too."""
    return {**dataclasses.asdict(body), "tag_order": list(body.tags)}


def same(text: str, first_line: int = 1) -> None:
    """Both scanners give the same Body for text."""
    want = as_compared(scan_body_reference(text, first_line))
    got = as_compared(scan_body(text, first_line))
    assert got == want, ascii(text[:2000])


def same_for_file(path: Path) -> None:
    """A note as the indexer reads it (only the head of one over the size limit): the
    whole text, then the body after its frontmatter."""
    data = path.read_bytes()
    if len(data) > IndexPolicy.max_note_bytes:
        data = data[:HEAD]
    text = data.decode("utf-8", errors="replace")
    same(text)
    _, body, body_line = split_frontmatter(text)
    same(body, body_line)


def markdown_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.md") if p.is_file() and not p.is_symlink())


def test_tables_are_this_pythons() -> None:
    """rust/src/tables.rs holds the classes of the Python the tests run on."""
    check = subprocess.run(
        [sys.executable, str(ROOT / "rust" / "gen_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_repository_markdown() -> None:
    files = markdown_files(ROOT / "sample-vault") + markdown_files(ROOT / "tests")
    assert files
    for path in files:
        same_for_file(path)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_own_vaults(tmp_path: Path, seed: int) -> None:
    own_vault(tmp_path / "vault", 120, seed, bad=True)
    files = markdown_files(tmp_path / "vault")
    assert len(files) > 120
    for path in files:
        try:
            same_for_file(path)
        except PermissionError:  # Bad/unreadable.md, for a user other than root
            continue


def test_shared_vault(tmp_path: Path) -> None:
    make_vault(tmp_path / "vault", 300, 5, bad=True)
    for path in markdown_files(tmp_path / "vault"):
        try:
            same_for_file(path)
        except PermissionError:
            continue


def test_hub_corpus(tmp_path: Path) -> None:
    files = markdown_files(hub_corpus(tmp_path / "hub"))
    assert len(files) > 1000
    for path in files:
        same_for_file(path)


# Fragments of every rule, the awkward characters around them, and arbitrary text.
INLINE = [
    *("`", "``", "```", "`code`", "``a`b``", "` x `", "<!--", "-->", "<!-- c -->", "%%"),
    *("%% c %%", "%%%", "<!-->", "[[Note]]", "[[Note#Head]]", "[[Note#^blk]]", "[[#^b]]"),
    *("[[Note|alias]]", "[[Note\\|alias]]", "![[img.png]]", "[[#local]]", "[[ ]]", "[[a[b]]"),
    *("[[a]]]", "[[|x]]", "[[#]]", "[[a#b#c|d|e]]", "[t](a.md)", "[t](<a b.md>)", "[t](<a>"),
    *('[t](a.md "title")', "[t](a.md 'title')", "[t](a.md (title))", "[t](a(b)c.md)"),
    *(
        '[t]( "x y")',
        "[t](  'q' )",
        "[t]( (p q))",
        "[t](%C3%A9.md)",
        "[t](%C3\u00e9)",
        "[t](%zz%4)",
    ),
    *("[t](%ED%A0%80)", "[t](%F0%9F%98)", "[t](%e2%82)", "[t](http://x)", "[t](//x)", "[t](#h)"),
    *("[t](a.md#h%20x)", "[t](a.md#^b)", "[t](a.md#)", "[![img](a.png)](b.md)", "[a [b] c](d)"),
    *("![x](y.png)", "[t](a b)", "[t]( a )", "[](x)", "[t](\u00e9 \u3000)", "[t](a\x1cb)", "[t]("),
    *("]", "[", "](", "!", "![", "#tag", "#tag/sub", "#t-a_g", "#123", "#\u00b2", "#caf\u00e9"),
    *("#\u0939\u093f\u0902\u0926\u0940", "#\U0001f642", "#a\u200db", "(#tag)", "x#no", "##", "#"),
    *("#TAG", "#Tag", "#\u0663\u0664", "#e\u0301", "#\U0001d7d8", "- [ ] ", "- [x] ", "* [-] "),
    *("1. [/] ", "+ [>] ", "- [\u3000] ", "- [\x1c] ", "- [] ", "- [[]] ", "- [x]y", "\U0001f4c5 "),
    *(
        "\U0001f4c5 2024-01-31",
        "\U0001f4c5\ufe0f2024-02-30",
        "\u23f3 2024-02-29",
        "\u231b2023-02-29",
    ),
    *(
        "\U0001f6eb 0000-01-01",
        "\u2795 2024-1-01",
        "\u2705 2024-12-31",
        "\U0001f5d3 \uff12024-01-01",
    ),
    *("\U0001f4c6\u30002024-05-05", "\U0001f4c5 \u0662\u0660\u0662\u0664-01-01", "\U0001f53a"),
    *("\u23eb", "\U0001f53c", "\U0001f53d", "\u23ec", "[due:: 2024-01-01]", "(priority:: HIGH)"),
    *("[priority:: \u03a3\u0391\u03a3 \u0130x]", "[k:: [nested] v]", "[k:: a\\]b]", "(k:: (x) y)"),
    *("[k::]", "[ :: v]", "[a(b:: c]", "[Due Date:: 2024-03-03]", "[completion:: 2024-02-02]"),
    *("[created:: x]", "[\u212acheduled:: 2024-04-04]", "[s\u0663tart:: 2024-04-05]", "[k:: `c`]"),
    *(
        "[k:: \\\\]",
        "[k:: \\\\\\]]",
        "(k:: [)]",
        "[\x00:: v]",
        "[k:: [[link]] ]",
        "(due:: 2024-09-09)",
    ),
    *("Key:: value", "**Bold**:: v", "\U0001f642:: v", "a/b-c d:: v", "k::v::w", "::", ":"),
    *(" ^block-1", "^id", " ^bad_id", "^", " ^a ", "\r", "\x00", "\x1c", "\x1f", "\x85"),
    *("\u2028", "\u3000", "\u00a0", "\u6f22\u5b57", "\U0001f642", "e\u0301", "\t", "  ", " ", "|"),
    *("\\", "(", ")", "<", ">", "~", "*", "_", "\u03a3", "word", "two words", "\ufeff", "\u200b"),
    # A link hides what it holds: these tell a masked link from text that is not one.
    *('[t]( "x #y")', "[t]( 'a #b' )", "[t]( (p #q))", '[t](a.md "#t")', "[t](<#x> ^b)"),
    *("[#a](b)", "[t](a #c)", '[t](<a "#d">)', "[^x](y) ^z", "[t](\x1c'#e'\x1c)"),
    *("\U0001f4c5 2000-02-29", "[due:: 1900-02-29]", "\u23f3 2100-02-29", "[start:: 2000-02-29]"),
    *(
        "[priority:: \u0391\u03a3 \u03a3]",
        "(priority:: \u0391\u0345\u03a3\u00b7x)",
        "(Priority:: )",
    ),
    *("\u2705\ufe0f 2024-03-01", "\U0001f6eb\ufe0f\u20282024-03-02"),
]
PREFIXES = [
    *("", "", "", " ", "  ", "   ", "    ", "\t", "  \t", "> ", ">> ", "> > ", ">\t", "- ", "* "),
    *("+ ", "1. ", "2) ", "123456789. ", "1234567890. ", "\u0661. ", "1\u0663) ", "- > ", "> - "),
    *("# ", "## ", "###### ", "####### ", "   # ", "    # ", "#\t", "#", "1. Key:: ", "    - "),
]
LINES = [
    *("", "", "   ", "```", "```js", "``` `x`", "~~~", "~~~~", "````", "> ```", "> ~~~", ">"),
    *(">  ```", "  ```", "<!--", "-->", "%%", "# Heading ##", "# #", "# x #", "## a \\#", "Title"),
    *("===", "- [ ] task [due:: 2024-01-01] \U0001f4c5 2024-02-02 \u23eb", "  - [x] sub"),
    *("\t- [ ] indented", "    code [[no]] #no", "> [!note] #call", "[k:: multi", "line]"),
]
LONG = [
    "x " * (MAX_LINE // 2) + "[k:: v]",
    "x" * (MAX_LINE - 8) + "[k:: v]",
    "\u00e9" * (MAX_LINE - 8) + "[k:: v]",
    "\u00e9" * (MAX_KEY + 1) + ":: v",
    "\u00e9" * (MAX_KEY - 1) + ":: v",
    "\u00e9" * MAX_KEY + ":: v",
    "[" * 3000 + "k:: " + "]" * 10,
    "(" + "k:: (" * 2000,
    "`" * 500 + " x " + "`" * 499,
    "[[a]]" * 2000,
    "#t " * 3000,
    "[a](b)" * 1500,
]

fragment = st.one_of(
    st.sampled_from(INLINE),
    st.sampled_from(INLINE),
    st.text(max_size=6),
    st.characters(),
)
TASKS = ["- [ ] ", "- [x] ", "* [-] ", "1. [/] ", "> + [>] ", "  - [\u00e9] ", "- [ ]"]
line = st.one_of(
    st.builds(
        lambda prefix, parts: prefix + "".join(parts),
        st.sampled_from(PREFIXES + TASKS * 3),
        st.lists(fragment, max_size=8),
    ),
    st.sampled_from(LINES),
    st.text(max_size=30),
)
document = st.builds(
    lambda lines, crlf, long: ("\r\n" if crlf else "\n").join(lines + ([long] if long else [])),
    st.lists(line, max_size=25),
    st.booleans(),
    st.sampled_from([None] * 40 + LONG),  # a long line in one document of five
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=document, first_line=st.integers(min_value=1, max_value=40))
@example(text="- [ ] a\n```\n[[in code]]\n```\n#tag", first_line=1)
def test_generated_documents(text: str, first_line: int) -> None:
    same(text, first_line)


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_arbitrary_text(text: str) -> None:
    same(text)


# Text made only of the characters the rules look at, so that they meet in every order.
SYNTAX = list("[]()!<>`~%-#^:|\\ \t\n\r*+>1.x\u00e9\x1c\u3000\"'/_")


@settings(max_examples=1500, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(SYNTAX), max_size=80))
def test_dense_syntax(text: str) -> None:
    same(text)


@pytest.mark.parametrize("text", LONG, ids=range(len(LONG)))
def test_long_lines(text: str) -> None:
    same(text)
    same("- [ ] " + text)


@pytest.mark.parametrize("offset", [0, 1])
def test_past_max_fields(offset: int) -> None:
    """Lines of two fields each, the note's last room for one field falling on one of
    them (offset 1) or not."""
    lines = ["One:: field"] * offset + ["[k:: v] (o:: w)"] * (MAX_FIELDS // 2 + 10)
    lines[MAX_FIELDS // 3] = "- [ ] t [due:: 2024-01-01] (priority:: high)"
    body = "\n".join(lines)
    assert len(scan_body(body, 1).fields) == MAX_FIELDS
    same(body)


def test_lone_surrogates_fall_back_to_the_reference() -> None:
    text = "# T\ud800\n[[a\udcff]] #t\udc80 [k:: \ud83d]"
    with pytest.raises(UnicodeEncodeError):
        _redb.scan_body(text, 1)
    assert as_compared(scan_body(text, 1)) == as_compared(scan_body_reference(text, 1))
