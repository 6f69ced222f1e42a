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
is a JavaScript-style regular expression searched anywhere in the vault path, run on
RE2 (see below); flags: i, m, s, y (g, u, d are accepted and change nothing here). Any
other entry is a plain prefix of the vault path: "Archive/" excludes the folder
Archive, while "Daily" also excludes "Daily Notes/" and "Daily.md", as it does in
Obsidian. A regex is tested on file paths only, as in Obsidian: it never prunes a
folder during a walk, so a walk still enters a folder whose files all match and tests
them one by one.

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

The rule files are vault content, so hostile input: each is read only if it is a
regular file of at most RULE_FILE_MAX_BYTES, opened without blocking. The user's
patterns (gitignore lines and regexes alike) run on RE2, which matches in time linear
in the path whatever the pattern, in a bounded amount of memory: a pattern such as
`(a+)+$` or `*a*a*a*a*a*a*b` cannot keep the walk busy. RE2 has no look-around and no
back-references (they can take exponential time): an entry using them is skipped with a
warning, as is a whole file's worth of patterns too big to match together in RE2's
memory budget; the other rules still apply.

`is_ignored` runs for every event and for every file of a walk, so folder decisions
are cached (a file costs one dictionary look-up for its folder plus its own tests) and
all patterns are compiled once. An IgnoreRules object never changes; when `.cccignore`
or `app.json` changes (see `rule_files`), load a new one.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec
import re2
from loguru import logger

from ccc_watch.errors import ConfigError, UsageError
from ccc_watch.log.safe import shown
from ccc_watch.vault.names import relative_to_vault
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

# JavaScript flags as RE2's inline flags; the others change nothing for a single test of
# one path (g, d, u) or make the match sticky at the start (y).
_JS_FLAGS = {"i": "i", "m": "m", "s": "s", "g": "", "d": "", "u": "", "y": ""}
_OBSIDIAN_REGEX = re.compile(r"/(.+)/([a-z]*)", re.DOTALL)
# JavaScript escapes RE2 spells otherwise; any other escape pair is matched (and kept)
# so that an escaped backslash before a 'u' is not read as \u.
_JS_ESCAPE = re.compile(r"\\(?:u\{([0-9A-Fa-f]{1,6})\}|u([0-9A-Fa-f]{4})|c([A-Za-z])|.)", re.DOTALL)
_DIR_CACHE_LIMIT = 200_000
# The rule files are vault content, so hostile: read at most this much of each (a
# .cccignore of 256 KiB is thousands of patterns; Obsidian's app.json is a few KB).
RULE_FILE_MAX_BYTES = 256 * 1024


def _re2_options() -> re2.Options:
    # User patterns run on RE2, whose matching time is linear in the path whatever the
    # pattern (no backtracking), and whose memory is capped by max_mem.
    options = re2.Options()
    options.log_errors = False  # a bad pattern is our warning, not a line on stderr
    options.never_capture = True
    return options


_RE2 = _re2_options()


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


def _gitignore_spec(lines: Sequence[str]) -> pathspec.GitIgnoreSpec:
    """pathspec's gitignore matcher on RE2 (its 'simple' backend is Python re, which a
    pattern such as *a*a*a*a*a*a*b can keep busy for hours); raises re2.error when RE2
    cannot take the patterns."""
    return pathspec.GitIgnoreSpec.from_lines(lines, backend="re2")


def manifest_key(vault: Path, manifest_dir: Path | None) -> str | None:
    """The vault key of the manifest folder when it lies inside the vault (below its
    top), else None."""
    if manifest_dir is None:
        return None
    try:
        return relative_to_vault(str(manifest_dir), Path(vault))
    except UsageError:  # outside the vault, or the vault itself
        return None


def _is_pattern(line: str) -> bool:
    """Whether a gitignore line is a pattern (not a blank line or a comment); raises
    ValueError for a line git would reject, re2.error for one RE2 cannot run."""
    patterns = _gitignore_spec([line]).patterns
    return bool(patterns) and patterns[0].include is not None


def _js_escape(m: re.Match[str]) -> str:
    code = m[1] or m[2]
    if code:
        return f"\\x{{{code}}}"
    if m[3]:
        return f"\\x{{{ord(m[3]) % 32:02x}}}"
    return m[0]


def _js_regex(body: str, flags: str) -> str:
    """A JavaScript regex literal's body and flags as an RE2 pattern. Raises ValueError
    for an unknown flag, re2.error for what RE2 cannot run in linear time (look-around,
    back-references) or in its memory budget."""
    inline = ""
    for flag in flags:
        if flag not in _JS_FLAGS:
            raise ValueError(f"unknown regex flag {flag!r}")
        if _JS_FLAGS[flag] not in inline:
            inline += _JS_FLAGS[flag]
    body = _JS_ESCAPE.sub(_js_escape, body)
    if "y" in flags:  # sticky, with lastIndex 0: anchored at the start
        body = rf"\A(?:{body})"
    pattern = f"(?{inline}){body}" if inline else body
    re2.compile(pattern, _RE2)
    return pattern


def _re2_message(error: re2.error) -> str:
    """RE2's reason, as text (the binding gives bytes)."""
    reason = error.args[0] if error.args else error
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return repr(text)[1:-1]  # a pattern's text inside it stays on one line


def _matchable(path: str) -> str:
    """path as RE2 takes it (UTF-8): the bytes of a name that is not UTF-8 (surrogate
    escapes) become U+FFFD."""
    if path.isascii():
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _read_rule_file(path: Path) -> bytes:
    """A rule file's bytes: opened without blocking (a FIFO in its place must not hang
    the agent), a regular file, at most RULE_FILE_MAX_BYTES (ValueError beyond)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(RULE_FILE_MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > RULE_FILE_MAX_BYTES:
        raise ValueError(f"larger than {RULE_FILE_MAX_BYTES} bytes")
    return data


def _regex_set(patterns: Sequence[str]) -> re2.Set | None:
    """One RE2 set of the userIgnoreFilters regexes: a path is searched once for all of
    them, in one memory budget. None when there are none, or too many to fit."""
    if not patterns:
        return None
    regex_set = re2.Set.SearchSet(_RE2)
    for pattern in patterns:
        regex_set.Add(pattern)
    try:
        regex_set.Compile()
    except re2.error:
        logger.warning(
            "userIgnoreFilters: too many or too complex regexes to match together; "
            "none of them applied"
        )
        return None
    return regex_set


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
        manifest_key: str | None = None,
    ) -> None:
        """config_dir: the config folder's name; patterns: gitignore lines from the
        ccc-watch configuration (a bad one raises ConfigError); cccignore: the lines of
        `.cccignore` (a bad one is logged and skipped); user_ignore_filters: the
        entries of Obsidian's `userIgnoreFilters` (a bad one is logged and skipped)."""
        self.config_dir = _config_dir(config_dir)
        # The manifest folder (setting manifest_dir) when it lies inside the vault: built
        # in, as the config folder is, so no `!` pattern can bring it back.
        self.manifest_key = manifest_key or None

        # (origin, line) of every line that is a pattern (not a blank or a comment); the
        # spec is built from exactly these, so a match's index points into this list.
        self._patterns: list[tuple[str, str]] = []
        for line in patterns:
            line = nfc(line)
            try:
                if _is_pattern(line):
                    self._patterns.append(("config", line))
            except (ValueError, re2.error) as e:
                reason = _re2_message(e) if isinstance(e, re2.error) else e
                raise ConfigError("ignore", f"bad gitignore pattern {line!r}: {reason}") from None
        own = len(self._patterns)
        for n, line in enumerate(cccignore, start=1):
            line = nfc(line.rstrip("\r\n"))
            try:
                if _is_pattern(line):
                    self._patterns.append((f"{CCCIGNORE}:{n}", line))
            except ValueError as e:
                logger.warning(
                    "{} line {}: bad pattern {} skipped: {}", CCCIGNORE, n, shown(repr(line)), e
                )
            except re2.error as e:
                logger.warning(
                    "{} line {}: bad pattern {} skipped: {}",
                    CCCIGNORE,
                    n,
                    shown(repr(line)),
                    _re2_message(e),
                )
        self._spec = None
        if self._patterns:
            try:
                self._spec = _gitignore_spec([line for _, line in self._patterns])
            except re2.error:  # RE2's memory budget: too many or too complex together
                logger.warning(
                    "{}: too many or too complex patterns to match together; not applied",
                    CCCIGNORE,
                )
                del self._patterns[own:]
                try:
                    self._spec = _gitignore_spec([line for _, line in self._patterns])
                except re2.error:
                    raise ConfigError(
                        "ignore", "too many or too complex patterns to match together"
                    ) from None

        prefixes: list[str] = []
        regexes: list[tuple[str, str]] = []  # (entry, RE2 pattern)
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
                except ValueError as e:
                    logger.warning(
                        "userIgnoreFilters: bad regex {} skipped: {}", shown(repr(entry)), e
                    )
                except re2.error as e:
                    logger.warning(
                        "userIgnoreFilters: bad regex {} skipped: {} (look-around and "
                        "back-references are not supported: they can take exponential time)",
                        shown(repr(entry)),
                        _re2_message(e),
                    )
                continue
            prefixes.append(nfc(entry))
        self._prefixes = tuple(prefixes)
        self._regex_set = _regex_set([pattern for _, pattern in regexes])
        self._regexes = tuple(entry for entry, _ in regexes) if self._regex_set else ()
        self._has_user_rules = bool(self._spec is not None or prefixes or self._regexes)
        self._dirs: dict[str, bool] = {}
        self.rule_files: frozenset[str] = frozenset({CCCIGNORE, f"{self.config_dir}/app.json"})
        """Vault keys of the files these rules were read from: reload when one changes."""

    @classmethod
    def from_settings(cls, vault: Path, settings: Settings) -> IgnoreRules:
        """The rules for a vault under the settings' config_dir and ignore patterns."""
        return cls.load(
            vault,
            config_dir=settings.config_dir,
            patterns=settings.ignore,
            manifest_key=manifest_key(vault, getattr(settings, "manifest_dir", None)),
        )

    @classmethod
    def load(
        cls,
        vault: Path,
        *,
        config_dir: str = DEFAULT_CONFIG_DIR,
        patterns: Sequence[str] = (),
        manifest_key: str | None = None,
    ) -> IgnoreRules:
        """Reads <vault>/.cccignore (gitignore syntax, optional) and <vault>/<config_dir>/
        app.json 'userIgnoreFilters' (optional; bad JSON -> log a warning with loguru and
        ignore it)."""
        config_dir = _config_dir(config_dir)
        cccignore: list[str] = []
        path = vault / CCCIGNORE
        try:
            # git splits on '\n' only (str.splitlines would also split on \f, \u2028, ...)
            cccignore = _read_rule_file(path).decode("utf-8-sig").split("\n")
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:  # ValueError: UnicodeDecodeError, too large
            logger.warning(
                "cannot read {}: {}; its patterns are not applied", shown(path), shown(e)
            )

        filters: list[object] = []
        path = vault / config_dir / "app.json"
        try:
            data = json.loads(_read_rule_file(path))
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
            manifest_key=manifest_key,
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
        if self.manifest_key is not None:
            out.append(f"manifest folder (manifest_dir): {self.manifest_key}/")
        out += [f"pattern ({origin}): {line}" for origin, line in self._patterns]
        out += [f"Obsidian userIgnoreFilters (prefix): {p}" for p in self._prefixes]
        out += [f"Obsidian userIgnoreFilters (regex): {text}" for text in self._regexes]
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
        if key == self.manifest_key:
            return True
        if _LITTER_ANY.fullmatch(name):
            return True
        if not self._has_user_rules:
            return False
        path = key + "/" if is_dir else key
        if self._prefixes and path.startswith(self._prefixes):
            return True
        if self._spec is not None and self._spec.match_file(_matchable(path)):
            return True
        return (
            self._regex_set is not None
            and not is_dir
            and bool(self._regex_set.Match(_matchable(key)))
        )

    def _reason(self, key: str, parent: str, name: str, is_dir: bool) -> str | None:
        """The rule key's own name or path matches, spelled out (see _own)."""
        if not parent and name == self.config_dir:
            return f"config folder {self.config_dir}/"
        if key == self.manifest_key:
            return f"manifest folder {key}/ (manifest_dir)"
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
            result = self._spec.check_file(_matchable(path))
            if result.include and result.index is not None:
                origin, line = self._patterns[result.index]
                return f"pattern {line!r} ({origin})"
        for prefix in self._prefixes:
            if path.startswith(prefix):
                return f"Obsidian userIgnoreFilters prefix {prefix!r}"
        if self._regex_set is not None and not is_dir:
            found = self._regex_set.Match(_matchable(key))
            if found:
                return f"Obsidian userIgnoreFilters regex {self._regexes[min(found)]}"
        return None
