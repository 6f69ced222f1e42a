"""The Index: one vault's store and mirror, read-only, behind a small typed interface.

Each call reads one consistent snapshot of the store, opened read-only (any number of
readers beside the daemon, the one writer). A `rebuild` replaces the store's file: the
next call notices (its inode changed) and reads the new one. Records come back as the
store holds them (JSON-shaped dicts, README "Record"), so the privacy levels apply
exactly as in the databases: a SECRET note's record holds no text, a CONFIDENTIAL one's
text only sealed or not at all. Links and backlinks, and SQL, read the mirror.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ccc_watch.config import Config, load
from ccc_watch.errors import UsageError
from ccc_watch.history import feed
from ccc_watch.history.queries import parse_time
from ccc_watch.store import Change, Reopening, Store, open_readonly
from ccc_watch.store.store import Record
from ccc_watch.vault.paths import vault_key

if TYPE_CHECKING:
    import pyarrow as pa

    from ccc_watch.mirror.mirror import Mirror


@dataclass(frozen=True)
class Link:
    """One link between two notes, as the mirror resolves it (Obsidian's rules)."""

    source: str  # the note the link is in
    target: str  # as written: [[target#heading|alias]]
    resolved: str | None  # the path it resolves to, None when it is broken
    kind: str  # wikilink, embed, markdown, ...
    alias: str | None
    heading: str | None
    block: str | None
    line: int | None


def open_index(
    vault: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    config: Config | None = None,
) -> Index:
    """The index of a vault, read-only. The settings resolve as the command line's do
    (CCC_WATCH_* variables, then the config file, then defaults), with vault and
    data_dir, when given, first; or pass a loaded Config. A ConfigError names a bad
    setting; StoreMissingError says when there is no index yet (run `ccc-watch
    rebuild`)."""
    if config is None:
        flags: dict[str, Any] = {}
        if vault is not None:
            flags["vault"] = str(Path(vault).expanduser())
        if data_dir is not None:
            flags["data_dir"] = str(Path(data_dir).expanduser())
        config = load(
            flags,
            config_file=None if config_file is None else Path(config_file),
            must_exist=config_file is not None,
        )
    index = Index(config)
    index._open()  # a missing store or a bad setting shows here, not at the first call
    return index


class Index:
    """A vault's index, read-only (see the module docstring); open with open_index()."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.vault = config.require_vault()
        self.data_dir = config.resolved_data_dir()
        self._files = Reopening(
            self.data_dir,
            config.backend,
            lambda: open_readonly(self.data_dir, backend=config.backend, vault=self.vault),
        )
        self._lock = threading.Lock()

    # -- opening and closing -----------------------------------------------------------

    def _open(self) -> Store:
        """The store, reopened when its file was replaced since the last call."""
        with self._lock:
            return self._files.current()[0]

    def close(self) -> None:
        """Let go of the store's file. Idempotent."""
        with self._lock:
            self._files.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- records -----------------------------------------------------------------------

    @property
    def head(self) -> int:
        """The history's newest sequence number (0 when empty)."""
        return self._open().head()

    def get(self, path: str) -> Record | None:
        """The record of a vault-relative path (`Projects/Plan.md`), or None."""
        return self._open().get(vault_key(path))

    def __len__(self) -> int:
        return len(self._open())

    def records(
        self,
        *,
        record_type: str | None = None,
        tag: str | None = None,
        folder: str | None = None,
        classification: str | None = None,
        changed_since: float | str | feed.Cursor | None = None,
    ) -> Iterator[Record]:
        """Every record in path order, from one snapshot, that matches every filter
        given: its record_type; a tag, as Obsidian matches them (no '#', any case, and
        nested tags below it: tag="project" matches #project and #Project/alpha); a
        folder (its notes at any depth: folder="Projects" matches Projects/a.md and
        Projects/2026/b.md); a classification level (PUBLIC, INTERNAL, CONFIDENTIAL,
        SECRET); changed_since: created, edited, renamed or moved after a time (seconds
        since the epoch, or ISO 8601 / an age such as "7d") or a feed Cursor.
        ResyncNeeded when changed_since reaches into pruned history."""
        wanted_tag = None if tag is None else tag.lstrip("#").casefold()
        prefix = None if folder is None else vault_key(folder).rstrip("/") + "/"
        level = None if classification is None else classification.upper()
        store = self._open()
        with store.snapshot() as snap:
            touched: set[str] | None = None
            if changed_since is not None:
                cursor = (
                    changed_since
                    if isinstance(changed_since, feed.Cursor)
                    else feed.cursor_at(snap, _epoch(changed_since))
                )
                feed.check(snap, cursor)
                touched = set()
                for change, _ in feed.entries(snap, cursor):
                    if change.op == "delete":
                        touched.discard(change.path)
                    else:
                        if change.prev_path is not None:
                            touched.discard(change.prev_path)
                        touched.add(change.path)
            for rec in snap.records():
                path = rec["path"]
                if touched is not None and path not in touched:
                    continue
                if record_type is not None and rec.get("record_type") != record_type:
                    continue
                if prefix is not None and not path.startswith(prefix):
                    continue
                if level is not None and rec.get("classification") != level:
                    continue
                if wanted_tag is not None and not _has_tag(rec, wanted_tag):
                    continue
                yield rec

    # -- the change feed ---------------------------------------------------------------

    def events(
        self,
        since: feed.Cursor | str | int = 0,
        *,
        follow: bool = False,
        stop: threading.Event | None = None,
    ) -> Iterator[Change]:
        """The history's operations (upsert, delete, move) after since: a Cursor, its
        text (`SEQ:HASH`, from feed.Cursor.of(change)), or a sequence number. With
        follow, then each new one as the daemon commits it, until stop is set or the
        caller stops iterating. ResyncNeeded when the cursor's history is gone."""
        if isinstance(since, int):
            cursor = feed.Cursor(since)
        elif isinstance(since, str):
            try:
                cursor = feed.Cursor.parse(since)
            except ValueError as e:
                raise UsageError(str(e)) from None
        else:
            cursor = since
        if follow:
            yield from feed.follow(self.data_dir, self.config.backend, cursor, stop=stop)
        else:
            yield from feed.changes(self._open(), cursor)

    def cursor_at(self, when: float | str) -> feed.Cursor:
        """The cursor from which events() starts at a time (seconds since the epoch, or
        ISO 8601 / an age such as "90m"); ResyncNeeded when that part was pruned."""
        with self._open().snapshot() as snap:
            return feed.cursor_at(snap, _epoch(when))

    # -- the mirror: links and SQL -----------------------------------------------------

    def _mirror(self) -> Mirror:
        from ccc_watch.index.policy import IndexPolicy
        from ccc_watch.mirror.mirror import Mirror

        return Mirror(self.data_dir, IndexPolicy.from_settings(self.config))

    def _links(self, view: str, column: str, path: str) -> list[Link]:
        _, rows = self.query(
            f"SELECT source, target, resolved_path, kind, alias, heading, block, line "
            f"FROM {view} WHERE {column} = $path ORDER BY source, link_no",
            {"path": vault_key(path)},
        )
        return [Link(*row) for row in rows]

    def links(self, path: str) -> list[Link]:
        """The links in a note, in order, each with the path it resolves to (None when
        broken). Reads the mirror."""
        return self._links("resolved_links", "source", path)

    def backlinks(self, path: str) -> list[Link]:
        """The links in other notes that resolve to this one. Reads the mirror."""
        return [
            link
            for link in self._links("resolved_links", "resolved_path", path)
            if link.source != link.resolved
        ]

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of one read-only SELECT on the mirror, with DuckDB
        parameters ($1, $name). The mirror and nothing else is reachable, as with
        `ccc-watch sql`; a refused or failing query is a MirrorError."""
        from ccc_watch.mirror.sql import select

        return select(self._mirror(), sql, params)

    def query_arrow(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> pa.Table:
        """query(), as an Arrow table (pyarrow)."""
        from ccc_watch.mirror.sql import select_arrow

        return select_arrow(self._mirror(), sql, params)

    # -- health --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What `ccc-watch status --json` reports: "health" (Healthy, Degraded or
        Unhealthy), its "reason", the daemon's state, the store's head, the mirror's
        lag."""
        from ccc_watch.daemon import status

        return status.report(self.config)


def _epoch(when: float | str) -> float:
    return parse_time(when) if isinstance(when, str) else float(when)


def _has_tag(rec: Record, wanted: str) -> bool:
    for tag in rec.get("tags") or ():
        if isinstance(tag, str):
            t = tag.casefold()
            if t == wanted or t.startswith(wanted + "/"):
                return True
    return False
