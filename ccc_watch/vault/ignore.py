"""Which vault paths are not content: one IgnoreRules object shared by the scanner,
the watcher and `verify`, so that all three agree on what the index should hold.

A path is ignored when it, or any folder above it, matches one of these rules, checked
in this order (the first match is the reason `explain` gives):

1. the config folder at the top of the vault (`.obsidian/`, or the name Obsidian's
   "Override config folder" setting gives it, e.g. `.obsidian-work/`);
2. `.trash/` (Obsidian's own trash) and `.git/`;
3. any other dot-file or dot-folder at any depth; this includes `.cccignore` itself,
   which is configuration, not content;
4. DEFAULT_LITTER: files that editors, operating systems and sync tools leave beside
   notes;
5. the user's gitignore-style patterns: the `patterns` argument (ccc-watch config),
   then `<vault>/.cccignore`, read with pathspec's GitIgnoreSpec; as in git, a later
   line wins, `!pattern` re-includes a path an earlier *pattern* excluded, and nothing
   inside an excluded folder can be re-included;
6. Obsidian's "Excluded files" (`userIgnoreFilters` in `<config>/app.json`).

Rules 1-4 are built in: a `!` pattern cannot re-include a dot-file or litter.

`userIgnoreFilters` is read the way Obsidian reads it. An entry written `/regex/flags`
is a JavaScript-style regular expression searched anywhere in the vault path (flags:
i, m, s; g, y, u, d are accepted and change nothing here). Any other entry is a plain
prefix of the vault path: "Archive/" excludes the folder Archive, while "Daily" also
excludes "Daily Notes/" and "Daily.md", as it does in Obsidian. A regex is tested on
file paths only, as in Obsidian: it never prunes a folder during a walk, so a walk still
enters a folder whose files all match and tests them one by one.

Temporary files. `*.tmp` is deliberately NOT ignored. Editors save atomically by
writing a temporary name and renaming it onto the note; the watcher must see that
rename as a move onto the note, which it does from the destination path whatever the
source is called, so ignoring the source would buy nothing, while a real file that
happens to end in `.tmp` would silently vanish from the index. The common temporary
names are covered anyway: `.n.md.tmp` and `.syncthing.n.md.tmp` are dot-files, vim's
`4913` and `n.md~`, and JetBrains' `___jb_tmp___`/`___jb_old___` names are litter.
A name such as `n.md.tmp-12` (a sync tool's temp name) is content while it exists: the
watcher may index it for the moment it exists, and the rename onto `n.md` then arrives
as a move that forgets the temporary name; a scan after the rename never sees it. It
stays in the index only if the editor crashes and leaves it on disk, which is then the
truth about the vault.

`is_ignored` runs for every event and for every file of a walk, so folder decisions
are cached (a file costs one dictionary look-up for its folder plus its own tests) and
all patterns are compiled once. An IgnoreRules object never changes; when `.cccignore`
or `app.json` changes (see `rule_files`), load a new one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec
from loguru import logger

from ccc_watch.errors import ConfigError
from ccc_watch.log.safe import shown
from ccc_watch.vault.paths import nfc

if TYPE_CHECKING:
    from ccc_watch.config import Settings

__all__ = ["CCCIGNORE", "DEFAULT_CONFIG_DIR", "DEFAULT_LITTER", "IgnoreRules"]

DEFAULT_CONFIG_DIR = ".obsidian"
CCCIGNORE = ".cccignore"

DEFAULT_LITTER: tuple[str, ...] = (
    ".DS_Store",  # macOS Finder
    "Thumbs.db",  # Windows Explorer thumbnails
    "desktop.ini",  # Windows Explorer folder settings
    "*.swp",  # vim swap files (normally hidden: .n.md.swp)
    "*.swo",
    "*~",  # vim/emacs backups: n.md~
    "4913",  # vim's probe file, written to test that a folder is writable
    ".#*",  # emacs lock links
    "\\#*#",  # emacs auto-save files: #n.md# (a name that only starts with # is a note)
    "~$*",  # Microsoft Office owner files: ~$report.docx
    ".~lock.*#",  # LibreOffice lock files
    ".syncthing.*.tmp",  # Syncthing downloads in progress
    "*___jb_tmp___",  # JetBrains IDEs' atomic save
    "*___jb_old___",
)

# Python's re accepts these JavaScript flags; the others change nothing for a
# single test of one path (g, d, u) or make the match sticky at the start (y).
_JS_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "g": 0, "d": 0, "u": 0, "y": 0}
_OBSIDIAN_REGEX = re.compile(r"/(.+)/([a-z]*)", re.DOTALL)
_DIR_CACHE_LIMIT = 200_000


def _litter_regex(pattern: str) -> str:
    """A regex for one DEFAULT_LITTER pattern, matched against a bare name.

    Litter patterns are gitignore patterns without a slash, so they match a name at any
    depth; only '*', '?' and backslash escapes are used (checked here)."""
    if "/" in pattern or "[" in pattern or pattern.startswith("!"):
        raise ValueError(f"litter pattern must be a plain name glob: {pattern!r}")
    out: list[str] = []
    chars = iter(pattern)
    for c in chars:
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            out.append(re.escape(next(chars)))
        else:
            out.append(re.escape(c))
    return "".join(out)


_LITTER = tuple((p, re.compile(_litter_regex(p), re.DOTALL)) for p in DEFAULT_LITTER)
_LITTER_ANY = re.compile("|".join(f"(?:{_litter_regex(p)})" for p in DEFAULT_LITTER), re.DOTALL)


def _config_dir(name: str) -> str:
    """The config folder's name, NFC; ConfigError unless it is one folder name."""
    text = nfc(name)
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\x00" in text:
        raise ConfigError("config_dir", f"must be one folder name, not {name!r}")
    return text


def _is_pattern(line: str) -> bool:
    """Whether a gitignore line is a pattern (not a blank line or a comment); raises
    ValueError for a line git would reject."""
    patterns = pathspec.GitIgnoreSpec.from_lines([line]).patterns
    return bool(patterns) and patterns[0].include is not None


def _js_regex(body: str, flags: str) -> re.Pattern[str]:
    """Compile a JavaScript regex literal's body and flags as Python re."""
    value = 0
    for flag in flags:
        if flag not in _JS_FLAGS:
            raise ValueError(f"unknown regex flag {flag!r}")
        value |= _JS_FLAGS[flag]
    # JavaScript's named groups and back-references, in Python's spelling.
    body = re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", body)
    body = re.sub(r"\\k<([A-Za-z_]\w*)>", r"(?P=\1)", body)
    if "y" in flags:  # sticky, with lastIndex 0: anchored at the start
        body = rf"\A(?:{body})"
    return re.compile(body, value)


class IgnoreRules:
    """The ignore rules of one vault; see the module docstring for what they are.

    Build one with `IgnoreRules.load(vault)`; the constructor takes rules already read.
    """

    def __init__(
        self,
        *,
        config_dir: str = DEFAULT_CONFIG_DIR,
        patterns: Sequence[str] = (),
        cccignore: Sequence[str] = (),
        user_ignore_filters: Iterable[object] = (),
    ) -> None:
        """config_dir: the config folder's name; patterns: gitignore lines from the
        ccc-watch configuration (a bad one raises ConfigError); cccignore: the lines of
        `.cccignore` (a bad one is logged and skipped); user_ignore_filters: the
        entries of Obsidian's `userIgnoreFilters` (a bad one is logged and skipped)."""
        self.config_dir = _config_dir(config_dir)

        # (origin, line) of every line that is a pattern (not a blank or a comment); the
        # spec is built from exactly these, so a match's index points into this list.
        self._patterns: list[tuple[str, str]] = []
        for line in patterns:
            line = nfc(line)
            try:
                if _is_pattern(line):
                    self._patterns.append(("config", line))
            except ValueError as e:
                raise ConfigError("ignore", f"bad gitignore pattern {line!r}: {e}") from None
        for n, line in enumerate(cccignore, start=1):
            line = nfc(line.rstrip("\r\n"))
            try:
                if _is_pattern(line):
                    self._patterns.append((f"{CCCIGNORE}:{n}", line))
            except ValueError as e:
                logger.warning(
                    "{} line {}: bad pattern {} skipped: {}", CCCIGNORE, n, shown(repr(line)), e
                )
        self._spec = (
            pathspec.GitIgnoreSpec.from_lines([line for _, line in self._patterns])
            if self._patterns
            else None
        )

        prefixes: list[str] = []
        regexes: list[tuple[str, re.Pattern[str]]] = []
        for entry in user_ignore_filters:
            if not isinstance(entry, str) or not entry:
                logger.warning(
                    "userIgnoreFilters: entry {} is not a path or /regex/: skipped",
                    shown(repr(entry)),
                )
                continue
            m = _OBSIDIAN_REGEX.fullmatch(entry)
            if m:
                try:
                    regexes.append((entry, _js_regex(m[1], m[2])))
                except (ValueError, re.error) as e:
                    logger.warning(
                        "userIgnoreFilters: bad regex {} skipped: {}", shown(repr(entry)), e
                    )
                continue
            prefixes.append(nfc(entry))
        self._prefixes = tuple(prefixes)
        self._regexes = tuple(regexes)
        self._regex_list = tuple(r for _, r in regexes)
        self._has_user_rules = bool(self._spec is not None or prefixes or regexes)
        self._dirs: dict[str, bool] = {}
        self.rule_files: frozenset[str] = frozenset({CCCIGNORE, f"{self.config_dir}/app.json"})
        """Vault keys of the files these rules were read from: reload when one changes."""

    @classmethod
    def from_settings(cls, vault: Path, settings: Settings) -> IgnoreRules:
        """The rules for a vault under the settings' config_dir and ignore patterns."""
        return cls.load(vault, config_dir=settings.config_dir, patterns=settings.ignore)

    @classmethod
    def load(
        cls, vault: Path, *, config_dir: str = DEFAULT_CONFIG_DIR, patterns: Sequence[str] = ()
    ) -> IgnoreRules:
        """Reads <vault>/.cccignore (gitignore syntax, optional) and <vault>/<config_dir>/
        app.json 'userIgnoreFilters' (optional; bad JSON -> log a warning with loguru and
        ignore it)."""
        config_dir = _config_dir(config_dir)
        cccignore: list[str] = []
        path = vault / CCCIGNORE
        try:
            # git splits on '\n' only (str.splitlines would also split on \f, \u2028, ...)
            cccignore = path.read_text(encoding="utf-8-sig").split("\n")
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as e:
            logger.warning(
                "cannot read {}: {}; its patterns are not applied", shown(path), shown(e)
            )

        filters: list[object] = []
        path = vault / config_dir / "app.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError
            logger.warning(
                "cannot read {}: {}; its userIgnoreFilters are not applied", shown(path), shown(e)
            )
            data = {}
        if not isinstance(data, dict):
            logger.warning(
                "{}: not a JSON object; its userIgnoreFilters are not applied", shown(path)
            )
            data = {}
        raw = data.get("userIgnoreFilters", [])
        if isinstance(raw, list):
            filters = raw
        else:
            logger.warning("{}: userIgnoreFilters is not a list; not applied", shown(path))
        return cls(
            config_dir=config_dir,
            patterns=patterns,
            cccignore=cccignore,
            user_ignore_filters=filters,
        )

    def is_ignored(self, key: str, *, is_dir: bool = False) -> bool:
        """key: a vault-relative POSIX NFC path (see ccc_watch.vault.paths.vault_key).

        True when the path or any folder above it is ignored. is_dir says whether the
        path is a folder (gitignore patterns ending in '/' match only folders)."""
        parent, _, name = key.rpartition("/")
        if parent:
            ignored = self._dirs.get(parent)
            if ignored is None:
                ignored = self._dir_ignored(parent)
            if ignored:
                return True
        if is_dir:
            ignored = self._dirs.get(key)
            return self._dir_ignored(key) if ignored is None else ignored
        return self._own(key, parent, name, False)

    def is_entry_ignored(self, folder_key: str, name: str, *, is_dir: bool = False) -> bool:
        """is_ignored for the entry `name` of a folder known NOT to be ignored (folder_key
        is "" for the vault's top level). A walk calls this for each entry it lists: it
        skips the ancestor look-up that is_ignored does."""
        key = f"{folder_key}/{name}" if folder_key else name
        return self._own(key, folder_key, name, is_dir)

    def explain(self, key: str, *, is_dir: bool = False) -> str | None:
        """The rule that ignores key (naming the folder it applies to when that is an
        ancestor), or None when key is not ignored. Slower than is_ignored."""
        parts = key.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            last = i == len(parts)
            why = self._reason(sub, "/".join(parts[: i - 1]), parts[i - 1], is_dir or not last)
            if why is not None:
                return why if last else f"in ignored folder {sub}/: {why}"
        return None

    def describe(self) -> list[str]:
        """Human-readable list of the active rules, for `ccc-watch config` and logs."""
        out = [
            f"config folder: {self.config_dir}/",
            "Obsidian trash: .trash/",
            "git: .git/",
            "dot-files and dot-folders at any depth (including .cccignore)",
            "litter: " + ", ".join(DEFAULT_LITTER),
        ]
        out += [f"pattern ({origin}): {line}" for origin, line in self._patterns]
        out += [f"Obsidian userIgnoreFilters (prefix): {p}" for p in self._prefixes]
        out += [f"Obsidian userIgnoreFilters (regex): {text}" for text, _ in self._regexes]
        return out

    def _dir_ignored(self, key: str) -> bool:
        """Whether folder key is ignored (itself or an ancestor), cached per folder."""
        parent, _, name = key.rpartition("/")
        if parent:
            ignored = self._dirs.get(parent)
            if ignored is None:
                ignored = self._dir_ignored(parent)
        else:
            ignored = False
        if not ignored:
            ignored = self._own(key, parent, name, True)
        if len(self._dirs) >= _DIR_CACHE_LIMIT:
            self._dirs.clear()
        self._dirs[key] = ignored
        return ignored

    def _own(self, key: str, parent: str, name: str, is_dir: bool) -> bool:
        """Whether key's own name or path matches a rule (ancestors not considered).
        Must agree with _reason; the tests check that it does."""
        if name[:1] == "." or (not parent and name == self.config_dir):
            return True
        if _LITTER_ANY.fullmatch(name):
            return True
        if not self._has_user_rules:
            return False
        path = key + "/" if is_dir else key
        if self._spec is not None and self._spec.match_file(path):
            return True
        if self._prefixes and path.startswith(self._prefixes):
            return True
        if self._regex_list and not is_dir:
            for rx in self._regex_list:
                if rx.search(key):
                    return True
        return False

    def _reason(self, key: str, parent: str, name: str, is_dir: bool) -> str | None:
        """The rule key's own name or path matches, spelled out (see _own)."""
        if not parent and name == self.config_dir:
            return f"config folder {self.config_dir}/"
        if not parent and name == ".trash":
            return "Obsidian trash .trash/"
        if name == ".git":
            return "git folder .git/"
        if name == CCCIGNORE:
            return f"{CCCIGNORE} is configuration"
        if name[:1] == ".":
            return "dot-file" if not is_dir else "dot-folder"
        for pattern, rx in _LITTER:
            if rx.fullmatch(name):
                return f"litter {pattern}"
        path = key + "/" if is_dir else key
        if self._spec is not None:
            result = self._spec.check_file(path)
            if result.include and result.index is not None:
                origin, line = self._patterns[result.index]
                return f"pattern {line!r} ({origin})"
        for prefix in self._prefixes:
            if path.startswith(prefix):
                return f"Obsidian userIgnoreFilters prefix {prefix!r}"
        if not is_dir:
            for text, rx in self._regexes:
                if rx.search(key):
                    return f"Obsidian userIgnoreFilters regex {text}"
        return None
