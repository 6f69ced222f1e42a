"""Every command is documented: README.md's "### Commands" table has one row per
command of the registry (and no other), and each command module has its texts.

No subprocess here: the table and the modules are read as they are.
"""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import pytest

from ccc_watch import cli

README = Path(__file__).resolve().parents[1] / "README.md"
ROW = re.compile(r"^\| `ccc-watch (?P<name>[^\s`]+)")


def readme_commands() -> list[str]:
    """The command of each row of the README's "### Commands" table, in order."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("### Commands") + 1
    names = []
    for line in lines[start:]:
        if line.startswith("#"):  # the next section
            break
        m = ROW.match(line)
        if m:
            names.append(m["name"])
    assert names, "README.md has no command rows under ### Commands"
    return names


def test_every_command_has_a_readme_row() -> None:
    """Adding a command without a row in the README's table fails here."""
    missing = set(cli.COMMANDS) - set(readme_commands())
    assert not missing, f"commands missing from README.md's table: {sorted(missing)}"


def test_every_readme_row_is_a_command() -> None:
    """A row for a command that does not exist (removed, renamed, misspelt) fails here."""
    unknown = set(readme_commands()) - set(cli.COMMANDS)
    assert not unknown, f"README.md's table names no such command: {sorted(unknown)}"


def test_registry_follows_the_readme_order() -> None:
    """`ccc-watch --help` lists the commands in the order of the README, once each."""
    assert readme_commands() == list(cli.COMMANDS)


def test_every_command_module_is_registered() -> None:
    """A module under ccc_watch/cli/ is a command (helpers start with _), and each one is
    in the registry."""
    modules = {m.name for m in pkgutil.iter_modules(cli.__path__) if not m.name.startswith("_")}
    assert modules == set(cli.COMMANDS)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_module_has_its_texts(name: str) -> None:
    """Each command's module has a docstring (its description), a one-line HELP, and
    docstrings on add_arguments and run."""
    module, help_text = cli.COMMANDS[name]
    assert (module.__doc__ or "").strip(), f"{name}: its module has no docstring"
    assert help_text.strip() and "\n" not in help_text, f"{name}: HELP is not one line"
    assert help_text == module.HELP
    for function in (module.add_arguments, module.run):
        assert (function.__doc__ or "").strip(), f"{name}: {function.__name__} has no docstring"
