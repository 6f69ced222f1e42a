"""The release wheel: built as README's "Releasing" says (maturin with zig, manylinux
2014, abi3), installed (not editable) into a fresh virtualenv with no Rust toolchain on
PATH, then used as a user would: every service template rendered and installed from
the package data inside the wheel, and a rebuild of the sample vault through the
compiled redb extension.

The build reuses the Rust target dir of `pip install -e` (CARGO_TARGET_DIR, else
rust/target), where zig's objects live in their own x86_64-unknown-linux-gnu/ folder:
the first run compiles the crate and its dependencies once (about 1.5 minutes on two
cores), later runs take seconds. `pytest -m "not wheel"` leaves these tests out.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import plistlib
import shutil
import subprocess
import sys
import tomllib
import venv
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename
from service_stubs import home_dirs, install_stubs, read_calls

ROOT = Path(__file__).resolve().parent.parent
# The exact command README's "Releasing" shows (a test below holds them together).
BUILD = "maturin build --release --locked --zig --compatibility manylinux2014 --out dist"
TEMPLATES = "ccc_watch/service/templates"

pytestmark = [
    pytest.mark.wheel,
    pytest.mark.timeout(900),  # a cold build on a busy 2-core machine
    pytest.mark.skipif(
        sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
        reason="the manylinux wheel is built on Linux x86_64 or aarch64",
    ),
]


def _bin() -> Path:
    return Path(sys.executable).parent


def _without_rust(path: str) -> str:
    """PATH less every folder that holds cargo, rustc or rustup."""
    return os.pathsep.join(
        d
        for d in path.split(os.pathsep)
        if d and not any((Path(d) / tool).exists() for tool in ("cargo", "rustc", "rustup"))
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from this checkout with README's command (output folder aside)."""
    if shutil.which("cargo") is None:
        pytest.skip("building the wheel needs cargo")
    if shutil.which("maturin", path=str(_bin())) is None:
        pytest.skip("maturin is not installed (the test extra installs it)")
    out = tmp_path_factory.mktemp("dist")
    argv = [*BUILD.split()[:-1], str(out)]
    env = os.environ | {"PATH": f"{_bin()}{os.pathsep}{os.environ['PATH']}"}  # python -m ziglang
    env.setdefault("CARGO_TARGET_DIR", str(ROOT / "rust" / "target"))
    target = Path(env["CARGO_TARGET_DIR"])
    target.mkdir(parents=True, exist_ok=True)
    # Under pytest-xdist each worker that runs a test of this module builds its own
    # wheel. Two maturin runs in one target dir race on its staging file
    # (target/maturin/lib_redb.so: one renames it away under the other), so the builds
    # take turns; the second reuses the first's objects and takes seconds.
    with (target / ".wheel-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=840, check=False
        )
    assert proc.returncode == 0, proc.stderr[-5000:]
    (found,) = out.glob("*.whl")
    return found


@dataclass
class Installed:
    """A fresh virtualenv with the wheel installed, and an isolated home to run in."""

    root: Path
    venv: Path
    env: dict[str, str]
    stub_log: Path
    wheel: zipfile.ZipFile

    @property
    def program(self) -> Path:
        return self.venv / "bin" / "ccc-watch"

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.program), *map(str, args)],
            env=self.env,
            cwd=cwd or self.root / "cwd",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str | Path, cwd: Path | None = None) -> str:
        proc = self.run(*args, cwd=cwd)
        assert proc.returncode == 0, (proc.args, proc.stdout, proc.stderr)
        return proc.stdout

    def template(self, name: str, **values: str) -> str:
        """A template as the wheel holds it, its placeholders replaced by plain values
        (independently of the package's renderer)."""
        text = self.wheel.read(f"{TEMPLATES}/{name}").decode()
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        assert "@" + "EXECUTABLE@" not in text
        return text

    @property
    def config_dir(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "ccc-watch"

    @property
    def log_dir(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "ccc-watch" / "log"


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """`pip install --only-binary :all: WHEEL` into a new virtualenv, with a PATH that
    has no Rust toolchain: nothing may be compiled, neither ccc-watch nor a dependency."""
    root = tmp_path_factory.mktemp("installed")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    stubs = install_stubs(root / "stubs")
    path = _without_rust(f"{env_dir / 'bin'}{os.pathsep}{stubs}{os.pathsep}{os.environ['PATH']}")
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CCC_WATCH_", "PYTHON", "VIRTUAL_ENV", "CARGO", "RUST"))
    }
    environ["PATH"] = path
    (root / "cwd").mkdir()
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    proc = subprocess.run(
        [*pip, "--only-binary", ":all:", str(wheel)],
        env=environ,  # the real home: pip's cache
        cwd=root / "cwd",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    environ |= {name: str(p) for name, p in home_dirs(root).items()}
    environ |= {"STUB_LOG": str(root / "calls.log"), "USERNAME": "tester"}
    environ.pop("USERDOMAIN", None)
    with zipfile.ZipFile(wheel) as zf:
        yield Installed(root, env_dir, environ, root / "calls.log", zf)


# --- the wheel file ----------------------------------------------------------------


def test_wheel_is_manylinux2014_abi3(wheel: Path) -> None:
    """One wheel for every CPython >= 3.11 (abi3) on any Linux with glibc >= 2.17
    (manylinux2014), the tags PyPI accepts; not linux_x86_64."""
    name, version, _build, tags = parse_wheel_filename(wheel.name)
    assert name == "ccc-watch"
    assert str(version) == _project_version()
    arch = platform.machine()
    assert {(t.interpreter, t.abi) for t in tags} == {("cp311", "abi3")}
    assert {t.platform for t in tags} == {f"manylinux2014_{arch}", f"manylinux_2_17_{arch}"}


def test_wheel_holds_the_package_and_nothing_else(wheel: Path) -> None:
    """The package with its compiled extension, typing files and every service template
    (the hardening drop-in too); no tests, benchmarks, vault, Rust sources or caches."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"ccc_watch", f"ccc_watch-{_project_version()}.dist-info"}
    for needed in (
        "ccc_watch/_redb.abi3.so",
        "ccc_watch/_redb.pyi",
        "ccc_watch/py.typed",
        "ccc_watch/service/__init__.py",
        f"{TEMPLATES}/systemd/ccc-watch.service",
        f"{TEMPLATES}/systemd/ccc-watch@.service",
        f"{TEMPLATES}/systemd/hardening.conf",
        f"{TEMPLATES}/launchd/io.ccc-watch.plist",
        f"{TEMPLATES}/windows/ccc-watch.xml",
    ):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".rs"))]
    templates = sorted(n for n in names if n.startswith(f"{TEMPLATES}/"))
    in_repo = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / TEMPLATES).rglob("*")
        if p.is_file()  # the top-level systemd/ launchd/ service/ links point here
    )
    assert templates == in_repo


def test_readme_shows_the_build_command() -> None:
    """README's Releasing section shows the command these tests build with."""
    assert f"\n{BUILD}\n" in (ROOT / "README.md").read_text()


def _project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert isinstance(version, str)
    return version


# --- installed ---------------------------------------------------------------------


def test_installs_and_imports_without_rust(installed: Installed) -> None:
    """The wheel and its dependencies installed from binaries only, with no cargo or
    rustc on PATH; ccc_watch and its redb extension load from the new virtualenv."""
    for tool in ("cargo", "rustc"):
        assert shutil.which(tool, path=installed.env["PATH"]) is None, tool
    proc = subprocess.run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import ccc_watch, ccc_watch._redb as r; print(ccc_watch.__file__); print(r.__file__)",
        ],
        env=installed.env,
        cwd=installed.root / "cwd",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    site = installed.venv / "lib"
    for line in proc.stdout.splitlines():
        assert Path(line).is_relative_to(site), line
    assert installed.ok("--version").strip() == f"ccc-watch {_project_version()}"


def _print(installed: Installed, platform: str, name: str | None, vault: Path) -> str:
    args = ["--name", name] if name else []
    return installed.ok("service", "print", "--platform", platform, "--vault", vault, *args)


@pytest.mark.parametrize("name", [None, "x"])
def test_service_print_renders_each_template(installed: Installed, name: str | None) -> None:
    """`service print` renders the wheel's own template for systemd, launchd and
    Windows, with the installed program, the config file and the vault filled in."""
    vault = installed.root / "vault"
    vault.mkdir(exist_ok=True)
    config = installed.config_dir / f"{name or 'config'}.toml"
    exe = str(installed.program)

    systemd = _print(installed, "systemd", name, vault)
    if name:
        assert systemd == installed.template(
            "systemd/ccc-watch@.service", EXECUTABLE=exe, CONFIG_DIR=str(installed.config_dir)
        )
        assert f'ExecStart="{exe}" --config "{installed.config_dir}/%i.toml" run' in systemd
    else:
        assert systemd == installed.template(
            "systemd/ccc-watch.service", EXECUTABLE=exe, CONFIG=str(config), VAULT=str(vault)
        )
        assert f'ExecStart="{exe}" --config "{config}" run' in systemd

    label = f"io.ccc-watch.{name}" if name else "io.ccc-watch"
    plist = _print(installed, "launchd", name, vault)
    log = installed.log_dir / f"{label}.log"
    assert plist == installed.template(
        "launchd/io.ccc-watch.plist", EXECUTABLE=exe, CONFIG=str(config), LABEL=label, LOG=str(log)
    )
    assert plistlib.loads(plist.encode())["ProgramArguments"] == [
        exe,
        "--config",
        str(config),
        "run",
    ]

    task = f"ccc-watch-{name}" if name else "ccc-watch"
    python = str(installed.venv / "bin" / "python")  # no pythonw off Windows
    xml = _print(installed, "windows", name, vault)
    assert xml == installed.template(
        "windows/ccc-watch.xml",
        EXECUTABLE=python,
        CONFIG=str(config),
        VAULT=str(vault),
        TASK=task,
        USER="tester",
    )
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    assert ET.fromstring(xml).findtext("t:Actions/t:Exec/t:Command", namespaces=ns) == python

    hardening = installed.ok("service", "hardening", "--platform", "systemd")
    assert hardening == installed.template("systemd/hardening.conf")
    assert read_calls(installed.stub_log) == []


def test_service_install_with_stub_tools(installed: Installed) -> None:
    """`service install` from the wheel writes the config file and the rendered unit,
    plist and task file into the temporary home and runs the (stubbed) tools."""
    vault = installed.root / "install vault"
    vault.mkdir()
    exe = str(installed.program)
    config = installed.config_dir / "config.toml"
    home = Path(installed.env["HOME"])

    installed.ok("service", "install", "--platform", "systemd", "--vault", vault)
    unit = Path(installed.env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "ccc-watch.service"
    assert unit.read_text() == installed.template(
        "systemd/ccc-watch.service", EXECUTABLE=exe, CONFIG=str(config), VAULT=str(vault)
    )
    assert tomllib.loads(config.read_text()) == {"vault": str(vault)}
    assert read_calls(installed.stub_log) == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "ccc-watch.service"],
    ]

    installed.ok("service", "install", "--platform", "launchd", "--name", "x", "--vault", vault)
    plist = home / "Library" / "LaunchAgents" / "io.ccc-watch.x.plist"
    assert plist.read_text() == installed.template(
        "launchd/io.ccc-watch.plist",
        EXECUTABLE=exe,
        CONFIG=str(installed.config_dir / "x.toml"),
        LABEL="io.ccc-watch.x",
        LOG=str(installed.log_dir / "io.ccc-watch.x.log"),
    )
    assert read_calls(installed.stub_log) == [
        ["launchctl", "bootstrap", f"gui/{os.getuid()}", str(plist)]
    ]

    installed.ok("service", "install", "--platform", "windows")  # the vault from config.toml
    xml = installed.config_dir / "ccc-watch.xml"
    assert xml.read_bytes().decode("utf-16").replace("\r\n", "\n") == installed.template(
        "windows/ccc-watch.xml",
        EXECUTABLE=str(installed.venv / "bin" / "python"),
        CONFIG=str(config),
        VAULT=str(vault),
        TASK="ccc-watch",
        USER="tester",
    )
    assert [c[:2] for c in read_calls(installed.stub_log)] == [
        ["schtasks", "/Create"],
        ["schtasks", "/Run"],
    ]


def test_rebuild_sample_vault(installed: Installed) -> None:
    """README's first command, from the installed wheel: `ccc-watch --vault sample-vault
    rebuild` indexes every file into the redb store, and `dump` prints them."""
    report = json.loads(installed.ok("--vault", "sample-vault", "rebuild", "--json", cwd=ROOT))
    assert report["failed"] == [] and report["indexed"] == report["seen"] > 0
    assert report["store"].endswith(".redb")
    dump = installed.ok("--vault", "sample-vault", "dump", cwd=ROOT)
    paths = [json.loads(line)["path"] for line in dump.splitlines()]
    assert len(paths) == report["indexed"] and "Welcome.md" in paths
