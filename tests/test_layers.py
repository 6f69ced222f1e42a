"""Imports run downward only (DESIGN.md, "Layout"): the vault, the indexer and the store
never import the mirror, the changes, the daemon or the CLI; nothing but the CLI
imports the CLI. Every import counts, also one inside a function or under
TYPE_CHECKING. The modules are read with ast, not imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ccc_watch"
ABOVE = {"mirror", "changes", "daemon", "cli"}
# For each part of the package, the parts it must not import.
FORBIDDEN = {
    "vault": ABOVE,
    "index": ABOVE,
    "store": ABOVE,
    "mirror": ABOVE - {"mirror"},
    "changes": {"daemon", "cli"},
    "daemon": {"cli"},
}


def imported_parts(path: Path) -> set[tuple[str, int]]:
    """(part of ccc_watch, line) for each ccc_watch import in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "ccc_watch":  # from ccc_watch import cli
                names = [f"ccc_watch.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "ccc_watch" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_imports_run_downward() -> None:
    """No module of ccc_watch imports a part that sits above its own."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        forbidden = FORBIDDEN.get(part, set()) | ({"cli"} if part != "cli" else set())
        for target, line in sorted(imported_parts(path)):
            if target in forbidden:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {part} imports {target}")
    assert not wrong, "\n".join(wrong)
