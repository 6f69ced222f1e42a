"""Recording stand-ins for the service managers' tools, and an isolated home, shared
by the service tests (tests/test_service.py) and the installed-wheel tests
(tests/test_wheel.py).

`systemctl`, `launchctl` and `schtasks` are replaced by a shell script on PATH that
appends its argv to $STUB_LOG, so a test asserts the exact command sequence.
"""

from __future__ import annotations

from pathlib import Path

TOOLS = ("systemctl", "launchctl", "schtasks")
STUB = """#!/bin/sh
# Records its argv (tab-separated) and exits $STUB_RC, or 1 when an argument equals
# $STUB_FAIL.
line=$(basename "$0")
for a in "$@"; do line="$line	$a"; done
printf '%s\\n' "$line" >> "$STUB_LOG"
if [ -n "${STUB_FAIL:-}" ]; then
    for a in "$@"; do [ "$a" = "$STUB_FAIL" ] && exit 1; done
fi
exit "${STUB_RC:-0}"
"""


# What systemd 252's `systemctl --user` prints, and its exit code, when it finds no user
# bus (XDG_RUNTIME_DIR unset, as over SSH without a login session or in a container);
# with XDG_RUNTIME_DIR set but no bus there, the reason is "No such file or directory".
NO_BUS = "Failed to connect to bus: No medium found"


def no_bus_systemctl(folder: Path) -> None:
    """Replace folder's systemctl stub by one that records its call and then fails as
    systemctl --user does without a user session bus (on stderr, exit 1)."""
    (folder / "systemctl").write_text(
        STUB.replace('exit "${STUB_RC:-0}"', f"echo '{NO_BUS}' >&2\nexit 1")
    )


def install_stubs(folder: Path) -> Path:
    """Write the recording stubs of TOOLS into folder (created); the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        (folder / tool).write_text(STUB)
        (folder / tool).chmod(0o755)
    return folder


def home_dirs(root: Path) -> dict[str, Path]:
    """HOME and the XDG base dirs under root, created: where ccc-watch and the tools
    would put configuration, data, logs and units."""
    dirs = {
        "HOME": root / "home",
        "XDG_CONFIG_HOME": root / "home" / ".config",
        "XDG_DATA_HOME": root / "home" / ".local" / "share",
        "XDG_STATE_HOME": root / "home" / ".local" / "state",
        "XDG_CACHE_HOME": root / "home" / ".cache",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def read_calls(log: Path) -> list[list[str]]:
    """Every stub call recorded in log so far (argv lists), then forget them."""
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    log.unlink()
    return [line.split("\t") for line in lines]
