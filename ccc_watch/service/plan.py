"""What the service of a vault is on this machine, computed without side effects: its
unit, label or task name, where its file goes, the config file it is given, the
program it starts, and the rendered file."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ccc_watch import config
from ccc_watch.errors import ConfigError
from ccc_watch.service.render import ServiceError, service_file

PLATFORMS = ("systemd", "launchd", "windows")
UNIT = "ccc-watch"  # systemd unit and Windows task name
LABEL = "io.ccc-watch"  # launchd label
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


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
            f"{sys.executable} or on PATH): install ccc-watch with pip first"
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


def vault_in(path: Path) -> Path | None:
    """The vault a config file names (None: the file or the key is absent)."""
    if not path.exists():
        return None
    vault = config.load({}, environ={}, config_file=path).values.get("vault")
    return None if vault is None else Path(vault)


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (after ~ and links)."""
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

    existing = vault_in(config_file)
    given = cfg.values.get("vault") if cfg.sources.get("vault") in ("flag", "env") else None
    if given is not None and existing is not None and not same_path(given, existing):
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
    text = service_file(
        platform,
        name,
        {
            "EXECUTABLE": str(exe),
            "CONFIG": str(config_file),
            "CONFIG_DIR": str(config_file.parent),
            "VAULT": str(vault),
            "LABEL": unit,
            "LOG": str(log),
            "TASK": unit,
            "USER": _windows_user() if platform == "windows" else "",
        },
    )
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


def _windows_user() -> str:
    user = os.environ.get("USERNAME") or getpass.getuser()
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{user}" if domain else user


def unseen_settings(cfg: config.Config, p: Plan) -> list[str]:
    """Settings given to this command as a flag or variable (other than the vault):
    the service does not see them. One line per setting, naming the file to put it in."""
    notes = []
    for key, source in cfg.sources.items():
        if key != "vault" and source in ("flag", "env"):
            setting = config.BY_KEY[key]
            where = setting.flag if source == "flag" else setting.env
            notes.append(f"the service does not see {where}; put {key} in {p.config_file}")
    return notes
