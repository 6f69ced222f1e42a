"""The service templates and how they are filled in.

The templates are package data (`templates/<platform>/`, shipped inside the wheel),
read with importlib.resources so an installed ccc-watch needs no source tree. In a
clone, the top-level `systemd/`, `launchd/` and `service/` folders are links to them.
Placeholders are `@NAME@`; every value is escaped for the file's format before it goes
in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from xml.sax.saxutils import escape as xml_escape

from ccc_watch.errors import EXIT_FAILURE, CccWatchError

PLACEHOLDER = re.compile(r"@([A-Z][A-Z_]*)@")

# Each kind of service file: (platform folder under templates/, file name). systemd@ is
# the template unit for --name; hardening is the optional systemd drop-in.
TEMPLATES = {
    "systemd": ("systemd", "ccc-watch.service"),
    "systemd@": ("systemd", "ccc-watch@.service"),
    "hardening": ("systemd", "hardening.conf"),
    "launchd": ("launchd", "io.ccc-watch.plist"),
    "windows": ("windows", "ccc-watch.xml"),
}


class ServiceError(CccWatchError):
    """The service cannot be rendered, installed or removed."""

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def templates_root() -> Traversable:
    """The folder of the templates inside the installed package."""
    return files("ccc_watch.service") / "templates"


def load_template(kind: str, root: Traversable | None = None) -> tuple[Traversable, str]:
    """The template file of a kind (a key of TEMPLATES) and its text."""
    folder, filename = TEMPLATES[kind]
    path = (root or templates_root()) / folder / filename
    try:
        return path, path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise ServiceError(
            f"missing template {folder}/{filename}: expected at {path}; this ccc-watch "
            "installation is incomplete, install it again"
        ) from None


def check_text(what: str, value: str) -> str:
    """The value, unless it has a control character (no file format here takes one)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ServiceError(f"{what} contains a control character: {value!r}")
    return value


def systemd_quoted(value: str) -> str:
    """A value for inside double quotes on an Exec line: quotes and backslashes
    escaped, and '%' (specifier) and '$' (variable) doubled."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")


def systemd_text(value: str) -> str:
    """A value for free text such as Description=: only '%' (specifier) doubled."""
    return value.replace("%", "%%")


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with every @NAME@ replaced by values[NAME] (already escaped for
    the file's format); an unknown placeholder is an error."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise ServiceError(f"template placeholder {m.group(0)} has no value")
        return values[m.group(1)]

    return PLACEHOLDER.sub(sub, template)


def service_file(platform: str, name: str | None, raw: Mapping[str, str]) -> str:
    """The service file of a platform (systemd with a --name: the template unit), its
    placeholders filled with the raw values, each escaped for that file's format."""
    for key, value in raw.items():
        check_text(key.lower(), value)
    if platform == "systemd":
        _, template = load_template("systemd@" if name else "systemd")
        values = {k: systemd_quoted(v) for k, v in raw.items()}
        values["VAULT"] = systemd_text(raw["VAULT"])
        return render(template, values)
    _, template = load_template(platform)
    return render(template, {k: xml_escape(v) for k, v in raw.items()})


def toml_string(value: str) -> str:
    """A TOML basic string (quotes, backslashes and control characters escaped)."""
    out = []
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'
