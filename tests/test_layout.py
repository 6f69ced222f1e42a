"""The package tree is the architecture: imports run downward only.

Each room of `ccc_watch/` may import only the rooms listed for it here (imports made
for type checking alone do not count, lazy imports inside functions do). A new arrow
is a decision: add it to ALLOWED with the reason, or move the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ccc_watch"

# room -> the rooms it may import (besides itself). Rooms are top-level modules and
# subpackages of ccc_watch; "_redb" is the compiled binding.
BASE = {"errors"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "procs": BASE,
    # log.safe: the one escaping of names for log lines; _redb: a note's compiled read
    "vault": BASE | {"log", "_redb"},
    "config": BASE,
    # The backup key's sources: the key file is a setting, checked like the data dir.
    "keys": BASE | {"config", "procs"},
    # Archives of the store and the mirror: a raw copy of the store, the mirror built
    # from it under the settings' policy (index), a reconcile after a restore (changes),
    # the key (keys).
    "backup": BASE | {"procs", "config", "store", "mirror", "changes", "keys", "index", "history"},
    # records are the store's type; a policy that seals reads the vault's key (keys);
    # the body scanner is compiled (_redb.scan_body)
    "index": BASE | {"config", "vault", "store", "log", "keys", "_redb"},
    "store": BASE | {"vault", "procs", "_redb"},
    "log": BASE | {"config"},
    # _redb: the rows' plain columns are built compiled (rust/src/rows.rs)
    "mirror": BASE | {"store", "index", "procs", "log", "_redb"},
    "changes": BASE | {"vault", "index", "store", "mirror", "log", "procs"},
    "daemon": BASE
    | {"vault", "index", "store", "mirror", "changes", "log", "procs", "config"}
    | {"history"}  # the daily pruning by the retention settings
    | {"backup"},  # backup.retention: when the last scheduled backup was
    "service": BASE | {"config"},
    "history": BASE | {"store"},  # reads the changelog, its chain and checkpoint
    "nodes": BASE | {"store", "mirror", "config", "keys", "log", "procs", "history"},
    # The library: the store read-only, the feed (history), links and SQL (mirror),
    # the health verdict (daemon.status), settings (config), path keys (vault).
    "api": BASE | {"config", "store", "history", "vault", "mirror", "index", "daemon"},
    "cli": BASE
    | {"vault", "index", "store", "mirror", "changes", "log", "procs", "config", "daemon"}
    | {"service", "history", "keys", "backup", "nodes", "api"},
}


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "ccc_watch":
        return None
    # The package itself (`from ccc_watch import __version__`) is everyone's.
    return parts[1] if len(parts) > 1 and not parts[1].startswith("__") else "__init__"


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> set[str]:
    """The ccc_watch rooms a file imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and _type_checking_only(node) for n in ast.walk(node)}  # fmt: skip
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if node.module == "ccc_watch":  # from ccc_watch import config, _redb
                names = [f"ccc_watch.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            room = _room(name)
            if room is not None and room != "__init__":
                found.add(room)
    return found


def room_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def test_every_room_is_known() -> None:
    """A new subpackage or top-level module gets a line in ALLOWED."""
    rooms = {room_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert rooms <= set(ALLOWED), sorted(rooms - set(ALLOWED))


def test_imports_run_downward_only() -> None:
    """No room imports one it may not: the store never imports the daemon, the
    indexer never imports the CLI."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = room_of(path)
        if room == "__init__":
            continue
        for target in imports(path) - {room} - ALLOWED[room]:
            wrong.append(f"{path.relative_to(PACKAGE.parent)} imports ccc_watch.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_layer_table_has_no_cycle() -> None:
    """ALLOWED itself is a layering: no two rooms may import each other, directly or
    around a loop."""
    seen: dict[str, int] = {}

    def visit(room: str, trail: tuple[str, ...]) -> None:
        assert room not in trail, " -> ".join((*trail, room))
        if seen.get(room):
            return
        for target in ALLOWED.get(room, set()):
            visit(target, (*trail, room))
        seen[room] = 1

    for room in ALLOWED:
        visit(room, ())


def test_the_readme_tree_matches_the_package() -> None:
    """README's "Layout" tree names every subpackage and top-level module, and nothing
    that is not there."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Layout", 1)[1]
    tree = section.split("```", 2)[1]
    named = {
        line.split()[0].rstrip("/").removesuffix(".py")
        for line in tree.splitlines()[2:]  # after the language line and "ccc_watch/"
        if line.strip()
    }
    rooms = {room_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert named == rooms | {"_redb"}
