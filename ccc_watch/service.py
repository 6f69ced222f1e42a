"""`ccc-watch service`: run the daemon at login as a systemd user service, a launchd
agent or a Windows scheduled task.

The files in the repository's `systemd/`, `launchd/` and `service/` folders are the
templates: this module renders one for this machine (absolute path of the installed
program, the config file, the vault; placeholders `@NAME@`), installs it, enables and
starts it with the platform's own tool, and undoes all of that. The service gets an
explicit `--config FILE`, so it and the user's shell resolve the same settings; install
makes sure that file exists and names the vault (it writes or appends `vault = "..."`,
never anything inside the vault).
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import platformdirs

import ccc_watch
from ccc_watch import config
from ccc_watch.errors import CccWatchError, ConfigError

PLATFORMS = ("systemd", "launchd", "windows")
ACTIONS = ("install", "uninstall", "status", "print")
UNIT = "ccc-watch"  # systemd unit and Windows task name
LABEL = "io.ccc-watch"  # launchd label
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
PLACEHOLDER = re.compile(r"@([A-Z][A-Z_]*)@")


class ServiceError(CccWatchError):
    """The service cannot be rendered, installed or removed."""


def default_platform(platform: str = sys.platform) -> str:
    """The service manager of this OS: systemd on Linux, launchd on macOS, the Task
    Scheduler on Windows."""
    if platform.startswith("linux"):
        return "systemd"
    if platform == "darwin":
        return "launchd"
    if platform in ("win32", "cygwin"):
        return "windows"
    raise ServiceError(f"no service manager known for {platform!r}: pass --platform")


def templates_root() -> Path:
    """The repository the package runs from (an editable install): its `systemd/`,
    `launchd/` and `service/` folders hold the templates."""
    return Path(ccc_watch.__file__).resolve().parents[1]


# Each platform's template: (folder, file name); the template unit for --name.
TEMPLATES = {
    "systemd": ("systemd", "ccc-watch.service"),
    "systemd@": ("systemd", "ccc-watch@.service"),
    "launchd": ("launchd", "io.ccc-watch.plist"),
    "windows": ("service", "ccc-watch.xml"),
}


def load_template(kind: str, root: Path | None = None) -> tuple[Path, str]:
    """The template file of a kind (a key of TEMPLATES) and its text."""
    folder, filename = TEMPLATES[kind]
    path = (root or templates_root()) / folder / filename
    try:
        return path, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ServiceError(
            f"missing template {folder}/{filename}: expected at {path} (ccc-watch renders "
            "the service files of its source tree; install it with `pip install -e .` "
            "from a clone of the repository)"
        ) from None


# --- rendering ----------------------------------------------------------------------


def _check_text(what: str, value: str) -> str:
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


# --- where things are ------------------------------------------------------------


def executable(platform: str) -> Path:
    """The program the service starts: the installed `ccc-watch` script beside this
    Python (else the one on PATH); on Windows pythonw.exe (no console window)."""
    here = Path(sys.executable).absolute().parent
    if platform == "windows":
        for name in ("pythonw.exe", "pythonw"):
            if (here / name).is_file():
                return here / name
        if sys.platform == "win32":
            raise ServiceError(f"no pythonw.exe beside {sys.executable}")
        return Path(sys.executable).absolute()  # a preview made on another OS
    for name in ("ccc-watch", "ccc-watch.exe"):
        if (here / name).is_file():
            return here / name
    found = shutil.which("ccc-watch")
    if found is None:
        raise ServiceError(
            "cannot find the installed ccc-watch program (beside "
            f"{sys.executable} or on PATH): run `pip install -e .` first"
        )
    return Path(found).absolute()


def systemd_unit_dir() -> Path:
    """~/.config/systemd/user ($XDG_CONFIG_HOME/systemd/user), where user units go."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "systemd" / "user"


def launch_agents_dir() -> Path:
    """~/Library/LaunchAgents."""
    return Path.home() / "Library" / "LaunchAgents"


# --- the plan: what install would do ---------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Everything one service action needs, computed without side effects."""

    platform: str
    name: str | None
    unit: str  # systemd unit / launchd label / Windows task name
    target: Path  # the rendered file's destination
    config_file: Path  # what the service is given as --config
    executable: Path | None = None  # None: not needed (status, uninstall)
    vault: Path | None = None
    text: str = ""  # the rendered file ("" when vault is None)
    config_action: str = "keep"  # keep, create or append (vault = "...")
    log: Path | None = None  # launchd: stdout and stderr

    @property
    def uid(self) -> int:
        return os.getuid()

    @property
    def domain_target(self) -> str:
        """launchd's name of the agent: gui/<uid>/<label>."""
        return f"gui/{self.uid}/{self.unit}"


def _unit_name(platform: str, name: str | None) -> str:
    if platform == "systemd":
        return f"{UNIT}@{name}.service" if name else f"{UNIT}.service"
    if platform == "launchd":
        return f"{LABEL}.{name}" if name else LABEL
    return f"{UNIT}-{name}" if name else UNIT


def _target(platform: str, name: str | None, unit: str) -> Path:
    if platform == "systemd":
        return systemd_unit_dir() / (f"{UNIT}@.service" if name else unit)
    if platform == "launchd":
        return launch_agents_dir() / f"{unit}.plist"
    return config.default_config_file().parent / f"{unit}.xml"


def _config_file(
    cfg: config.Config, platform: str, name: str | None, explicit: Path | None
) -> Path:
    """The config file the service is pointed at: --config, else (without --name)
    $CCC_WATCH_CONFIG, else the default config.toml, or NAME.toml beside it."""
    default = config.default_config_file().expanduser().absolute()
    if name is None:
        if explicit is not None:  # it may not exist yet: install creates it
            return explicit.expanduser().absolute()
        return cfg.config_file or default  # config.load made $CCC_WATCH_CONFIG absolute
    per_name = default.with_name(f"{name}.toml")
    if explicit is None:
        return per_name
    chosen = explicit.expanduser().absolute()
    if platform == "systemd" and chosen != per_name:
        raise ServiceError(
            f"on systemd, {UNIT}@{name}.service reads {per_name} (the template unit names "
            f"the file after the instance): leave out --config, or pass that file"
        )
    return chosen


def _vault_in(path: Path) -> Path | None:
    """The vault a config file names (None: the file or the key is absent)."""
    if not path.exists():
        return None
    vault = config.load({}, environ={}, config_file=path).values.get("vault")
    return None if vault is None else Path(vault)


def _same(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def plan(
    cfg: config.Config,
    platform: str,
    name: str | None,
    *,
    explicit_config: Path | None = None,
    need_vault: bool = True,
) -> Plan:
    """What the service for this vault is: its unit, file, config file and text.

    The vault is the one given by flag or environment variable, else the one the
    config file names; both given and different is an error, so is none at all.
    """
    if platform not in PLATFORMS:
        raise ServiceError(f"unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")
    if name is not None and (not NAME_RE.fullmatch(name) or name == "config"):
        raise ServiceError(
            f"--name {name!r}: use letters, digits, '_' and '-' (at most 64, not 'config')"
        )
    unit = _unit_name(platform, name)
    config_file = _config_file(cfg, platform, name, explicit_config)
    target = _target(platform, name, unit)
    if not need_vault:
        return Plan(platform, name, unit, target, config_file)

    existing = _vault_in(config_file)
    given = cfg.values.get("vault") if cfg.sources.get("vault") in ("flag", "env") else None
    if given is not None and existing is not None and not _same(given, existing):
        raise ConfigError(
            "vault",
            f"{config_file} names the vault {existing}, not {given}: the service would "
            "index the other one. Edit that file, or install this vault under its own "
            "name (--name NAME)",
        )
    vault = given or existing
    if vault is None:
        raise ConfigError(
            "vault", f"not set for the service: pass --vault (or name it in {config_file})"
        )
    if not vault.is_dir():
        raise ConfigError("vault", f"not a folder: {vault}")
    vault = vault.expanduser().resolve()
    if existing is not None:
        action = "keep"
    else:
        action = "append" if config_file.exists() else "create"
        if config_file.absolute() == vault or vault in config_file.absolute().parents:
            raise ServiceError(
                f"the config file {config_file} is inside the vault: ccc-watch never writes "
                "into the vault; pass a --config outside it"
            )

    exe = executable(platform)
    log = platformdirs.user_log_path(config.APP) / f"{unit}.log"
    text = _render_for(platform, name, exe, config_file, vault, unit, log)
    return Plan(
        platform,
        name,
        unit,
        target,
        config_file,
        exe,
        vault,
        text,
        action,
        log if platform == "launchd" else None,
    )


def _render_for(
    platform: str, name: str | None, exe: Path, config_file: Path, vault: Path, unit: str, log: Path
) -> str:
    raw = {
        "EXECUTABLE": str(exe),
        "CONFIG": str(config_file),
        "CONFIG_DIR": str(config_file.parent),
        "VAULT": str(vault),
        "LABEL": unit,
        "LOG": str(log),
        "TASK": unit,
        "USER": _windows_user() if platform == "windows" else "",
    }
    for key, value in raw.items():
        _check_text(key.lower(), value)
    if platform == "systemd":
        _, template = load_template("systemd@" if name else "systemd")
        values = {k: systemd_quoted(v) for k, v in raw.items()}
        values["VAULT"] = systemd_text(raw["VAULT"])
        return render(template, values)
    _, template = load_template(platform)
    return render(template, {k: xml_escape(v) for k, v in raw.items()})


def _windows_user() -> str:
    user = os.environ.get("USERNAME") or getpass.getuser()
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{user}" if domain else user


# --- commands ---------------------------------------------------------------------------


def _run(argv: Sequence[str], *, check: bool = True, quiet: bool = False) -> int:
    """Run a service manager command (its output goes to the terminal); with check, a
    failure raises ServiceError naming the command."""
    shown = shlex.join(argv)
    program = shutil.which(argv[0])
    if program is None:
        raise ServiceError(f"{argv[0]} not found on PATH (needed for: {shown})")
    print(f"$ {shown}", file=sys.stderr)
    out = subprocess.DEVNULL if quiet else None
    code = subprocess.run([program, *argv[1:]], stdout=out, stderr=out, check=False).returncode
    if check and code != 0:
        raise ServiceError(f"`{shown}` failed with exit code {code}")
    return code


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


def _write_config(p: Plan) -> None:
    assert p.vault is not None
    line = f"vault = {toml_string(str(p.vault))}\n"
    if p.config_action == "create":
        p.config_file.parent.mkdir(parents=True, exist_ok=True)
        with p.config_file.open("x", encoding="utf-8") as f:
            f.write(
                "# ccc-watch settings (see the README, Configuration); written by "
                "`ccc-watch service install`.\n" + line
            )
        print(f"wrote {p.config_file}: vault = {p.vault}")
    elif p.config_action == "append":
        text = p.config_file.read_text(encoding="utf-8")
        sep = "" if not text or text.endswith("\n") else "\n"
        with p.config_file.open("a", encoding="utf-8") as f:
            f.write(sep + line)
        print(f"added to {p.config_file}: vault = {p.vault}")
    named = _vault_in(p.config_file)
    if named is None or not _same(named, p.vault):
        raise ServiceError(f"{p.config_file} does not name the vault {p.vault}")


def _write(path: Path, text: str, platform: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Task Scheduler reads UTF-16 (with a BOM) best; units and plists are UTF-8.
    encoding = "utf-16" if platform == "windows" else "utf-8"
    tmp.write_text(text, encoding=encoding, newline="\r\n" if platform == "windows" else "\n")
    os.replace(tmp, path)


def _read_installed(path: Path, platform: str) -> str | None:
    try:
        return path.read_text(encoding="utf-16" if platform == "windows" else "utf-8")
    except (FileNotFoundError, UnicodeError):
        return None


def install(p: Plan) -> int:
    """Make sure the config file names the vault, write the unit, plist or task file,
    then enable and start it."""
    before = _read_installed(p.target, p.platform)
    replacing = before is not None
    changed = before != p.text
    _write_config(p)
    if p.platform == "launchd":
        assert p.log is not None
        p.log.parent.mkdir(parents=True, exist_ok=True)  # launchd does not create it
        if replacing:  # bootstrap refuses a label that is loaded already
            _run(["launchctl", "bootout", p.domain_target], check=False, quiet=True)
    _write(p.target, p.text, p.platform)
    print(f"wrote {p.target}")
    for argv, check in install_commands(p, replacing=replacing and changed):
        _run(argv, check=check)
    print(f"installed and started {p.unit}; check it with `ccc-watch service status`")
    return 0


def _other_instances(p: Plan) -> list[str]:
    """Instances of the systemd template still enabled (its wants/ links)."""
    found: set[str] = set()
    for wants in p.target.parent.glob("*.wants"):
        for link in wants.glob(f"{UNIT}@*.service"):
            if link.name != p.unit:
                found.add(link.name)
    return sorted(found)


def uninstall(p: Plan) -> int:
    """Stop and disable the service, and remove its file (the config file stays)."""
    if not p.target.exists():
        print(f"{p.unit} is not installed (no {p.target})")
        return 0
    if p.platform == "systemd":
        _run(["systemctl", "--user", "disable", "--now", p.unit])
        others = _other_instances(p) if p.name else []
        if others:
            print(f"kept {p.target}: still used by {', '.join(others)}")
        else:
            p.target.unlink()
            print(f"removed {p.target}")
            _run(["systemctl", "--user", "daemon-reload"])
    elif p.platform == "launchd":
        code = _run(["launchctl", "bootout", p.domain_target], check=False)
        if code != 0:
            print(f"({p.unit} was not loaded)")
        p.target.unlink()
        print(f"removed {p.target}")
    else:
        _run(["schtasks", "/End", "/TN", p.unit], check=False, quiet=True)
        _run(["schtasks", "/Delete", "/TN", p.unit, "/F"])
        p.target.unlink()
        print(f"removed {p.target}")
    print(f"uninstalled {p.unit}; the config file {p.config_file} stays")
    return 0


def status_command(p: Plan) -> list[str]:
    """The platform's own status command for the service."""
    if p.platform == "systemd":
        return ["systemctl", "--user", "status", p.unit]
    if p.platform == "launchd":
        return ["launchctl", "print", p.domain_target]
    return ["schtasks", "/Query", "/TN", p.unit]


def status(p: Plan) -> int:
    """Run the platform's status command; its exit code."""
    return _run(status_command(p), check=False)


def print_plan(p: Plan) -> int:
    """The rendered file on stdout; where it would go and what would run on stderr."""
    sys.stdout.write(p.text)
    sys.stdout.flush()
    what = {
        "keep": "names the vault",
        "create": f"would be created with vault = {p.vault}",
        "append": f"vault = {p.vault} would be added",
    }[p.config_action]
    err = sys.stderr
    print(f"target: {p.target}", file=err)
    print(f"config: {p.config_file} ({what})", file=err)
    if p.log is not None:
        print(f"log: {p.log}", file=err)
    for argv, _ in install_commands(p, replacing=False):
        print(f"would run: {shlex.join(argv)}", file=err)
    return 0


def run(
    action: str,
    cfg: config.Config,
    *,
    platform: str | None = None,
    name: str | None = None,
    explicit_config: Path | None = None,
) -> int:
    """`ccc-watch service ACTION`: install, uninstall, status or print."""
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
        return status(p)
    if action == "uninstall":
        return uninstall(p)
    if action == "print":
        return print_plan(p)
    for key, source in cfg.sources.items():
        if key != "vault" and source in ("flag", "env"):
            setting = config.BY_KEY[key]
            where = setting.flag if source == "flag" else setting.env
            print(
                f"note: the service does not see {where}; put {key} in {p.config_file}",
                file=sys.stderr,
            )
    return install(p)
