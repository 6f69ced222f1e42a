"""ccc_watch.vault.ignore: the ignore rules the scanner, the watcher and `verify` share.

Rules are loaded from real files in tmp_path (.cccignore, <config>/app.json); the
checks themselves are pure string logic on vault keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path

import pathspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccc_watch.errors import ConfigError
from ccc_watch.vault.ignore import DEFAULT_LITTER, RULE_FILE_MAX_BYTES, IgnoreRules


def app_json(vault: Path, data: object, config_dir: str = ".obsidian") -> None:
    (vault / config_dir).mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (vault / config_dir / "app.json").write_text(text, encoding="utf-8")


def cccignore(vault: Path, text: str) -> None:
    (vault / ".cccignore").write_text(text, encoding="utf-8")


def assert_ignored(rules: IgnoreRules, *keys: str, is_dir: bool = False) -> None:
    for key in keys:
        assert rules.is_ignored(key, is_dir=is_dir), key
        assert rules.explain(key, is_dir=is_dir) is not None, key


def assert_kept(rules: IgnoreRules, *keys: str, is_dir: bool = False) -> None:
    for key in keys:
        assert not rules.is_ignored(key, is_dir=is_dir), (key, rules.explain(key, is_dir=is_dir))
        assert rules.explain(key, is_dir=is_dir) is None, key


# --- built-in rules --------------------------------------------------------------------


def test_plain_notes_are_content(tmp_path: Path) -> None:
    rules = IgnoreRules.load(tmp_path)
    assert_kept(rules, "a.md", "Logs/2020/01/Note 00001.md", "Data/x.json", "Attachments/i.png")
    assert_kept(rules, "Logs", "Logs/2020", is_dir=True)
    # E7: a leading '#', '[[' and a newline are ordinary characters in a name.
    assert_kept(rules, "#1 idea.md", "Bad/name with spaces & symbols #1 [x].md", "a\nb.md")


def test_default_config_folder(tmp_path: Path) -> None:
    """F5: everything in .obsidian/ is ignored, at the top of the vault."""
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, ".obsidian", is_dir=True)
    assert_ignored(rules, ".obsidian/workspace.json", ".obsidian/plugins/x/main.js")
    assert rules.explain(".obsidian", is_dir=True) == "config folder .obsidian/"
    assert rules.explain(".obsidian/app.json") == (
        "in ignored folder .obsidian/: config folder .obsidian/"
    )


def test_renamed_config_folder(tmp_path: Path) -> None:
    """F7: with the config folder overridden to .obsidian-work, it is ignored and its
    app.json is the one read (the default folder's app.json is not)."""
    app_json(tmp_path, {"userIgnoreFilters": ["Work/"]}, ".obsidian-work")
    app_json(tmp_path, {"userIgnoreFilters": ["Default/"]})
    rules = IgnoreRules.load(tmp_path, config_dir=".obsidian-work")
    assert rules.config_dir == ".obsidian-work"
    assert_ignored(rules, ".obsidian-work/workspace.json", "Work/a.md")
    assert rules.explain(".obsidian-work", is_dir=True) == "config folder .obsidian-work/"
    assert_kept(rules, "Default/a.md")
    assert rules.rule_files == {".cccignore", ".obsidian-work/app.json"}


def test_config_folder_without_a_dot(tmp_path: Path) -> None:
    """A config folder name without a leading dot is ignored at the top level only."""
    rules = IgnoreRules.load(tmp_path, config_dir="obsidian-config")
    assert_ignored(rules, "obsidian-config", is_dir=True)
    assert_ignored(rules, "obsidian-config/app.json")
    assert_kept(rules, "Notes/obsidian-config/a.md")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\\b", "x\x00"])
def test_bad_config_folder_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        IgnoreRules.load(tmp_path, config_dir=bad)
    assert e.value.key == "config_dir"


def test_trash_and_git(tmp_path: Path) -> None:
    """B11: Obsidian's .trash/ and git's .git/, at the top and (for .git) nested."""
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, ".trash/old.md", ".trash/sub/x.md", ".git/index.lock")
    assert_ignored(rules, "sub/module/.git/HEAD", "Notes/.trash/x.md")
    assert_ignored(rules, ".trash", ".git", is_dir=True)
    assert rules.explain(".trash", is_dir=True) == "Obsidian trash .trash/"
    assert rules.explain("sub/.git/HEAD") == "in ignored folder sub/.git/: git folder .git/"


def test_dot_files_and_dot_folders_at_any_depth(tmp_path: Path) -> None:
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, ".hidden.md", "a/.hidden.md", "a/.b/c.md", "a/b/.c/d/e.md")
    assert_ignored(rules, ".b", "a/.b", is_dir=True)
    assert rules.explain("a/.hidden.md") == "dot-file"
    assert rules.explain("a/.b", is_dir=True) == "dot-folder"
    # .cccignore is configuration, not content.
    assert_ignored(rules, ".cccignore")
    assert rules.explain(".cccignore") == ".cccignore is configuration"
    # A dot inside a name is nothing special.
    assert_kept(rules, "a.b/c.md", "v1.2 notes.md")


LITTER_EXAMPLES = {
    ".DS_Store": [".DS_Store"],
    "Thumbs.db": ["Thumbs.db"],
    "desktop.ini": ["desktop.ini"],
    "*.swp": ["n.md.swp", ".n.md.swp"],
    "*.swo": ["n.md.swo"],
    "*~": ["n.md~", "~"],
    "4913": ["4913"],
    ".#*": [".#n.md"],
    "\\#*#": ["#n.md#", "##"],
    "~$*": ["~$report.docx", "~$x.md"],
    ".~lock.*#": [".~lock.report.odt#"],
    ".syncthing.*.tmp": [".syncthing.n.md.tmp"],
    "*___jb_tmp___": ["n.md___jb_tmp___"],
    "*___jb_old___": ["n.md___jb_old___"],
}


def test_every_litter_pattern_has_examples() -> None:
    assert set(LITTER_EXAMPLES) == set(DEFAULT_LITTER)


@pytest.mark.parametrize("name", [n for names in LITTER_EXAMPLES.values() for n in names], ids=repr)
def test_litter_is_ignored_at_any_depth(tmp_path: Path, name: str) -> None:
    """F8 and the editors' save patterns (A4, A5): never indexed, top level or nested."""
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, name, f"Notes/{name}", f"a/b/c/{name}")


@pytest.mark.parametrize(
    "name",
    [
        "#tag.md",  # starts with '#' but does not end with one: a note (E7)
        "4913.md",
        "Thumbs.db.md",
        "n~.md",
        "n.swp.md",
        "a~b.md",
        "report ~$.md",
        "desktop.ini.md",
        "n.md___jb_tmp___.md",
    ],
)
def test_litter_near_misses_are_content(tmp_path: Path, name: str) -> None:
    assert_kept(IgnoreRules.load(tmp_path), name, f"Notes/{name}")


def test_litter_regexes_agree_with_gitignore() -> None:
    """The basename regexes compiled from DEFAULT_LITTER give what pathspec's gitignore
    matching gives for the same patterns."""
    spec = pathspec.GitIgnoreSpec.from_lines(DEFAULT_LITTER)
    rules = IgnoreRules()
    names = [n for names in LITTER_EXAMPLES.values() for n in names]
    names += ["a.md", "#a.md", "a#", "#a", "4913x", "x4913", ".syncthing.a.md", "~", "x.swpx"]
    for name in names:
        for key in (name, f"dir/{name}"):
            expected = spec.match_file(key) or name.startswith(".")
            assert rules.is_ignored(key) == expected, key


def test_atomic_save_temp_names(tmp_path: Path) -> None:
    """A3/A5/F1: the usual temporary names are ignored; `n.md.tmp-12` (a visible temp
    name, as tests/vaultgen.py's churn writes) and `*.tmp` are not. Such a name is
    content while it exists: the rename onto n.md reaches the watcher as a move, so it
    is forgotten then, and a scan after the rename never sees it (tests/test_vault.py
    shows that on real files)."""
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, ".n.md.tmp", "Notes/.n.md.tmp", ".syncthing.n.md.tmp", "4913")
    assert_ignored(rules, "n.md~", "n.md___jb_tmp___", "n.md___jb_old___")
    assert_kept(rules, "n.md.tmp-12", "Notes/n.md.tmp-12", "export.tmp")


# --- .cccignore and configured patterns ------------------------------------------------


def test_cccignore_with_negation(tmp_path: Path) -> None:
    cccignore(tmp_path, "# drafts are not content\n\n*.md\n!keep.md\n")
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "a.md", "Notes/b.md")
    assert_kept(rules, "keep.md", "Notes/keep.md", "a.txt")
    assert rules.explain("a.md") == "pattern '*.md' (.cccignore:3)"


def test_cccignore_negation_inside_an_ignored_folder(tmp_path: Path) -> None:
    """As in git: `dir/*` + `!dir/keep.md` keeps keep.md, but nothing inside a folder that
    is itself excluded (`dir/`) can be re-included."""
    cccignore(tmp_path, "Drafts/*\n!Drafts/keep.md\nOld/\n!Old/keep.md\n")
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "Drafts/x.md", "Old/x.md", "Old/keep.md")
    assert_kept(rules, "Drafts/keep.md")
    assert rules.explain("Old/keep.md") == "in ignored folder Old/: pattern 'Old/' (.cccignore:3)"


def test_folder_only_patterns(tmp_path: Path) -> None:
    cccignore(tmp_path, "build/\n")
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "build", "src/build", is_dir=True)
    assert_ignored(rules, "build/x.md", "src/build/x.md")
    assert_kept(rules, "build")  # a file named build
    assert_kept(rules, "build.md")


def test_anchored_and_double_star_patterns(tmp_path: Path) -> None:
    cccignore(tmp_path, "/top.md\n**/cache/**\nLogs/**/*.log\n")
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "top.md", "a/cache/x.md", "Logs/2020/01/x.log")
    assert_kept(rules, "sub/top.md", "cache.md", "Other/x.log")


def test_cccignore_crlf_bom_and_nfd(tmp_path: Path) -> None:
    """Windows line ends and a BOM are fine; an NFD pattern matches the NFC key."""
    nfd = unicodedata.normalize("NFD", "Café/")
    (tmp_path / ".cccignore").write_bytes(("\ufeff*.log\r\n" + nfd + "\r\n").encode())
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "a.log", "Caf\u00e9/x.md")
    assert_kept(rules, "Cafe.md")


def test_cccignore_bad_line_is_skipped_with_a_warning(tmp_path: Path, logs: list[str]) -> None:
    cccignore(tmp_path, "*.log\n!\n*.bak\n")
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "a.log", "a.bak")
    assert any(line.startswith("WARNING .cccignore line 2: bad pattern '!'") for line in logs)


def test_unreadable_cccignore_warns(tmp_path: Path, logs: list[str]) -> None:
    (tmp_path / ".cccignore").write_bytes(b"caf\xe9\n")
    rules = IgnoreRules.load(tmp_path)
    assert_kept(rules, "a.md")
    assert any("cannot read" in line and ".cccignore" in line for line in logs)


def test_configured_patterns(tmp_path: Path) -> None:
    """`patterns` (from ccc-watch's configuration) come before .cccignore, so the vault's
    .cccignore has the last word."""
    cccignore(tmp_path, "!keep.pdf\n")
    rules = IgnoreRules.load(tmp_path, patterns=["*.pdf", "Scratch/"])
    assert_ignored(rules, "a.pdf", "Scratch/x.md")
    assert_kept(rules, "keep.pdf")
    assert rules.explain("a.pdf") == "pattern '*.pdf' (config)"


def test_bad_configured_pattern_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        IgnoreRules.load(tmp_path, patterns=["\\"])
    assert e.value.key == "ignore"


def test_negation_cannot_reinclude_built_in_rules(tmp_path: Path) -> None:
    cccignore(tmp_path, "!.obsidian/\n!.hidden.md\n!4913\n")
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, ".obsidian/app.json", ".hidden.md", "4913")


# --- Obsidian's userIgnoreFilters ------------------------------------------------------


def test_user_ignore_filters_prefixes(tmp_path: Path) -> None:
    """F6/B12: plain entries are prefixes of the vault path, as in Obsidian."""
    app_json(tmp_path, {"userIgnoreFilters": ["Archive/Excluded/", "Daily", "top.md"]})
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "Archive/Excluded/hidden.md", "Archive/Excluded/a/b.md")
    assert_ignored(rules, "Archive/Excluded", is_dir=True)
    assert_kept(rules, "Archive/kept.md", "Archive/Excluded.md")
    assert_kept(rules, "Archive", is_dir=True)
    # "Daily" is a prefix, not a folder name: it also takes "Daily Notes/" and "Daily.md".
    assert_ignored(rules, "Daily/x.md", "Daily Notes/x.md", "Daily.md")
    assert_ignored(rules, "Daily Notes", is_dir=True)
    assert_kept(rules, "daily/x.md", "Notes/Daily/x.md")
    assert_ignored(rules, "top.md")
    assert rules.explain("Archive/Excluded/hidden.md") == (
        "in ignored folder Archive/Excluded/: Obsidian userIgnoreFilters prefix 'Archive/Excluded/'"
    )


def test_user_ignore_filters_regexes(tmp_path: Path) -> None:
    """'/.../flags' entries are regexes searched anywhere in the path; they apply to
    files, never prune a folder by themselves."""
    filters = [
        "/\\.excalidraw\\.md$/i",
        "/^Temp\\//",
        "/(?<year>20\\d\\d)-(?<month>\\d\\d)\\.md$/",  # JavaScript's named groups
        "/\\u00e9t\\u{e9}\\cJ?$/u",  # JavaScript's \\u, \\u{} and \\c escapes
    ]
    app_json(tmp_path, {"userIgnoreFilters": filters})
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "a.excalidraw.md", "x/Drawing.EXCALIDRAW.md", "Temp/a.md")
    assert_ignored(rules, "Logs/2024-11.md", "x/été")
    assert_kept(rules, "a.md", "NotTemp/a.md", "2024-2025.md", "été.md", "\\u00e9t.md")
    assert_kept(rules, "Temp", is_dir=True)
    assert rules.explain("Temp/a.md") == "Obsidian userIgnoreFilters regex /^Temp\\//"


def test_bad_user_ignore_filters_are_skipped(tmp_path: Path, logs: list[str]) -> None:
    app_json(tmp_path, {"userIgnoreFilters": ["/(/", "/x/q", 3, "", None, "Keep/"]})
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "Keep/a.md")
    assert_kept(rules, "a.md", "x.md")
    warnings = [line for line in logs if line.startswith("WARNING userIgnoreFilters")]
    assert len(warnings) == 5, logs


def test_user_ignore_filters_re2_cannot_run_are_skipped(tmp_path: Path, logs: list[str]) -> None:
    """Look-around and back-references have no linear-time matcher (RE2 has neither):
    each such entry is skipped with one WARNING naming it, and the others apply."""
    filters = ["/^(?!Keep\\/)/", "/(?<=x)y/", "/(a)\\1/", "/(?<n>a)\\k<n>/", "/\\.tmp$/"]
    app_json(tmp_path, {"userIgnoreFilters": filters})
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "a.tmp")
    assert_kept(rules, "a.md", "Keep/a.md", "xy.md", "aa.md")
    warnings = [line for line in logs if line.startswith("WARNING userIgnoreFilters")]
    assert len(warnings) == 4, logs
    assert all("\\n" not in w and "b'" not in w for w in warnings), warnings


# A path on which a backtracking engine takes exponential time for these patterns
# (about 2^60 steps for the regexes; C(60, 12) for the gitignore stars): were they run
# by Python's re, the walk would not end.
HOSTILE_NAME = "a" * 60 + "!"
HOSTILE_REGEXES = ["/(a+)+$/", "/(a|aa)+$/", "/^(a|a?)+$/", "/^(\\w+\\s?)*$/", "/(.*a){12}$/"]
HOSTILE_GLOBS = ["*a*a*a*a*a*a*a*a*a*a*a*a*b", "**/*a*a*a*a*a*a*a*a*a*a*a*a*b/**"]


def test_hostile_patterns_cannot_hang_the_walk(tmp_path: Path) -> None:
    """Patterns from the vault's own app.json and .cccignore that backtrack
    catastrophically, against names that trigger it: `rebuild --dry-run` (a real
    walk, in a child process) finishes, and the names are not ignored. The timeout
    is generous: it only tells "finishes" from "never finishes"."""
    vault = tmp_path / "vault"
    deep = vault / "/".join([HOSTILE_NAME] * 3)
    deep.mkdir(parents=True)
    for folder in (vault, deep):
        (folder / f"{HOSTILE_NAME}.md").write_text("x\n")
        (folder / f"{HOSTILE_NAME}.txt").write_text("x\n")
    app_json(vault, {"userIgnoreFilters": HOSTILE_REGEXES})
    cccignore(vault, "\n".join(HOSTILE_GLOBS) + "\n")
    cmd = [sys.executable, "-m", "ccc_watch.cli", "--vault", str(vault)]
    cmd += ["--data-dir", str(tmp_path / "data"), "rebuild", "--dry-run", "--json"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the walk did not finish in 120 s: a pattern backtracks")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["seen"] == 4


@pytest.mark.parametrize("pattern", HOSTILE_REGEXES)
def test_a_hostile_regex_still_matches_what_it_should(tmp_path: Path, pattern: str) -> None:
    """Linear time does not change what matches (short names here: the hostile ones
    are the walk test's, in a child process, since a backtracking engine never returns)."""
    app_json(tmp_path, {"userIgnoreFilters": [pattern]})
    rules = IgnoreRules.load(tmp_path)
    assert rules.is_ignored("a" * 12)
    assert not rules.is_ignored("a" * 12 + "!")


def test_too_many_patterns_to_match_together_are_dropped_not_fatal(
    tmp_path: Path, logs: list[str]
) -> None:
    """RE2 matches all patterns of a file in one memory budget; a .cccignore or an
    app.json too big for it is not applied (one WARNING), the other rules still are."""
    cccignore(tmp_path, "".join(f"*{i}*a*b*c*d*e*f*g*h[a-z]?{i}/**/x*\n" for i in range(4000)))
    app_json(
        tmp_path,
        {"userIgnoreFilters": [f"/{i}[^/]*a[^/]*b[^/]*c.{{1,40}}d{i}/" for i in range(4000)]},
    )
    rules = IgnoreRules.load(tmp_path, patterns=["*.log"])
    assert_ignored(rules, "a.log", ".hidden.md")
    assert_kept(rules, "1xabcdefghz1/q/xyz.md", "1abcxd1.md")
    warnings = [line for line in logs if "too many or too complex" in line]
    assert len(warnings) == 2, logs


def test_rule_files_are_read_bounded_and_without_blocking(tmp_path: Path, logs: list[str]) -> None:
    """A FIFO in place of .cccignore or app.json would block a plain read forever, and
    an app.json of gigabytes would be read whole: each is not applied, with a WARNING."""
    os.mkfifo(tmp_path / ".cccignore")
    (tmp_path / ".obsidian").mkdir()
    with (tmp_path / ".obsidian" / "app.json").open("w") as f:
        f.write('{"userIgnoreFilters": ["Archive/"], "pad": "')
        f.write("x" * (RULE_FILE_MAX_BYTES + 1) + '"}')
    done: list[IgnoreRules] = []
    thread = threading.Thread(target=lambda: done.append(IgnoreRules.load(tmp_path)), daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        os.close(os.open(tmp_path / ".cccignore", os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail("IgnoreRules.load blocked on a FIFO .cccignore")
    assert_kept(done[0], "Archive/a.md")
    warned = [line for line in logs if line.startswith("WARNING cannot read")]
    assert len(warned) == 2, logs


def test_names_that_are_not_utf8_meet_user_patterns_without_error(tmp_path: Path) -> None:
    """RE2 matches UTF-8: a name with bad bytes (surrogate escapes) is tested with them
    replaced, never raises."""
    app_json(tmp_path, {"userIgnoreFilters": ["/caf.\\.md$/"]})
    cccignore(tmp_path, "*.bak\n")
    rules = IgnoreRules.load(tmp_path)
    bad = b"caf\xe9.md".decode("utf-8", "surrogateescape")
    assert rules.is_ignored(f"x/{bad}")
    assert rules.is_ignored(b"caf\xe9.bak".decode("utf-8", "surrogateescape"))
    assert not rules.is_ignored(b"x\xff.txt".decode("utf-8", "surrogateescape"))
    assert rules.explain(f"x/{bad}") is not None


@pytest.mark.parametrize(
    "text",
    [
        '{"userIgnoreFilters": ["Archive/"',  # truncated mid-write
        "\ufffe not json",
        '["Archive/"]',  # not an object
        '{"userIgnoreFilters": "Archive/"}',  # not a list
    ],
)
def test_bad_app_json_warns_and_is_ignored(tmp_path: Path, logs: list[str], text: str) -> None:
    app_json(tmp_path, text)
    rules = IgnoreRules.load(tmp_path)
    assert_kept(rules, "Archive/a.md")
    assert any(line.startswith("WARNING") and "app.json" in line for line in logs), logs


def test_missing_files_are_fine_and_silent(tmp_path: Path, logs: list[str]) -> None:
    rules = IgnoreRules.load(tmp_path / "no-such-vault")
    assert_kept(rules, "a.md")
    assert_ignored(rules, ".obsidian/app.json")
    assert not [line for line in logs if line.startswith("WARNING")]


def test_app_json_without_filters(tmp_path: Path) -> None:
    app_json(tmp_path, {"alwaysUpdateLinks": True})
    assert_kept(IgnoreRules.load(tmp_path), "Archive/a.md")


# --- ancestors, caching, describe --------------------------------------------------------


def test_anything_under_an_ignored_folder_is_ignored(tmp_path: Path) -> None:
    cccignore(tmp_path, "Private\n")
    rules = IgnoreRules.load(tmp_path)
    assert_ignored(rules, "Private/a/b/c/d.md", "x/Private/y.md")
    assert_ignored(rules, "Private/a", is_dir=True)


def test_answers_do_not_depend_on_query_order(tmp_path: Path) -> None:
    """Folder decisions are cached; asking about a file first, or a folder first, gives
    the same answers as a fresh object."""
    cccignore(tmp_path, "Old/\n*.log\n")
    app_json(tmp_path, {"userIgnoreFilters": ["Archive/"]})
    queries = [
        ("Old/a/b.md", False),
        ("Old", True),
        ("Old/a", True),
        ("Archive/x/y.md", False),
        ("Archive", True),
        ("Keep/a.md", False),
        ("Keep", True),
        ("Keep/x.log", True),
        ("Keep/x.log/y.md", False),
    ]
    expected = [IgnoreRules.load(tmp_path).is_ignored(k, is_dir=d) for k, d in queries]
    for order in (queries, queries[::-1]):
        rules = IgnoreRules.load(tmp_path)
        got = {(k, d): rules.is_ignored(k, is_dir=d) for k, d in order}
        assert [got[q] for q in queries] == expected
    assert expected == [True, True, True, True, True, False, False, True, True]


def test_is_entry_ignored_matches_is_ignored(tmp_path: Path) -> None:
    cccignore(tmp_path, "*.log\nbuild/\n")
    rules = IgnoreRules.load(tmp_path)
    for folder, name, is_dir in [
        ("", ".obsidian", True),
        ("", "a.md", False),
        ("x", "a.log", False),
        ("x", "build", True),
        ("x", "build", False),
        ("x/y", "4913", False),
    ]:
        key = f"{folder}/{name}" if folder else name
        assert rules.is_entry_ignored(folder, name, is_dir=is_dir) == rules.is_ignored(
            key, is_dir=is_dir
        )


NAMES = st.sampled_from(
    [
        "a.md",
        "Notes",
        "Archive",
        "Excluded",
        "Daily Notes",
        ".obsidian",
        ".trash",
        ".git",
        ".hidden",
        "4913",
        "n.md~",
        "#x#",
        "#x.md",
        "keep.md",
        "x.log",
        "build",
        "Temp",
        "a.excalidraw.md",
        "Caf\u00e9",
    ]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(NAMES, min_size=1, max_size=5), is_dir=st.booleans())
def test_explain_agrees_with_is_ignored(parts: list[str], is_dir: bool) -> None:
    """The fast path (is_ignored, cached) and the slow one (explain) agree."""
    rules = _RULES_FOR_PROPERTY
    key = "/".join(parts)
    assert rules.is_ignored(key, is_dir=is_dir) == (rules.explain(key, is_dir=is_dir) is not None)


_RULES_FOR_PROPERTY = IgnoreRules(
    patterns=["*.log", "!keep.log", "build/"],
    cccignore=["Notes/*", "!Notes/keep.md"],
    user_ignore_filters=["Archive/Excluded/", "Daily", "/^Temp\\//", "/\\.excalidraw\\.md$/i"],
)


def test_describe_lists_active_rules(tmp_path: Path) -> None:
    cccignore(tmp_path, "# comment\n\n*.log\n!keep.log\n")
    app_json(tmp_path, {"userIgnoreFilters": ["Archive/", "/^Temp/i"]})
    lines = IgnoreRules.load(tmp_path, patterns=["*.pdf"]).describe()
    assert lines[:4] == [
        "config folder: .obsidian/",
        "Obsidian trash: .trash/",
        "git: .git/",
        "dot-files and dot-folders at any depth (including .cccignore)",
    ]
    assert lines[4].startswith("litter: .DS_Store, Thumbs.db")
    assert lines[5:] == [
        "pattern (config): *.pdf",
        "pattern (.cccignore:3): *.log",
        "pattern (.cccignore:4): !keep.log",
        "Obsidian userIgnoreFilters (prefix): Archive/",
        "Obsidian userIgnoreFilters (regex): /^Temp/i",
    ]


def test_is_ignored_is_fast(tmp_path: Path) -> None:
    """100,000 calls on keys spread over 1,000 folders, with user rules of every kind.
    The bound is loose (a slow CI machine must pass); the measured figure is printed."""
    cccignore(tmp_path, "*.log\n!keep.log\nbuild/\n**/cache/**\n")
    app_json(tmp_path, {"userIgnoreFilters": ["Archive/Excluded/", "Daily", "/\\.tmp\\d+$/"]})
    rules = IgnoreRules.load(tmp_path)
    keys = [f"Logs/{i % 10}/{i % 1000:03d}/Note {i:06d}.md" for i in range(100_000)]
    start = time.perf_counter()
    ignored = sum(rules.is_ignored(k) for k in keys)
    per_call = (time.perf_counter() - start) / len(keys) * 1e6
    print(f"is_ignored: {per_call:.2f} µs/call")
    assert ignored == 0
    assert per_call < 50
