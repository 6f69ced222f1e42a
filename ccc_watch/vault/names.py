"""Finding a vault path from what a person types: an absolute path inside the vault, a
note's name as an Obsidian link gives it (no `.md`, no folder), or a near miss.

`relative_to_vault` turns an absolute path into its key (or says it is outside),
`link_matches` resolves a link target the way Obsidian does, and `near_matches`
offers the closest paths when nothing matches. All of them only compute: the caller
hands in the store's paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ccc_watch.errors import UsageError
from ccc_watch.log.safe import shown
from ccc_watch.vault.paths import nfc

NOTE_SUFFIX = ".md"
NEAR_LIMIT = 5  # suggestions at most
NEAR_CUTOFF = 0.6  # difflib's default similarity for a "close" match


def relative_to_vault(path: str, vault: Path) -> str:
    """The vault-relative key of an absolute path inside the vault; UsageError naming
    the path when it lies outside the vault (or is the vault itself). The vault may be
    reached through a symlink, and so may the path's folders; the file itself is not
    resolved (a file symlink in the vault is indexed under its own name)."""
    given = Path(os.path.abspath(os.path.expanduser(path)))  # '..' folded, as a shell would
    roots = dict.fromkeys((vault.absolute(), _resolved(vault)))
    for candidate in (given, _resolved(given.parent) / given.name):
        for root in roots:
            try:
                rel = candidate.relative_to(root)
            except ValueError:
                continue
            if not rel.parts:
                raise UsageError(f"{shown(path)} is the vault itself: name a file in it")
            return nfc(rel.as_posix())
    raise UsageError(
        f"{shown(path)} is not inside the vault {shown(vault)}: give a path inside it, "
        "or one relative to it"
    )


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop on the way: take it as given
        return path


def _stem(path: str) -> str:
    name = path.rpartition("/")[2]
    return name[: -len(NOTE_SUFFIX)] if name.casefold().endswith(NOTE_SUFFIX) else name


def link_matches(name: str, paths: Iterable[str]) -> list[str]:
    """The paths an Obsidian link to `name` could mean, sorted: `name` (and `name.md`)
    as a path, else as the end of a path after a '/' (`Daily/2026-11-27` finds
    `Journal/Daily/2026-11-27.md`); case counts, unless only a match that ignores it
    exists (Obsidian's links ignore case). One match: that note; several: ambiguous."""
    targets = [name] if name.casefold().endswith(NOTE_SUFFIX) else [name + NOTE_SUFFIX, name]
    folded = [t.casefold() for t in targets]
    exact: list[str] = []
    loose: list[str] = []
    for path in paths:
        if any(path == t or path.endswith("/" + t) for t in targets):
            exact.append(path)
        elif not exact:
            low = path.casefold()
            if any(low == t or low.endswith("/" + t) for t in folded):
                loose.append(path)
    found = exact or loose
    # A note beats a file of the same name without the suffix (`a` and `a.md`: `a.md`).
    notes = [p for p in found if p.casefold().endswith(NOTE_SUFFIX)]
    return sorted(notes if notes and len(notes) < len(found) else found)


def near_matches(name: str, paths: Iterable[str], limit: int = NEAR_LIMIT) -> list[str]:
    """At most `limit` paths closest to `name`, best first: compared whole, and by the
    note's name alone (a typo in `Welcom` finds `Notes/Welcome.md`), ignoring case;
    none closer than difflib's usual cutoff."""
    from difflib import SequenceMatcher  # only when a lookup failed: not at start-up

    whole, stem = name.casefold(), _stem(name).casefold()
    by_path, by_stem = SequenceMatcher(), SequenceMatcher()
    by_path.set_seq2(whole)
    by_stem.set_seq2(stem)
    scored: list[tuple[float, str]] = []
    for path in paths:
        best = 0.0
        for matcher, text in ((by_path, path.casefold()), (by_stem, _stem(path).casefold())):
            matcher.set_seq1(text)
            # The cheap upper bounds first, as difflib.get_close_matches does.
            if matcher.real_quick_ratio() >= NEAR_CUTOFF and matcher.quick_ratio() >= NEAR_CUTOFF:
                best = max(best, matcher.ratio())
        if best >= NEAR_CUTOFF:
            scored.append((-best, path))
    return [path for _, path in sorted(scored)[:limit]]
