"""ccc-watch as a library: a vault's index, read-only, for scripts, notebooks and other
programs (README "Library").

    from ccc_watch.api import open_index

    with open_index("~/vault") as index:
        note = index.get("Welcome.md")
        for record in index.records(tag="project", folder="Projects"):
            ...
        for event in index.events(since=cursor, follow=True):
            ...

Everything here reads: the store read-only (safe beside a running daemon, which does
all the writing), the mirror through the same sandboxed connection as `ccc-watch sql`.
"""

from ccc_watch.api.index import Index, Link, open_index
from ccc_watch.history.feed import Cursor, ResyncNeeded
from ccc_watch.store import Change

__all__ = ["Change", "Cursor", "Index", "Link", "ResyncNeeded", "open_index"]
