"""Acting on a Plan: write the config file and the service file, and run the platform's
own tool (systemctl, launchctl, schtasks) to enable, start, stop and query the service.

Nothing here prints. Each step is passed as one message to a `report` callable that
the caller chooses (the CLI writes them to stderr), as it happens, so that a step that
fails still leaves the earlier ones shown; a failure raises ServiceError.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ccc_watch.errors import EXIT_FAILURE, EXIT_UNAVAILABLE
from ccc_watch.service.plan import UNIT, Plan, same_path, vault_in
from ccc_watch.service.render import ServiceError, toml_string

Report = Callable[[str], None]

# What `systemctl --user` says when it has no user bus to reach the user's manager:
# over SSH without a login session, in a container, under `su` (XDG_RUNTIME_DIR and
# DBUS_SESSION_BUS_ADDRESS unset, or pointing at nothing).
_NO_BUS = ("Failed to connect to bus", "Failed to connect to user scope bus")
NO_BUS_FIX = (
    "there is no user session bus here (as over SSH or in a container: "
    "XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS lead to none); run "
    "`loginctl enable-linger $USER` and log in again, or run this from a desktop session"
)


@dataclass(frozen=True)
class ToolRun:
    """One run of a service manager command: its argv, exit code and output (stdout
    and stderr together)."""

    argv: list[str]
    code: int
    output: str


def run_tool(argv: Sequence[str], report: Report, *, check: bool = True) -> ToolRun:
    """Run a service manager command, reporting its command line; with check, a failure
    raises ServiceError naming the command and showing its output."""
    shown = shlex.join(argv)
    program = shutil.which(argv[0])
    if program is None:
        raise ServiceError(f"{argv[0]} not found on PATH (needed for: {shown})")
    report(f"$ {shown}")
    proc = subprocess.run(
        [program, *argv[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        check=False,
    )
    run = ToolRun(list(argv), proc.returncode, proc.stdout)
    if check and run.code != 0:
        if no_session_bus(run):
            raise ServiceError(refusal(run), exit_code=EXIT_UNAVAILABLE)
        said = f":\n{run.output.rstrip()}" if run.output.strip() else ""
        raise ServiceError(f"`{shown}` failed with exit code {run.code}{said}")
    return run


def no_session_bus(run: ToolRun) -> bool:
    """Whether a failed systemctl --user could not reach the user's service manager."""
    return run.code != 0 and run.argv[0] == "systemctl" and any(s in run.output for s in _NO_BUS)


def refusal(run: ToolRun) -> str:
    """One line saying why a service manager command failed, and, for a missing user
    bus, how to get one."""
    first = next((line.strip() for line in run.output.splitlines() if line.strip()), "")
    said = f": {first}" if first else ""
    cause = f"`{shlex.join(run.argv)}` failed with exit code {run.code}{said}"
    return f"{cause}; {NO_BUS_FIX}" if no_session_bus(run) else cause


def _run_and_show(argv: Sequence[str], report: Report, *, check: bool = True) -> ToolRun:
    run = run_tool(argv, report, check=check)
    if run.output.strip():
        report(run.output.rstrip())
    return run


def install_commands(p: Plan, *, replacing: bool) -> list[tuple[list[str], bool]]:
    """The commands install runs after writing the file: (argv, must succeed)."""
    if p.platform == "systemd":
        cmds = [
            (["systemctl", "--user", "daemon-reload"], True),
            (["systemctl", "--user", "enable", "--now", p.unit], True),
        ]
        if replacing:  # enable --now leaves a running daemon on the old file
            cmds.append((["systemctl", "--user", "try-restart", p.unit], True))
        return cmds
    if p.platform == "launchd":
        return [(["launchctl", "bootstrap", f"gui/{p.uid}", str(p.target)], True)]
    return [
        (["schtasks", "/Create", "/TN", p.unit, "/XML", str(p.target), "/F"], True),
        (["schtasks", "/Run", "/TN", p.unit], True),
    ]


def write_config(p: Plan, report: Report) -> None:
    """Make sure the plan's config file names its vault: create the file, or append
    `vault = "..."` to it, as the plan says; never anything else."""
    assert p.vault is not None
    line = f"vault = {toml_string(str(p.vault))}\n"
    if p.config_action == "create":
        p.config_file.parent.mkdir(parents=True, exist_ok=True)
        with p.config_file.open("x", encoding="utf-8") as f:
            f.write(
                "# ccc-watch settings (see the README, Configuration); written by "
                "`ccc-watch service install`.\n" + line
            )
        report(f"wrote {p.config_file}: vault = {p.vault}")
    elif p.config_action == "append":
        text = p.config_file.read_text(encoding="utf-8")
        sep = "" if not text or text.endswith("\n") else "\n"
        with p.config_file.open("a", encoding="utf-8") as f:
            f.write(sep + line)
        report(f"added to {p.config_file}: vault = {p.vault}")
    named = vault_in(p.config_file)
    if named is None or not same_path(named, p.vault):
        raise ServiceError(f"{p.config_file} does not name the vault {p.vault}")


def _encoding(platform: str) -> str:
    # Task Scheduler reads UTF-16 (with a BOM) best; units and plists are UTF-8.
    return "utf-16" if platform == "windows" else "utf-8"


def _write(path: Path, text: str, platform: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    newline = "\r\n" if platform == "windows" else "\n"
    tmp.write_text(text, encoding=_encoding(platform), newline=newline)
    os.replace(tmp, path)


def _read_installed(path: Path, platform: str) -> str | None:
    try:
        return path.read_text(encoding=_encoding(platform))
    except (FileNotFoundError, UnicodeError):
        return None


def install(p: Plan, report: Report) -> None:
    """Make sure the config file names the vault, write the unit, plist or task file,
    then enable and start it."""
    before = _read_installed(p.target, p.platform)
    replacing = before is not None
    changed = before != p.text
    write_config(p, report)
    if p.platform == "launchd":
        assert p.log is not None
        p.log.parent.mkdir(parents=True, exist_ok=True)  # launchd does not create it
        if replacing:  # bootstrap refuses a label that is loaded already
            run_tool(["launchctl", "bootout", p.domain_target], report, check=False)
    _write(p.target, p.text, p.platform)
    report(f"wrote {p.target}")
    try:
        for argv, check in install_commands(p, replacing=replacing and changed):
            _run_and_show(argv, report, check=check)
    except ServiceError as e:
        if e.exit_code != EXIT_UNAVAILABLE:
            raise
        # The files are right; only the manager is out of reach. They stay, so that
        # the same install, run again where the manager can be reached, finishes.
        raise ServiceError(
            f"{e}; {p.target} and {p.config_file} are written and stay: run "
            "`ccc-watch service install` again then",
            exit_code=EXIT_UNAVAILABLE,
        ) from None
    report(f"installed and started {p.unit}; check it with `ccc-watch service status`")


def _other_instances(p: Plan) -> list[str]:
    """Instances of the systemd template still enabled (its wants/ links)."""
    found: set[str] = set()
    for wants in p.target.parent.glob("*.wants"):
        for link in wants.glob(f"{UNIT}@*.service"):
            if link.name != p.unit:
                found.add(link.name)
    return sorted(found)


def _remove_wants_links(p: Plan, report: Report) -> None:
    """Remove the links `systemctl enable` made for the unit (what `disable` removes),
    when systemctl could not."""
    for link in sorted(p.target.parent.glob(f"*.wants/{p.unit}")):
        if link.is_symlink():
            link.unlink()
            report(f"removed {link}")


def uninstall(p: Plan, report: Report) -> None:
    """Stop and disable the service, and remove its file (the config file stays). When
    the service manager refuses (no user bus, a task it does not know), the files are
    removed all the same; then ServiceError says what could not be done."""
    if not p.target.exists():
        report(f"{p.unit} is not installed (no {p.target})")
        return
    refused: list[ToolRun] = []
    if p.platform == "systemd":
        ran = _run_and_show(
            ["systemctl", "--user", "disable", "--now", p.unit], report, check=False
        )
        if ran.code:
            refused.append(ran)
            _remove_wants_links(p, report)
        others = _other_instances(p) if p.name else []
        if others:
            report(f"kept {p.target}: still used by {', '.join(others)}")
        else:
            p.target.unlink()
            report(f"removed {p.target}")
            if not any(map(no_session_bus, refused)):  # else it would fail the same way
                ran = _run_and_show(["systemctl", "--user", "daemon-reload"], report, check=False)
                if ran.code:
                    refused.append(ran)
    elif p.platform == "launchd":
        if _run_and_show(["launchctl", "bootout", p.domain_target], report, check=False).code:
            report(f"({p.unit} was not loaded)")
        p.target.unlink()
        report(f"removed {p.target}")
    else:
        run_tool(["schtasks", "/End", "/TN", p.unit], report, check=False)
        ran = _run_and_show(["schtasks", "/Delete", "/TN", p.unit, "/F"], report, check=False)
        if ran.code:
            refused.append(ran)
        p.target.unlink()
        report(f"removed {p.target}")
    if refused:
        raise ServiceError(
            f"removed the files of {p.unit}, but it may still be registered or running: "
            + "; ".join(map(refusal, refused)),
            exit_code=EXIT_UNAVAILABLE if any(map(no_session_bus, refused)) else EXIT_FAILURE,
        )
    report(f"uninstalled {p.unit}; the config file {p.config_file} stays")


def status_command(p: Plan) -> list[str]:
    """The platform's own status command for the service."""
    if p.platform == "systemd":
        return ["systemctl", "--user", "status", p.unit]
    if p.platform == "launchd":
        return ["launchctl", "print", p.domain_target]
    return ["schtasks", "/Query", "/TN", p.unit]


def status(p: Plan, report: Report) -> ToolRun:
    """Run the platform's status command: its exit code and what it printed."""
    return run_tool(status_command(p), report, check=False)


def describe(p: Plan) -> list[str]:
    """What install would do with the plan: where the file goes, what the config file
    needs, the log file, and the commands it would run."""
    what = {
        "keep": "names the vault",
        "create": f"would be created with vault = {p.vault}",
        "append": f"vault = {p.vault} would be added",
    }[p.config_action]
    lines = [f"target: {p.target}", f"config: {p.config_file} ({what})"]
    if p.log is not None:
        lines.append(f"log: {p.log}")
    lines += [f"would run: {shlex.join(a)}" for a, _ in install_commands(p, replacing=False)]
    return lines
