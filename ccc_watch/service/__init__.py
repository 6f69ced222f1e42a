"""`ccc-watch service`: run the daemon at login as a systemd user service, a launchd
agent or a Windows scheduled task.

The service files are templates shipped inside the package (`templates/`; in a clone
the top-level `systemd/`, `launchd/` and `service/` folders link to them). This package
renders one for this machine (absolute path of the installed program, the config file,
the vault; placeholders `@NAME@`), installs it, enables and starts it with the
platform's own tool, and undoes all of that. The service gets an explicit
`--config FILE`, so it and the user's shell resolve the same settings; install makes
sure that file exists and names the vault (it writes or appends `vault = "..."`, never
anything inside the vault).

- `render`: the templates and their escaping;
- `plan`: what the service is on this machine (a `Plan`), without side effects;
- `manager`: writing the files and running systemctl, launchctl or schtasks.

Nothing here prints: `run` returns what goes on stdout and an exit code, and passes
every step to the caller's `report`; errors are raised as `ServiceError` or
`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ccc_watch import config
from ccc_watch.service.manager import (
    NO_BUS_FIX,
    Report,
    ToolRun,
    describe,
    install,
    install_commands,
    no_session_bus,
    refusal,
    run_tool,
    status,
    status_command,
    uninstall,
    write_config,
)
from ccc_watch.service.plan import (
    LABEL,
    NAME_RE,
    PLATFORMS,
    UNIT,
    Plan,
    default_platform,
    executable,
    launch_agents_dir,
    plan,
    systemd_unit_dir,
    unseen_settings,
)
from ccc_watch.service.render import (
    PLACEHOLDER,
    TEMPLATES,
    ServiceError,
    load_template,
    render,
    service_file,
    systemd_quoted,
    systemd_text,
    templates_root,
    toml_string,
)

__all__ = [
    "ACTIONS",
    "LABEL",
    "NAME_RE",
    "NO_BUS_FIX",
    "PLACEHOLDER",
    "PLATFORMS",
    "TEMPLATES",
    "UNIT",
    "Outcome",
    "Plan",
    "Report",
    "ServiceError",
    "ToolRun",
    "default_platform",
    "describe",
    "executable",
    "install",
    "install_commands",
    "launch_agents_dir",
    "load_template",
    "no_session_bus",
    "plan",
    "refusal",
    "render",
    "run",
    "run_tool",
    "service_file",
    "status",
    "status_command",
    "systemd_quoted",
    "systemd_text",
    "systemd_unit_dir",
    "templates_root",
    "toml_string",
    "uninstall",
    "unseen_settings",
    "write_config",
]

ACTIONS = ("install", "uninstall", "status", "print", "hardening")


@dataclass(frozen=True)
class Outcome:
    """What a service action leaves for the user: text for stdout, and the exit code."""

    output: str = ""
    exit_code: int = 0


def _ignore(message: str) -> None:
    pass


def run(
    action: str,
    cfg: config.Config,
    *,
    platform: str | None = None,
    name: str | None = None,
    explicit_config: Path | None = None,
    report: Report = _ignore,
) -> Outcome:
    """`ccc-watch service ACTION`: install, uninstall, status, print, or hardening (the
    optional systemd sandbox drop-in). Each step and note goes to `report` as it
    happens; the rendered file (print, hardening) or the service manager's status text
    is the Outcome's output."""
    if action not in ACTIONS:
        raise ServiceError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    platform = platform or default_platform()
    p = plan(
        cfg,
        platform,
        name,
        explicit_config=explicit_config,
        need_vault=action in ("install", "print"),
    )
    if action == "status":
        ran = status(p, report)
        if no_session_bus(ran):
            report(f"note: {NO_BUS_FIX}")
        return Outcome(ran.output, ran.code)
    if action == "uninstall":
        uninstall(p, report)
        return Outcome()
    if action == "print":
        for line in describe(p):
            report(line)
        return Outcome(p.text)
    if action == "hardening":
        return Outcome(_hardening(p, report))
    for note in unseen_settings(cfg, p):
        report(f"note: {note}")
    install(p, report)
    return Outcome()


def _hardening(p: Plan, report: Report) -> str:
    if p.platform != "systemd":
        raise ServiceError(f"the hardening drop-in is for systemd only, not {p.platform}")
    _, text = load_template("hardening")
    dropin = p.target.parent / f"{p.target.name}.d" / "hardening.conf"
    report(f"a drop-in for {p.target.name}: save it as {dropin}")
    report(f"then: systemctl --user daemon-reload && systemctl --user restart {p.unit}")
    return text
