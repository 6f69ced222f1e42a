"""`ccc-watch service`: the systemd units, the launchd plist and the Windows task that
the package ships, rendered for this machine, installed and removed.

The units are checked by `systemd-analyze --user verify` (with the real installed
ccc-watch as ExecStart, since verify checks that it is executable); the plist is
parsed with plistlib and the task with ElementTree. Install, uninstall and status run
the real CLI in a subprocess with a temporary HOME and XDG dirs, and with
`systemctl`, `launchctl` and `schtasks` replaced by stubs on PATH that append their
argv to a file: the tests assert the exact command sequence and the files written.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import os
import plistlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from service_stubs import NO_BUS, STUB, home_dirs, install_stubs, no_bus_systemctl, read_calls

import ccc_watch
from ccc_watch import config, service
from ccc_watch.errors import EXIT_CONFIG, EXIT_UNAVAILABLE

ROOT = Path(__file__).resolve().parent.parent
MODULE = [sys.executable, "-m", "ccc_watch.cli"]
TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


@dataclass
class Env:
    """An isolated HOME, XDG dirs, a vault, and recording stubs of the service tools."""

    root: Path
    env: dict[str, str]
    home: Path
    config_home: Path
    state_home: Path
    vault: Path
    stub_log: Path

    def run(
        self, *args: str | os.PathLike[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MODULE, *map(str, args)],
            env=self.env | (extra_env or {}),
            cwd=self.root / "cwd",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str | os.PathLike[str], **kw: dict[str, str]) -> str:
        """stdout of a command that succeeds."""
        proc = self.run(*args, **kw)
        assert proc.returncode == 0, (proc.args, proc.returncode, proc.stdout, proc.stderr)
        return proc.stdout

    def said(self, *args: str | os.PathLike[str]) -> str:
        """stderr of a command that succeeds: the steps it reported."""
        proc = self.run(*args)
        assert proc.returncode == 0, (proc.args, proc.returncode, proc.stdout, proc.stderr)
        return proc.stderr

    def calls(self) -> list[list[str]]:
        """Every stub call so far, then forget them."""
        return read_calls(self.stub_log)

    @property
    def default_config(self) -> Path:
        return self.config_home / "ccc-watch" / "config.toml"

    @property
    def unit_dir(self) -> Path:
        return self.config_home / "systemd" / "user"

    def make_vault(self, name: str) -> Path:
        vault = self.root / name
        vault.mkdir()
        (vault / "Note.md").write_text("# hello\n")
        return vault


@pytest.fixture
def env(tmp_path: Path) -> Env:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    environ.pop("USERDOMAIN", None)
    dirs = home_dirs(tmp_path)
    environ |= {name: str(path) for name, path in dirs.items()}
    stubs = install_stubs(tmp_path / "stubs")
    environ["PATH"] = f"{stubs}{os.pathsep}{environ.get('PATH', '')}"
    environ["STUB_LOG"] = str(tmp_path / "calls.log")
    environ["USERNAME"] = "tester"
    (tmp_path / "cwd").mkdir()
    vault = tmp_path / "My Vault"
    vault.mkdir()
    (vault / "Welcome.md").write_text("# Welcome\n\n[[Other]]\n")
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "app.json").write_text("{}\n")
    return Env(
        root=tmp_path,
        env=environ,
        home=dirs["HOME"],
        config_home=dirs["XDG_CONFIG_HOME"],
        state_home=dirs["XDG_STATE_HOME"],
        vault=vault,
        stub_log=tmp_path / "calls.log",
    )


@pytest.fixture
def in_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    """The same environment for in-process calls of ccc_watch.service."""
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "USERNAME"):
        monkeypatch.setenv(key, env.env[key])
    monkeypatch.delenv("USERDOMAIN", raising=False)
    return env


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    result = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if path.is_file() else b""
        result[path.relative_to(root).as_posix()] = (st.st_mode, st.st_mtime_ns, data)
    st = root.lstat()
    result["."] = (st.st_mode, st.st_mtime_ns, b"")
    return result


def exe() -> str:
    """The installed ccc-watch the services start (what install finds, too)."""
    return str(Path(sys.executable).absolute().parent / "ccc-watch")


def expected(template: str, **values: str) -> str:
    """A template, as the repository shows it, with its placeholders replaced,
    independently of the module's renderer (plain paths only: no escaping needed)."""
    text = (ROOT / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    assert "@" + "EXECUTABLE@" not in text
    return text


def unit_sections(text: str, strict: bool = True) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=strict)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


# --- the templates ---------------------------------------------------------------------


def test_templates_are_package_data() -> None:
    """The templates are read from inside the package (importlib.resources), and each
    uses only the placeholders the renderer fills; the hardening drop-in has none."""
    known = {"EXECUTABLE", "CONFIG", "CONFIG_DIR", "VAULT", "LABEL", "LOG", "TASK", "USER"}
    package = Path(ccc_watch.__file__).parent / "service" / "templates"
    assert Path(str(service.templates_root())) == package
    for kind, (folder, filename) in service.TEMPLATES.items():
        path, text = service.load_template(kind)
        assert Path(str(path)) == package / folder / filename
        assert set(service.PLACEHOLDER.findall(text)) <= known, kind
        if kind == "hardening":
            assert not service.PLACEHOLDER.findall(text)
        else:
            assert "@EXECUTABLE@" in text and ("@CONFIG@" in text or "@CONFIG_DIR@" in text)


def test_repository_folders_link_to_the_templates() -> None:
    """The top-level systemd/, launchd/ and service/ folders that reviewers read are
    links to the package's template folders, so each file exists once; every template
    is in one of them, and nothing else is."""
    links = {"systemd": "systemd", "launchd": "launchd", "service": "windows"}
    package = ROOT / "ccc_watch" / "service" / "templates"
    for top, folder in links.items():
        assert (ROOT / top).is_symlink(), top
        assert (ROOT / top).resolve() == (package / folder).resolve(), top
    shown = {f"{links[p.parent.name]}/{p.name}" for top in links for p in (ROOT / top).iterdir()}
    assert shown == {f"{folder}/{name}" for folder, name in service.TEMPLATES.values()}
    assert sorted(p.name for p in package.iterdir()) == sorted(links.values())


def test_missing_template_is_a_clear_error(tmp_path: Path) -> None:
    """A package whose templates are missing fails rendering, naming the missing
    template and where it was looked for."""
    with pytest.raises(service.ServiceError) as e:
        service.load_template("systemd", root=tmp_path)
    assert "systemd/ccc-watch.service" in str(e.value)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(service.ServiceError, match=re.escape("launchd/io.ccc-watch.plist")):
        service.load_template("launchd", root=tmp_path)


def test_default_platform() -> None:
    """systemd on Linux, launchd on macOS, the Task Scheduler on Windows."""
    assert service.default_platform("linux") == "systemd"
    assert service.default_platform("darwin") == "launchd"
    assert service.default_platform("win32") == "windows"
    with pytest.raises(service.ServiceError, match="--platform"):
        service.default_platform("freebsd14")


# --- systemd ------------------------------------------------------------------------


def systemd_verify(env: Env, *units: Path) -> subprocess.CompletedProcess[str]:
    runtime = env.root / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(
        ["systemd-analyze", "--user", "verify", *map(str, units)],
        env=env.env | {"XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_PAGER": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_systemd_units_pass_systemd_analyze_verify(env: Env) -> None:
    """The rendered unit, the template unit (as instance ccc-watch@work.service) and
    both with the hardening drop-in pass `systemd-analyze --user verify` with nothing
    at all on stderr (verify only warns about unknown keys); a bogus key would show."""
    if shutil.which("systemd-analyze") is None:
        needs_systemd("systemd-analyze")
    vault = env.make_vault('A % $dollar "quoted" vault')
    units = env.root / "units"
    units.mkdir()
    plain = env.ok("service", "print", "--platform", "systemd", "--vault", vault)
    (units / "ccc-watch.service").write_text(plain)
    template = env.ok(
        "service", "print", "--platform", "systemd", "--name", "work", "--vault", env.vault
    )
    (units / "ccc-watch@.service").write_text(template)
    assert f'ExecStart="{exe()}"' in plain and f'ExecStart="{exe()}"' in template

    for unit in ("ccc-watch.service", "ccc-watch@work.service"):
        proc = systemd_verify(env, units / unit)
        assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", ""), unit

    hardening = env.ok("service", "hardening", "--platform", "systemd")
    for name in ("ccc-watch.service.d", "ccc-watch@.service.d"):
        (units / name).mkdir()
        (units / name / "hardening.conf").write_text(hardening)
    for unit in ("ccc-watch.service", "ccc-watch@work.service"):
        proc = systemd_verify(env, units / unit)
        assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", ""), unit

    # The check has teeth: an unknown key in the drop-in is reported on stderr.
    with (units / "ccc-watch.service.d" / "hardening.conf").open("a") as f:
        f.write("NoSuchSetting=yes\n")
    proc = systemd_verify(env, units / "ccc-watch.service")
    assert "NoSuchSetting" in proc.stderr


def test_systemd_unit_settings(env: Env) -> None:
    """Type=notify with the main process notifying, a 60 s watchdog, restart on
    failure except after exit 77 or 78, start limits in [Unit], quiet scheduling in the
    background slice, and ExecStart = the installed ccc-watch, --config FILE, run. No
    sandboxing by default: that is the separate drop-in."""
    text = env.ok("service", "--platform", "systemd", "--vault", env.vault)
    unit = unit_sections(text)
    assert dict(unit["Unit"]) | {"Description": ""} == {
        "Description": "",
        "StartLimitIntervalSec": "600",
        "StartLimitBurst": "5",
    }
    assert str(env.vault) in unit["Unit"]["Description"]
    s = unit["Service"]
    assert (s["Type"], s["NotifyAccess"], s["WatchdogSec"]) == ("notify", "main", "60")
    assert (s["Restart"], s["RestartPreventExitStatus"]) == ("on-failure", "77 78")
    assert int(s["Nice"]) > 0
    assert (s["CPUSchedulingPolicy"], s["IOSchedulingClass"]) == ("batch", "idle")
    assert s["Slice"] == "background.slice"
    assert shlex.split(s["ExecStart"]) == [exe(), "--config", str(env.default_config), "run"]
    assert unit["Install"]["WantedBy"] == "default.target"
    hardening = unit_sections(service.load_template("hardening")[1], strict=False)
    for key in hardening["Service"]:
        assert key not in s, f"{key} belongs in the optional drop-in only"

    template = unit_sections(
        env.ok("service", "--platform", "systemd", "--name", "work", "--vault", env.vault)
    )
    config_dir = env.default_config.parent
    assert shlex.split(template["Service"]["ExecStart"]) == [
        exe(), "--config", f"{config_dir}/%i.toml", "run",
    ]  # fmt: skip
    assert {k: v for k, v in template["Service"].items() if k != "ExecStart"} == {
        k: v for k, v in s.items() if k != "ExecStart"
    }


def test_systemd_values_are_escaped(in_env: Env) -> None:
    """Quotes, backslashes, '%' and '$' in a path cannot break ExecStart= or become
    specifiers or variables in the unit."""
    odd = in_env.root / 'cfg %h $HOME "q" \\b'
    odd.mkdir()
    cfg_file = odd / "config.toml"
    vault = in_env.make_vault("V %i")
    cfg_file.write_text(f"vault = {service.toml_string(str(vault))}\n")
    cfg = config.load({}, environ={}, config_file=cfg_file)
    p = service.plan(cfg, "systemd", None)
    line = next(x for x in p.text.splitlines() if x.startswith("ExecStart="))
    quoted = str(cfg_file).replace("\\", "\\\\").replace('"', '\\"')
    quoted = quoted.replace("%", "%%").replace("$", "$$")
    assert line == f'ExecStart="{exe()}" --config "{quoted}" run'
    assert f"Description=ccc-watch index of the Obsidian vault {in_env.root}/V %%i" in p.text


# --- launchd and Windows ---------------------------------------------------------------


def all_strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in all_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in all_strings(v)]
    return []


@pytest.mark.parametrize("name", [None, "work"])
def test_launchd_plist(env: Env, name: str | None) -> None:
    """The plist parses, runs the installed ccc-watch with --config and `run`, starts
    at load, restarts after a failed exit or a crash only, runs as a low-priority
    background process, and every path in it is absolute (no ~, no variables)."""
    args = ["--name", name] if name else []
    text = env.ok("service", "print", "--platform", "launchd", "--vault", env.vault, *args)
    plist = plistlib.loads(text.encode())
    label = f"io.ccc-watch.{name}" if name else "io.ccc-watch"
    config_file = env.default_config.with_name(f"{name or 'config'}.toml")
    log = env.state_home / "ccc-watch" / "log" / f"{label}.log"
    assert plist == {
        "Label": label,
        "ProgramArguments": [exe(), "--config", str(config_file), "run"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False, "Crashed": True},
        "ThrottleInterval": plist["ThrottleInterval"],
        "ExitTimeOut": plist["ExitTimeOut"],
        "ProcessType": "Background",
        "LowPriorityIO": True,
        "Nice": plist["Nice"],
        # The daemon's own log rotates; launchd's file gets warnings and crashes only.
        "EnvironmentVariables": {"LOGURU_LEVEL": "WARNING"},
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    }
    assert isinstance(plist["Nice"], int) and plist["Nice"] > 0
    assert isinstance(plist["ThrottleInterval"], int) and plist["ThrottleInterval"] >= 10
    for s in all_strings(plist):
        assert "~" not in s and "$" not in s, s
        if "/" in s:
            assert Path(s).is_absolute(), s


def test_launchd_plist_escapes_xml(in_env: Env) -> None:
    """A path with XML's special characters comes back intact from plistlib."""
    odd = in_env.root / "a&b <c>"
    odd.mkdir()
    cfg_file = odd / "config.toml"
    cfg_file.write_text(f"vault = {service.toml_string(str(in_env.vault))}\n")
    cfg = config.load({}, environ={}, config_file=cfg_file)
    p = service.plan(cfg, "launchd", None)
    assert plistlib.loads(p.text.encode())["ProgramArguments"][2] == str(cfg_file)


def test_windows_task_xml(env: Env) -> None:
    """The task starts at the user's logon, runs pythonw (no window) with `-m
    ccc_watch.cli --config FILE run`, has no time limit and restarts on failure."""
    text = env.ok("service", "print", "--platform", "windows", "--vault", env.vault)
    task = ET.fromstring(text)
    assert task.tag == f"{{{TASK_NS['t']}}}Task"
    logon = task.find("t:Triggers/t:LogonTrigger", TASK_NS)
    assert logon is not None
    assert logon.findtext("t:UserId", namespaces=TASK_NS) == "tester"
    principal = task.find("t:Principals/t:Principal", TASK_NS)
    assert principal is not None
    assert principal.findtext("t:LogonType", namespaces=TASK_NS) == "InteractiveToken"
    command = task.findtext("t:Actions/t:Exec/t:Command", namespaces=TASK_NS)
    assert command == str(service.executable("windows")) and Path(command).is_absolute()
    arguments = task.findtext("t:Actions/t:Exec/t:Arguments", namespaces=TASK_NS)
    assert arguments == f'-m ccc_watch.cli --config "{env.default_config}" run'
    settings = task.find("t:Settings", TASK_NS)
    assert settings is not None
    assert settings.findtext("t:ExecutionTimeLimit", namespaces=TASK_NS) == "PT0S"
    assert settings.findtext("t:MultipleInstancesPolicy", namespaces=TASK_NS) == "IgnoreNew"
    assert settings.find("t:RestartOnFailure", TASK_NS) is not None


def test_windows_uses_pythonw_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows the task runs pythonw.exe beside the Python that has ccc-watch."""
    (tmp_path / "python.exe").write_text("")
    (tmp_path / "pythonw.exe").write_text("")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python.exe"))
    assert service.executable("windows") == tmp_path / "pythonw.exe"


# --- install, uninstall, status ----------------------------------------------------


def test_systemd_install_and_uninstall(env: Env) -> None:
    """install writes the config file (naming the vault) and the unit, then runs
    daemon-reload and enable --now; a second install changes nothing and restarts
    nothing; after the unit changed it also try-restarts; uninstall runs disable --now,
    removes the unit, runs daemon-reload and keeps the config file. The vault is
    untouched throughout."""
    before = snapshot(env.vault)
    unit = env.unit_dir / "ccc-watch.service"
    env.ok("service", "install", "--platform", "systemd", "--vault", env.vault)
    assert env.calls() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "ccc-watch.service"],
    ]
    assert unit.read_text() == expected(
        "systemd/ccc-watch.service",
        EXECUTABLE=exe(),
        CONFIG=str(env.default_config),
        VAULT=str(env.vault),
    )
    assert tomllib.loads(env.default_config.read_text()) == {"vault": str(env.vault)}

    env.ok("service", "install", "--platform", "systemd")  # the vault from the file now
    assert env.calls() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "ccc-watch.service"],
    ]
    unit.write_text(unit.read_text().replace("Nice=10", "Nice=5"))  # an older version
    env.ok("service", "install", "--platform", "systemd")
    assert env.calls() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "ccc-watch.service"],
        ["systemctl", "--user", "try-restart", "ccc-watch.service"],
    ]
    assert "Nice=10" in unit.read_text()

    env.ok("service", "uninstall", "--platform", "systemd")
    assert env.calls() == [
        ["systemctl", "--user", "disable", "--now", "ccc-watch.service"],
        ["systemctl", "--user", "daemon-reload"],
    ]
    assert not unit.exists()
    assert env.default_config.exists()
    said = env.said("service", "uninstall", "--platform", "systemd")
    assert "not installed" in said
    assert env.calls() == []
    assert snapshot(env.vault) == before


def test_systemd_several_vaults(env: Env) -> None:
    """--name installs the template unit once and enables ccc-watch@NAME.service, with
    NAME.toml beside config.toml; uninstalling one instance keeps the template while
    another is enabled, and removes it with the last."""
    other = env.make_vault("Other Vault")
    template = env.unit_dir / "ccc-watch@.service"
    env.ok("service", "install", "--platform", "systemd", "--name", "work", "--vault", env.vault)
    env.ok("service", "install", "--platform", "systemd", "--name", "home", "--vault", other)
    assert env.calls() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "ccc-watch@work.service"],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "ccc-watch@home.service"],
    ]
    assert sorted(p.name for p in env.unit_dir.iterdir()) == ["ccc-watch@.service"]
    assert template.read_text() == expected(
        "systemd/ccc-watch@.service", EXECUTABLE=exe(), CONFIG_DIR=str(env.default_config.parent)
    )
    config_dir = env.default_config.parent
    assert tomllib.loads((config_dir / "work.toml").read_text()) == {"vault": str(env.vault)}
    assert tomllib.loads((config_dir / "home.toml").read_text()) == {"vault": str(other)}
    assert not env.default_config.exists()

    # What `systemctl --user enable` leaves behind (the stub does not).
    wants = env.unit_dir / "default.target.wants"
    wants.mkdir()
    for name in ("work", "home"):
        (wants / f"ccc-watch@{name}.service").symlink_to(template)

    said = env.said("service", "uninstall", "--platform", "systemd", "--name", "work")
    assert env.calls() == [["systemctl", "--user", "disable", "--now", "ccc-watch@work.service"]]
    assert template.exists() and "ccc-watch@home.service" in said
    (wants / "ccc-watch@work.service").unlink()

    env.ok("service", "uninstall", "--platform", "systemd", "--name", "home")
    assert env.calls() == [
        ["systemctl", "--user", "disable", "--now", "ccc-watch@home.service"],
        ["systemctl", "--user", "daemon-reload"],
    ]
    assert not template.exists()
    assert (config_dir / "work.toml").exists() and (config_dir / "home.toml").exists()


def test_launchd_install_and_uninstall(env: Env) -> None:
    """install writes the plist into ~/Library/LaunchAgents, creates the log folder and
    bootstraps it into gui/<uid>; a reinstall boots the old one out first; uninstall
    boots it out and removes the plist."""
    before = snapshot(env.vault)
    uid = os.getuid()
    plist = env.home / "Library" / "LaunchAgents" / "io.ccc-watch.plist"
    log = env.state_home / "ccc-watch" / "log" / "io.ccc-watch.log"
    env.ok("service", "install", "--platform", "launchd", "--vault", env.vault)
    assert env.calls() == [["launchctl", "bootstrap", f"gui/{uid}", str(plist)]]
    assert plist.read_text() == expected(
        "launchd/io.ccc-watch.plist",
        EXECUTABLE=exe(),
        CONFIG=str(env.default_config),
        LABEL="io.ccc-watch",
        LOG=str(log),
    )
    assert log.parent.is_dir()
    assert tomllib.loads(env.default_config.read_text()) == {"vault": str(env.vault)}

    env.ok("service", "install", "--platform", "launchd")
    assert env.calls() == [
        ["launchctl", "bootout", f"gui/{uid}/io.ccc-watch"],
        ["launchctl", "bootstrap", f"gui/{uid}", str(plist)],
    ]
    env.ok("service", "uninstall", "--platform", "launchd")
    assert env.calls() == [["launchctl", "bootout", f"gui/{uid}/io.ccc-watch"]]
    assert not plist.exists()
    assert snapshot(env.vault) == before


def test_launchd_several_vaults(env: Env) -> None:
    """--name NAME: label io.ccc-watch.NAME, its own plist and NAME.toml."""
    uid = os.getuid()
    env.ok("service", "install", "--platform", "launchd", "--name", "work", "--vault", env.vault)
    plist = env.home / "Library" / "LaunchAgents" / "io.ccc-watch.work.plist"
    assert env.calls() == [["launchctl", "bootstrap", f"gui/{uid}", str(plist)]]
    data = plistlib.loads(plist.read_bytes())
    assert data["Label"] == "io.ccc-watch.work"
    assert data["ProgramArguments"][2] == str(env.default_config.with_name("work.toml"))
    env.ok("service", "uninstall", "--platform", "launchd", "--name", "work")
    assert env.calls() == [["launchctl", "bootout", f"gui/{uid}/io.ccc-watch.work"]]


def test_windows_install_and_uninstall(env: Env) -> None:
    """install saves the task XML (UTF-16 with a BOM, CRLF) beside the config file,
    registers it with schtasks /Create /XML and runs it; uninstall ends it, deletes it
    and removes the file."""
    xml = env.default_config.parent / "ccc-watch.xml"
    env.ok("service", "install", "--platform", "windows", "--vault", env.vault)
    assert env.calls() == [
        ["schtasks", "/Create", "/TN", "ccc-watch", "/XML", str(xml), "/F"],
        ["schtasks", "/Run", "/TN", "ccc-watch"],
    ]
    raw = xml.read_bytes()
    assert raw.startswith((b"\xff\xfe", b"\xfe\xff"))
    text = raw.decode("utf-16")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert text.replace("\r\n", "\n") == expected(
        "service/ccc-watch.xml",
        EXECUTABLE=str(service.executable("windows")),
        CONFIG=str(env.default_config),
        VAULT=str(env.vault),
        TASK="ccc-watch",
        USER="tester",
    )
    ET.fromstring(raw)  # the bytes parse as they are (the BOM names the encoding)

    env.ok("service", "uninstall", "--platform", "windows")
    assert env.calls() == [
        ["schtasks", "/End", "/TN", "ccc-watch"],
        ["schtasks", "/Delete", "/TN", "ccc-watch", "/F"],
    ]
    assert not xml.exists()


@pytest.mark.parametrize(
    ("platform", "name", "call"),
    [
        ("systemd", None, ["systemctl", "--user", "status", "ccc-watch.service"]),
        ("systemd", "work", ["systemctl", "--user", "status", "ccc-watch@work.service"]),
        ("launchd", None, ["launchctl", "print", "gui/{uid}/io.ccc-watch"]),
        ("launchd", "work", ["launchctl", "print", "gui/{uid}/io.ccc-watch.work"]),
        ("windows", None, ["schtasks", "/Query", "/TN", "ccc-watch"]),
        ("windows", "work", ["schtasks", "/Query", "/TN", "ccc-watch-work"]),
    ],
)
def test_status_returns_the_tool_exit_code(
    env: Env, platform: str, name: str | None, call: list[str]
) -> None:
    """status runs the platform's own status command and exits with its code; it
    needs no vault."""
    args = ["--name", name] if name else []
    for code in (0, 3):
        proc = env.run(
            "service", "status", "--platform", platform, *args, extra_env={"STUB_RC": str(code)}
        )
        assert proc.returncode == code, proc.stderr
        assert env.calls() == [[c.format(uid=os.getuid()) for c in call]]


# --- the config file ---------------------------------------------------------------


def test_config_naming_another_vault_is_refused(env: Env) -> None:
    """A config file that names another vault is never changed: install exits 78
    naming both vaults, and runs nothing."""
    other = env.make_vault("Other")
    env.default_config.parent.mkdir(parents=True)
    env.default_config.write_text(f"vault = {service.toml_string(str(other))}\n")
    before = env.default_config.read_bytes()
    proc = env.run("service", "install", "--platform", "systemd", "--vault", env.vault)
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert str(other) in proc.stderr and str(env.vault) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert env.calls() == []
    assert env.default_config.read_bytes() == before
    assert not env.unit_dir.exists()


def test_config_without_vault_gets_it_appended(env: Env) -> None:
    """A config file without a vault keeps its settings and gets `vault = "..."`."""
    env.default_config.parent.mkdir(parents=True)
    env.default_config.write_text('# mine\nbackend = "sqlite"')  # no final newline
    env.ok("service", "install", "--platform", "systemd", "--vault", env.vault)
    text = env.default_config.read_text()
    assert text.startswith('# mine\nbackend = "sqlite"\n')
    assert tomllib.loads(text) == {"backend": "sqlite", "vault": str(env.vault)}


def test_config_naming_the_same_vault_is_kept(env: Env) -> None:
    """A config file naming the vault (here by a relative path) is left as it is."""
    env.default_config.parent.mkdir(parents=True)
    relative = os.path.relpath(env.vault, env.default_config.parent)
    env.default_config.write_text(f"vault = {service.toml_string(relative)}\n")
    before = env.default_config.read_bytes()
    env.ok("service", "install", "--platform", "systemd", "--vault", env.vault)
    assert env.default_config.read_bytes() == before


def test_explicit_config_is_what_the_service_reads(env: Env) -> None:
    """--config FILE (even given relative) is passed to the service as an absolute
    path."""
    (env.root / "cwd" / "mine.toml").write_text("")
    env.ok("service", "install", "--platform", "launchd", "--config", "mine.toml",
           "--vault", env.vault)  # fmt: skip
    plist = plistlib.loads((env.home / "Library/LaunchAgents/io.ccc-watch.plist").read_bytes())
    assert plist["ProgramArguments"][1:] == ["--config", str(env.root / "cwd/mine.toml"), "run"]
    assert tomllib.loads((env.root / "cwd" / "mine.toml").read_text()) == {"vault": str(env.vault)}


def test_explicit_config_that_does_not_exist_yet_is_created(env: Env) -> None:
    """`service install --config NEW` writes NEW naming the vault, and points the
    service at it; `print` shows the same and writes nothing."""
    new = env.root / "cwd" / "new.toml"
    env.ok("service", "print", "--platform", "launchd", "--config", "new.toml",
           "--vault", env.vault)  # fmt: skip
    assert not new.exists()
    env.ok("service", "install", "--platform", "launchd", "--config", "new.toml",
           "--vault", env.vault)  # fmt: skip
    plist = plistlib.loads((env.home / "Library/LaunchAgents/io.ccc-watch.plist").read_bytes())
    assert plist["ProgramArguments"][1:] == ["--config", str(new), "run"]
    assert tomllib.loads(new.read_text()) == {"vault": str(env.vault)}


def test_no_vault_anywhere_exits_78(env: Env) -> None:
    """Without --vault and without a vault in the config file there is nothing to run."""
    proc = env.run("service", "install", "--platform", "systemd")
    assert proc.returncode == EXIT_CONFIG
    assert proc.stderr.startswith("ccc-watch: config: vault: ")
    assert env.calls() == []


def test_config_file_inside_the_vault_is_not_written(env: Env) -> None:
    """ccc-watch never writes into the vault, not even the config file it was told to
    use."""
    inside = env.vault / "ccc.toml"
    inside.write_text('backend = "sqlite"\n')
    before = snapshot(env.vault)
    proc = env.run("service", "install", "--platform", "systemd", "--config", inside,
                   "--vault", env.vault)  # fmt: skip
    assert proc.returncode == 1
    assert "inside the vault" in proc.stderr
    assert snapshot(env.vault) == before
    assert env.calls() == []


def test_systemd_name_with_another_config_is_refused(env: Env) -> None:
    """The template unit reads NAME.toml beside config.toml, so on systemd --name with
    a --config elsewhere is refused, naming the file it would read; launchd takes it."""
    elsewhere = env.root / "work.toml"
    elsewhere.write_text("")
    args = ["--name", "work", "--config", elsewhere, "--vault", env.vault]
    proc = env.run("service", "install", "--platform", "systemd", *args)
    assert proc.returncode == 1
    assert str(env.default_config.with_name("work.toml")) in proc.stderr
    env.ok("service", "install", "--platform", "launchd", *args)


def test_bad_name_is_refused(env: Env) -> None:
    """A --name that cannot be a unit instance, label and file name is an error."""
    for bad in ("../x", "a b", "config", "-x"):
        proc = env.run("service", "print", f"--name={bad}", "--vault", env.vault)
        assert proc.returncode in (1, 2), bad
        assert "--name" in proc.stderr or "usage" in proc.stderr
    assert env.calls() == []


def test_failed_command_is_reported(env: Env) -> None:
    """A service manager command that fails stops install with its command line."""
    proc = env.run(
        "service", "install", "--platform", "systemd", "--vault", env.vault,
        extra_env={"STUB_FAIL": "enable"},
    )  # fmt: skip
    assert proc.returncode == 1
    assert "`systemctl --user enable --now ccc-watch.service` failed" in proc.stderr


def stubs_of(env: Env) -> Path:
    return Path(env.env["PATH"].split(os.pathsep)[0])


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The `ccc-watch: ` line a failed command ends with; the steps it reported before
    are on the lines above."""
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("ccc-watch: "), proc.stderr
    return last


def test_install_without_a_user_bus_says_why_and_keeps_its_files(env: Env) -> None:
    """systemctl --user that cannot reach a user bus (SSH, containers) stops install with
    exit 69 and one line: the failed command and what it said, the cause and both fixes
    (linger then log in again, or a desktop session), and that the unit and config file
    stay written. Run again once systemctl works, install finishes."""
    no_bus_systemctl(stubs_of(env))
    unit = env.unit_dir / "ccc-watch.service"
    proc = env.run("service", "install", "--platform", "systemd", "--vault", env.vault)
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    line = one_line(proc)
    assert f"`systemctl --user daemon-reload` failed with exit code 1: {NO_BUS}" in line
    assert "no user session bus" in line and "loginctl enable-linger $USER" in line
    assert "log in again" in line and "desktop session" in line
    assert f"{unit} and {env.default_config} are written and stay" in line
    assert "Traceback" not in proc.stderr
    assert env.calls() == [["systemctl", "--user", "daemon-reload"]]
    assert unit.exists() and tomllib.loads(env.default_config.read_text())["vault"]

    install_stubs(stubs_of(env))  # the user bus is there now
    env.ok("service", "install", "--platform", "systemd")
    assert env.calls() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "ccc-watch.service"],
    ]


def needs_systemd(tool: str) -> None:
    """Skip without systemd's tools, saying so; on CI (CCC_WATCH_CI, set by .ci/run,
    which installs the systemd package) their absence is a failure, never a skip."""
    if os.environ.get("CCC_WATCH_CI"):
        pytest.fail(f"CI must have {tool}: .ci/run installs the systemd package")
    pytest.skip(f"{tool} is not installed (apt-get install systemd)")


def test_install_without_a_user_bus_with_the_real_systemctl(env: Env) -> None:
    """The same against the real systemctl, with XDG_RUNTIME_DIR and
    DBUS_SESSION_BUS_ADDRESS unset so that it finds no user bus."""
    real = shutil.which("systemctl", path=os.defpath + os.pathsep + "/usr/bin:/bin")
    if real is None:
        needs_systemd("systemctl")
    stubs = stubs_of(env)
    (stubs / "systemctl").unlink()
    (stubs / "systemctl").symlink_to(real)
    for name in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"):
        env.env.pop(name, None)
    proc = env.run("service", "install", "--platform", "systemd", "--vault", env.vault)
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    line = one_line(proc)
    assert "`systemctl --user daemon-reload` failed" in line and "Failed to connect to" in line
    assert "loginctl enable-linger $USER" in line
    assert (env.unit_dir / "ccc-watch.service").exists()


@pytest.mark.parametrize("name", [None, "work"])
def test_uninstall_removes_the_files_when_systemctl_has_no_bus(env: Env, name: str | None) -> None:
    """uninstall without a user bus still removes the unit and the links `enable` made
    (what `disable` would have removed), keeps the config file, runs no daemon-reload
    (it would fail the same way), and ends with exit 69 and one line saying what it
    could not do and how to get a bus."""
    named = ["--name", name] if name else []
    env.ok("service", "install", "--platform", "systemd", "--vault", env.vault, *named)
    unit_name = f"ccc-watch@{name}.service" if name else "ccc-watch.service"
    unit = env.unit_dir / ("ccc-watch@.service" if name else "ccc-watch.service")
    wants = env.unit_dir / "default.target.wants"
    wants.mkdir()
    (wants / unit_name).symlink_to(unit)  # what `systemctl --user enable` leaves behind
    config_file = env.config_home / "ccc-watch" / (f"{name}.toml" if name else "config.toml")
    env.calls()
    no_bus_systemctl(stubs_of(env))
    proc = env.run("service", "uninstall", "--platform", "systemd", *named)
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    assert env.calls() == [["systemctl", "--user", "disable", "--now", unit_name]]
    assert not unit.exists() and not (wants / unit_name).is_symlink()
    assert config_file.exists()
    assert f"removed {unit}" in proc.stderr and f"removed {wants / unit_name}" in proc.stderr
    line = one_line(proc)
    assert line.startswith(f"ccc-watch: removed the files of {unit_name}, but it may still be")
    assert f"`systemctl --user disable --now {unit_name}` failed with exit code 1" in line
    assert "loginctl enable-linger $USER" in line
    said = env.said("service", "uninstall", "--platform", "systemd", *named)
    assert "not installed" in said


def test_uninstall_removes_the_files_when_the_manager_refuses(env: Env) -> None:
    """Any other refusal (here disable, on systemd; /Delete on Windows) removes the
    files all the same and ends with exit 1, naming the command that failed."""
    env.ok("service", "install", "--platform", "systemd", "--vault", env.vault)
    env.calls()
    proc = env.run(
        "service", "uninstall", "--platform", "systemd", extra_env={"STUB_FAIL": "disable"}
    )
    assert proc.returncode == 1, proc.stderr
    assert not (env.unit_dir / "ccc-watch.service").exists()
    assert env.calls() == [
        ["systemctl", "--user", "disable", "--now", "ccc-watch.service"],
        ["systemctl", "--user", "daemon-reload"],
    ]
    assert "`systemctl --user disable --now ccc-watch.service` failed" in one_line(proc)
    assert "enable-linger" not in proc.stderr

    env.ok("service", "install", "--platform", "windows", "--vault", env.vault)
    task = env.config_home / "ccc-watch" / "ccc-watch.xml"
    assert task.exists()
    proc = env.run(
        "service", "uninstall", "--platform", "windows", extra_env={"STUB_FAIL": "/Delete"}
    )
    assert proc.returncode == 1, proc.stderr
    assert not task.exists()
    assert "`schtasks /Delete /TN ccc-watch /F` failed with exit code 1" in one_line(proc)


def test_status_without_a_user_bus_says_how_to_get_one(env: Env) -> None:
    """`service status` passes systemctl's exit code on, and says how to get a bus."""
    no_bus_systemctl(stubs_of(env))
    proc = env.run("service", "status", "--platform", "systemd")
    assert proc.returncode == 1
    assert NO_BUS in proc.stdout and "loginctl enable-linger $USER" in proc.stderr


def test_settings_given_only_to_install_are_flagged(env: Env) -> None:
    """A setting passed as a flag or variable to install does not reach the service:
    install says so, naming the config file to put it in."""
    proc = env.run(
        "service", "install", "--platform", "systemd", "--vault", env.vault,
        "--backend", "sqlite",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"does not see --backend; put backend in {env.default_config}" in proc.stderr


def test_print_is_the_default_and_writes_nothing(env: Env) -> None:
    """`ccc-watch service` prints the rendered unit on stdout and where it would go on
    stderr, and writes no file and runs nothing."""
    proc = env.run("service", "--platform", "systemd", "--vault", env.vault)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# ccc-watch")
    assert f"target: {env.unit_dir / 'ccc-watch.service'}" in proc.stderr
    assert "would be created" in proc.stderr
    assert not env.default_config.exists() and not env.unit_dir.exists()
    assert env.calls() == []


def test_hardening_prints_the_drop_in(env: Env) -> None:
    """`service hardening` prints the shipped drop-in on stdout and where it goes on
    stderr (the template unit's folder with --name); it needs no vault, writes nothing,
    runs nothing, and is refused for launchd and Windows."""
    proc = env.run("service", "hardening", "--platform", "systemd")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == service.load_template("hardening")[1]
    assert "ProtectSystem=strict" in proc.stdout
    assert str(env.unit_dir / "ccc-watch.service.d" / "hardening.conf") in proc.stderr
    said = env.said("service", "hardening", "--platform", "systemd", "--name", "work")
    assert str(env.unit_dir / "ccc-watch@.service.d" / "hardening.conf") in said
    assert "restart ccc-watch@work.service" in said
    for platform in ("launchd", "windows"):
        proc = env.run("service", "hardening", "--platform", platform)
        assert proc.returncode == 1 and "systemd only" in proc.stderr
    assert not env.unit_dir.exists() and env.calls() == []


def test_library_reports_and_never_prints(
    in_env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """service.run writes nothing to stdout or stderr: each step goes to the caller's
    report (the service manager's own output included) and the product comes back as
    the Outcome; a failing step raises ServiceError after the earlier steps were
    reported."""
    for key in ("PATH", "STUB_LOG"):
        monkeypatch.setenv(key, in_env.env[key])
    cfg = config.load({"vault": str(in_env.vault)}, environ={})
    lines: list[str] = []

    shown = service.run("print", cfg, platform="systemd", report=lines.append)
    assert shown.exit_code == 0 and shown.output.startswith("# ccc-watch")
    assert lines[0] == f"target: {in_env.unit_dir / 'ccc-watch.service'}"

    lines.clear()
    assert service.run("install", cfg, platform="systemd", report=lines.append) == service.Outcome()
    assert lines[0] == f"wrote {in_env.default_config}: vault = {in_env.vault}"
    assert "$ systemctl --user enable --now ccc-watch.service" in lines
    assert lines[-1].startswith("installed and started ccc-watch.service")

    monkeypatch.setenv("STUB_RC", "3")
    ran = service.run("status", cfg, platform="systemd", report=lines.append)
    assert ran == service.Outcome("", 3)

    monkeypatch.setenv("STUB_RC", "0")
    monkeypatch.setenv("STUB_FAIL", "disable")
    lines.clear()
    with pytest.raises(
        service.ServiceError, match=re.escape("disable --now ccc-watch.service` failed")
    ):
        service.run("uninstall", cfg, platform="systemd", report=lines.append)
    assert lines == [
        "$ systemctl --user disable --now ccc-watch.service",
        f"removed {in_env.unit_dir / 'ccc-watch.service'}",
        "$ systemctl --user daemon-reload",
    ]
    assert capsys.readouterr() == ("", "")


def test_service_package_has_no_print() -> None:
    """No module of ccc_watch.service calls print() or names sys.stdout / sys.stderr:
    the CLI decides what the user sees."""
    package = Path(service.__file__).parent
    for module in sorted(package.glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{module.name}:{node.lineno}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                name = f"{node.value.id}.{node.attr}"
                assert name not in ("sys.stdout", "sys.stderr"), f"{module.name}:{node.lineno}"


def test_status_shows_the_tool_output_on_stdout(env: Env) -> None:
    """What the service manager's status command prints is the command's stdout."""
    stubs = Path(env.env["PATH"].split(os.pathsep)[0])
    final = 'exit "${STUB_RC:-0}"'
    (stubs / "systemctl").write_text(
        STUB.replace(final, f"echo 'Active: active (running)'\n{final}")
    )
    proc = env.run("service", "status", "--platform", "systemd")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Active: active (running)\n"
    assert "$ systemctl --user status ccc-watch.service" in proc.stderr


def test_installed_unit_starts_the_daemon_like_systemd_would(env: Env) -> None:
    """The ExecStart of the installed unit, run the way systemd runs it (a notify
    socket, a watchdog, only the config file it names), starts the daemon on the vault:
    READY=1 arrives, and SIGTERM stops it with STOPPING=1 and exit 0."""
    env.ok("service", "install", "--platform", "systemd", "--vault", env.vault)
    env.calls()
    unit = unit_sections((env.unit_dir / "ccc-watch.service").read_text())
    argv = shlex.split(unit["Service"]["ExecStart"])
    sock_path = env.root / "notify.sock"
    received: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(1.0)
        proc = subprocess.Popen(
            argv,
            env=env.env | {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "60000000"},
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not any("READY=1" in m for m in received):
                assert time.monotonic() < deadline, received
                assert proc.poll() is None, proc.communicate()[1]
                with contextlib.suppress(TimeoutError):
                    received.append(sock.recv(4096).decode())
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr
            with contextlib.suppress(TimeoutError):
                while True:
                    received.append(sock.recv(4096).decode())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert any("STOPPING=1" in m for m in received), received
    assert str(env.vault) in "".join(received)
