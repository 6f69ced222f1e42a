"""The `ccc-watch` command line, run for real in subprocesses.

Each test gets its own environment: XDG_CONFIG_HOME, XDG_DATA_HOME (and the other
XDG dirs and HOME) inside tmp_path, no CCC_WATCH_* variable, and tmp_path/cwd as the
working folder. The vault is a copy of the repository's sample-vault/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from conftest import not_private

import ccc_watch
from ccc_watch import cli, config
from ccc_watch.errors import EXIT_CODES

SAMPLE_VAULT = Path(__file__).parent.parent / "sample-vault"
MODULE = [sys.executable, "-m", "ccc_watch.cli"]
# The backend flag for each backend under test (None: the default, redb).
BACKENDS = {"redb": None, "sqlite": "sqlite"}
STORE_FILES = {"redb": "index.redb", "sqlite": "index.sqlite"}


@dataclass
class Cli:
    """Runs ccc-watch in an isolated environment."""

    root: Path
    env: dict[str, str]
    cwd: Path
    vault: Path
    data_home: Path
    config_home: Path
    calls: list[list[str]] = field(default_factory=list)

    def run(
        self,
        *args: str | os.PathLike[str],
        extra_env: dict[str, str] | None = None,
        umask: int = -1,
        program: list[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [*(program or MODULE), *map(str, args)]
        self.calls.append(argv)
        return subprocess.run(
            argv,
            env=self.env | (extra_env or {}),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            umask=umask,
            check=False,
        )

    def ok(self, *args: str | os.PathLike[str], **kw: Any) -> str:
        """Run and require exit 0 and an empty stderr; return stdout."""
        proc = self.run(*args, **kw)
        assert proc.returncode == 0, (proc.args, proc.returncode, proc.stderr)
        assert proc.stderr == "", proc.stderr
        return proc.stdout

    def json(self, *args: str | os.PathLike[str], **kw: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kw))

    @property
    def vaults_dir(self) -> Path:
        return self.data_home / "ccc-watch" / "vaults"

    @property
    def default_config(self) -> Path:
        return self.config_home / "ccc-watch" / "config.toml"


@pytest.fixture
def ccc(tmp_path: Path) -> Cli:
    """An isolated environment and a fresh copy of sample-vault/ (in a folder whose
    name has a space)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_WATCH_")}
    dirs = {
        "HOME": tmp_path / "home",
        "XDG_CONFIG_HOME": tmp_path / "xdg-config",
        "XDG_DATA_HOME": tmp_path / "xdg-data",
        "XDG_CACHE_HOME": tmp_path / "xdg-cache",
        "XDG_STATE_HOME": tmp_path / "xdg-state",
    }
    for name, path in dirs.items():
        path.mkdir()
        env[name] = str(path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    vault = tmp_path / "My Vault"
    shutil.copytree(SAMPLE_VAULT, vault, symlinks=True)
    return Cli(
        root=tmp_path,
        env=env,
        cwd=cwd,
        vault=vault,
        data_home=dirs["XDG_DATA_HOME"],
        config_home=dirs["XDG_CONFIG_HOME"],
    )


def backend_args(backend: str) -> list[str]:
    flag = BACKENDS[backend]
    return [] if flag is None else ["--backend", flag]


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under root: its type, mode, mtime and (files) a hash of its bytes."""
    result: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", st.st_mode, st.st_mtime_ns)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                result[rel] = ("file", st.st_mode, st.st_mtime_ns, st.st_size, digest)
    st = root.lstat()
    result["."] = ("dir", st.st_mode, st.st_mtime_ns)
    return result


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line a failing command writes to stderr."""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ccc-watch: "), lines[0]
    assert proc.stdout == ""
    return lines[0]


def test_sample_vault_is_there() -> None:
    """The fixture vault exists and has notes and an .obsidian folder to protect."""
    assert (SAMPLE_VAULT / ".obsidian").is_dir()
    assert any(SAMPLE_VAULT.rglob("*.md"))


# --- help and version ---------------------------------------------------------


def test_help_lists_every_command(ccc: Cli) -> None:
    """`ccc-watch --help` exits 0 and lists every command of cli.COMMANDS with its
    help text, and every settings flag."""
    out = ccc.ok("--help")
    flat = " ".join(out.split())
    for name, (_handler, help_text) in cli.COMMANDS.items():
        assert f" {name} " in flat, name
        assert " ".join(help_text.split()) in flat, name
    for s in config.SETTINGS:
        assert s.flag in out
        assert s.env in flat
    assert "--config" in out and "--version" in out


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_has_help_and_description(ccc: Cli, name: str) -> None:
    """Each command has a help line (shown in `ccc-watch --help`) and a description (its
    handler's docstring, shown first in `ccc-watch CMD --help`); then its own options,
    and after them one line about the shared settings (not the 30-odd flags) and the
    exit codes; fails for a command missing either text."""
    handler, help_text = cli.COMMANDS[name]
    assert help_text.strip(), f"{name}: no help text in cli.COMMANDS"
    assert (handler.__doc__ or "").strip(), f"{name}: handler has no docstring"

    out = ccc.ok(name, "--help")
    blocks = out.split("\n\n")
    assert blocks[0].startswith(f"usage: ccc-watch {name}"), out
    # The description's paragraphs, as the docstring has them, up to the options.
    end = next(i for i, b in enumerate(blocks) if b.startswith(("options:", "positional ")))
    description = "\n\n".join(blocks[1:end]).strip()
    assert description, f"{name}: --help shows no description"
    assert " ".join(description.split()) == " ".join(handler.__doc__.split())
    # Its own options (and --quiet) are listed; the settings are named in one paragraph.
    parser = cli.build_parser().commands[name]
    own = [a for a in parser._actions if a.help != argparse.SUPPRESS]
    assert {a.dest for a in own} >= {"help", "quiet"}
    listed = blocks[end:]
    shared = [i for i, b in enumerate(listed) if b.startswith("shared settings: ")]
    assert len(shared) == 1, out
    for action in own:
        for flag in action.option_strings:
            at = [i for i, b in enumerate(listed) if flag in re.findall(r"-[-\w]+", b)]
            assert at and at[0] < shared[0], f"{name}: {flag} is not listed before the settings"
    assert "--vault" in listed[shared[0]] and "`ccc-watch --help`" in listed[shared[0]]
    hidden = [s for s in config.SETTINGS if s.flag not in listed[shared[0]]]
    options = re.findall(r"-[-\w]+", "\n".join([blocks[0], *listed]))  # not the description
    assert hidden and not any(s.flag in options for s in hidden), f"{name} lists settings"
    assert listed[shared[0] + 1].startswith("exit codes: 0 success, 1 ")
    assert " 78 bad" in " ".join(listed[shared[0] + 1].split())


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_takes_every_setting_flag(name: str) -> None:
    """The settings flags, hidden from a command's --help, still work after it."""
    positional = []  # what the command requires, made up from its parser
    for a in cli.build_parser().commands[name]._actions:
        if a.required or (not a.option_strings and a.nargs not in ("?", "*")):
            value = str(next(iter(a.choices))) if a.choices else "x"
            positional += [a.option_strings[0], value] if a.option_strings else [value]
    for s in config.SETTINGS:
        args = cli.build_parser().parse_args([name, *positional, s.flag, "x"])
        assert getattr(args, s.key) == "x", (name, s.flag)
    args = cli.build_parser().parse_args([name, *positional, "--config", "c.toml", "-q"])
    assert args.config == Path("c.toml") and args.quiet is True


def test_help_lists_the_exit_codes(ccc: Cli) -> None:
    """`ccc-watch --help` ends with every exit code of errors.EXIT_CODES and its
    meaning, the settings and the commands before it; commands come before settings."""
    out = ccc.ok("--help")
    tail = out[out.index("\nexit codes:\n") :]
    for code, meaning in EXIT_CODES.items():
        assert re.search(rf"^ +{code}  {re.escape(meaning)}$", tail, re.M), (code, tail)
    assert out.index("\ncommands:\n") < out.index("\nsettings:\n") < out.index(tail)
    assert out.splitlines()[0] == "usage: ccc-watch [-h] [--version] [-q] [SETTINGS] COMMAND [ARGS]"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["stauts"], "unknown command 'stauts'; did you mean 'status'?"),
        (["--vault", "v", "rebuidl"], "unknown command 'rebuidl'; did you mean 'rebuild'?"),
        (["xyzzy"], "unknown command 'xyzzy' (`ccc-watch --help` lists them)"),
        (["x\x1b[2Jy"], "unknown command 'x\\x1b[2Jy' (`ccc-watch --help` lists them)"),
        (["status", "--jsno"], "unknown option '--jsno'; did you mean '--json'?"),
        (["info", "--vualt=v"], "unknown option '--vualt'; did you mean '--vault'?"),
        (["audit", "verfy"], "action: unknown choice 'verfy'; did you mean 'verify'?"),
        (["status", "extra"], "unexpected argument 'extra'"),
        (["--vualt", "v", "status"], "unknown option '--vualt'; did you mean '--vault'?"),
        (["status", "--xyz"], "unknown option '--xyz' (`ccc-watch status --help` lists them)"),
    ],
    ids=["command", "command-after-settings", "no-match", "escape", "option", "setting",
         "choice", "extra", "option-before-the-command", "option-no-match"],
)  # fmt: skip
def test_a_mistake_on_the_command_line_is_two_lines(ccc: Cli, args: list[str], error: str) -> None:
    """A mistyped command, option or choice exits 2 with two lines on stderr: the usage
    of the command it was given to (a long one wraps), and one error naming the closest
    known one (or where to look); no terminal escape from the command line gets
    through."""
    proc = ccc.run(*args)
    assert proc.returncode == 2
    *usage_lines, line = proc.stderr.splitlines()
    usage = usage_lines[0]
    assert len(usage_lines) == 1 or args[0] == "audit", proc.stderr
    command = "" if args[0].startswith("-") or "command" in error else f" {args[0]}"
    assert usage.startswith(f"usage: ccc-watch{command} "), usage
    assert line == f"ccc-watch{command}: error: {error}"
    assert "\x1b" not in proc.stderr and proc.stdout == ""


def test_console_script_on_path_runs_help(ccc: Cli) -> None:
    """The installed `ccc-watch` console script is on PATH and `ccc-watch --help` works
    through it."""
    exe = shutil.which("ccc-watch", path=ccc.env.get("PATH"))
    assert exe is not None, "ccc-watch is not on PATH (pip install -e '.[test]')"
    proc = ccc.run("--help", program=[exe])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: ccc-watch")
    for name in cli.COMMANDS:
        assert name in proc.stdout


def test_version(ccc: Cli) -> None:
    """`ccc-watch --version` prints 'ccc-watch <installed version>' and exits 0."""
    out = ccc.ok("--version")
    assert out.strip() == f"ccc-watch {version('ccc-watch')}"
    assert ccc_watch.__version__ == version("ccc-watch")


def test_no_command_is_a_usage_error(ccc: Cli) -> None:
    """Without a command, ccc-watch prints usage and exits 2 (argparse)."""
    proc = ccc.run()
    assert proc.returncode == 2
    assert "usage: ccc-watch" in proc.stderr


# --- settings on the command line ----------------------------------------------


def test_settings_flags_before_and_after_the_command(ccc: Cli) -> None:
    """Settings flags work before the command and after it: `--vault V info` and
    `info --vault V` describe the same store, and flags split across both sides all
    count."""
    ccc.ok("--vault", ccc.vault, "init")
    before = ccc.json("--vault", ccc.vault, "info")
    after = ccc.json("info", "--vault", ccc.vault)
    assert before == after
    assert before["meta.vault_root"] == str(ccc.vault.resolve())

    data_dir = ccc.root / "elsewhere"
    got = ccc.json(
        "--vault", ccc.vault, "--batch-size", "5", "config", "--data-dir", data_dir,
        "--backend", "sqlite",
    )  # fmt: skip
    assert got["settings"]["vault"] == str(ccc.vault)
    assert got["settings"]["batch_size"] == 5
    assert got["settings"]["data_dir"] == str(data_dir)
    assert got["settings"]["backend"] == "sqlite"
    given = ("vault", "batch_size", "data_dir", "backend")
    assert all(got["sources"][key] == "flag" for key in given)
    assert all(src == "default" for key, src in got["sources"].items() if key not in given)

    # A flag given on both sides: the one after the command wins, and neither side's
    # absence resets the other.
    got = ccc.json("--backend", "redb", "config", "--backend", "sqlite")
    assert got["settings"]["backend"] == "sqlite"
    got = ccc.json("--backend", "sqlite", "config")
    assert got["settings"]["backend"] == "sqlite"


def test_relative_vault_flag_is_taken_from_the_cwd(ccc: Cli) -> None:
    """--vault given relative to the working folder works like the absolute path."""
    ccc.ok("--vault", ccc.vault, "init")
    rel = os.path.relpath(ccc.vault, ccc.cwd)
    assert ccc.json("info", "--vault", rel) == ccc.json("info", "--vault", ccc.vault)


# --- configuration errors -------------------------------------------------------


def _bad_backend(ccc: Cli) -> tuple[list[str], dict[str, str]]:
    return ["--backend", "mysql", "info", "--vault", str(ccc.vault)], {}


def _bad_batch_env(ccc: Cli) -> tuple[list[str], dict[str, str]]:
    return ["info", "--vault", str(ccc.vault)], {"CCC_WATCH_BATCH_SIZE": "abc"}


def _unknown_file_key(ccc: Cli) -> tuple[list[str], dict[str, str]]:
    ccc.default_config.parent.mkdir(parents=True)
    ccc.default_config.write_text(f'vault = "{ccc.vault}"\ncolour = "red"\n')
    return ["info"], {}


def _data_dir_in_vault(ccc: Cli) -> tuple[list[str], dict[str, str]]:
    return ["init", "--vault", str(ccc.vault), "--data-dir", str(ccc.vault / ".ccc-watch")], {}


@pytest.mark.parametrize(
    ("case", "key", "mention"),
    [
        (_bad_backend, "backend", "--backend"),
        (_bad_batch_env, "batch_size", "CCC_WATCH_BATCH_SIZE"),
        (_unknown_file_key, "colour", "config.toml"),
        (_data_dir_in_vault, "data_dir", "inside the vault"),
    ],
    ids=["bad-backend-flag", "bad-batch-size-env", "unknown-file-key", "data-dir-in-vault"],
)
def test_config_errors_exit_78_with_one_line(ccc: Cli, case: Any, key: str, mention: str) -> None:
    """A bad setting exits 78 (EX_CONFIG) with exactly one line on stderr that names
    the setting and where it came from; nothing is written to the vault."""
    args, extra_env = case(ccc)
    before = snapshot(ccc.vault)
    proc = ccc.run(*args, extra_env=extra_env)
    assert proc.returncode == 78, proc.stderr
    line = one_error_line(proc)
    assert line.startswith(f"ccc-watch: config: {key}: "), line
    assert mention in line
    assert "Traceback" not in proc.stderr
    assert snapshot(ccc.vault) == before


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_reports_a_bad_setting(ccc: Cli, name: str) -> None:
    """Every command resolves the settings first: a bad --backend exits 78 for each."""
    positional = {
        "get": ["Welcome.md"], "sql": ["SELECT 1"], "export": ["--parquet", "out"],
        "audit": ["verify"], "history": ["Welcome.md"],
        "restore": ["backup.tar"], "key": ["new", "new.key"],
    }  # fmt: skip
    positional = positional.get(name, [])
    proc = ccc.run(name, *positional, "--vault", ccc.vault, "--backend", "mysql")
    assert proc.returncode == 78
    assert one_error_line(proc).startswith("ccc-watch: config: backend: ")


def test_missing_explicit_config_file_exits_78(ccc: Cli) -> None:
    """--config or CCC_WATCH_CONFIG naming a missing file exits 78 with one line."""
    missing = ccc.root / "nope.toml"
    proc = ccc.run("--config", missing, "config")
    assert proc.returncode == 78
    line = one_error_line(proc)
    assert str(missing) in line and "named by --config" in line
    proc = ccc.run("config", extra_env={"CCC_WATCH_CONFIG": str(missing)})
    assert proc.returncode == 78
    line = one_error_line(proc)
    assert str(missing) in line and "named by CCC_WATCH_CONFIG" in line


def test_missing_vault_exits_78(ccc: Cli) -> None:
    """init with no vault set, or a vault that is not a folder, exits 78 naming 'vault'."""
    proc = ccc.run("init")
    assert proc.returncode == 78
    assert one_error_line(proc).startswith("ccc-watch: config: vault: ")
    proc = ccc.run("init", "--vault", ccc.root / "no-such-vault")
    assert proc.returncode == 78
    assert one_error_line(proc).startswith("ccc-watch: config: vault: ")


# --- init, info, check ------------------------------------------------------------


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_init_then_info(ccc: Cli, backend: str) -> None:
    """`init` creates an empty store under XDG_DATA_HOME; `info` and `info --json`
    describe it: 0 records, changelog head 0, the vault as meta.vault_root."""
    args = ["--vault", ccc.vault, *backend_args(backend)]
    out = ccc.ok(*args, "init")
    assert out.startswith("store ready: ")
    assert f"({backend}, 0 records)" in out

    info = ccc.json(*args, "info")
    assert info["backend"] == backend
    assert info["records"] == 0
    assert info["changelog_head"] == 0
    assert info["meta.vault_root"] == str(ccc.vault.resolve())
    assert info["meta.schema_version"] == 2
    assert info["meta.vault_id"]
    store = Path(info["store"])
    assert store.name == STORE_FILES[backend]
    assert store.parent.parent == ccc.vaults_dir
    assert store.is_file()
    assert info["size_bytes"] == store.stat().st_size
    assert str(store) in out

    text = ccc.ok(*args, "info")
    rows = dict(line.split(None, 1) for line in text.splitlines())
    assert rows["records"] == "0"
    assert rows["changelog_head"] == "0"
    assert rows["backend"] == backend
    assert rows["meta.vault_root"] == str(ccc.vault.resolve())


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_init_is_idempotent(ccc: Cli, backend: str) -> None:
    """A second `init` keeps the store: same vault_id, same created_at, still empty."""
    args = ["--vault", ccc.vault, *backend_args(backend)]
    ccc.ok(*args, "init")
    first = ccc.json(*args, "info")
    ccc.ok(*args, "init")
    second = ccc.json(*args, "info")
    assert second["meta.vault_id"] == first["meta.vault_id"]
    assert second["meta.created_at"] == first["meta.created_at"]
    assert second["records"] == 0
    assert second["changelog_head"] == 0


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_info_before_init_fails_in_one_line(ccc: Cli, backend: str) -> None:
    """`info` on a vault with no store exits non-zero with one line telling the user
    to run `ccc-watch init`, and creates nothing."""
    proc = ccc.run("info", "--vault", ccc.vault, *backend_args(backend))
    assert proc.returncode != 0
    assert proc.returncode != 78  # the settings are fine; the store is missing
    line = one_error_line(proc)
    assert "run `ccc-watch rebuild`" in line and "ccc-watch init" in line
    assert str(ccc.vault) in line
    assert "Traceback" not in proc.stderr
    assert not ccc.vaults_dir.exists()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_check_prints_ok(ccc: Cli, backend: str) -> None:
    """`check` on an intact store prints 'ok: <store file>' and exits 0."""
    args = ["--vault", ccc.vault, *backend_args(backend)]
    ccc.ok(*args, "init")
    out = ccc.ok(*args, "check")
    assert out.startswith("ok: ")
    assert out.strip().endswith(STORE_FILES[backend])


def test_backends_keep_separate_stores(ccc: Cli) -> None:
    """The redb and SQLite stores of one vault are separate files in the same data dir;
    initialising one does not make `info` succeed for the other."""
    ccc.ok("--vault", ccc.vault, "init")
    proc = ccc.run("--vault", ccc.vault, "--backend", "sqlite", "info")
    assert proc.returncode != 0
    assert "ccc-watch init" in one_error_line(proc)
    ccc.ok("--vault", ccc.vault, "--backend", "sqlite", "init")
    redb = ccc.json("--vault", ccc.vault, "info")
    sqlite = ccc.json("--vault", ccc.vault, "--backend", "sqlite", "info")
    assert Path(redb["store"]).parent == Path(sqlite["store"]).parent
    assert redb["store"] != sqlite["store"]


def test_config_json_shows_sources(ccc: Cli) -> None:
    """`config --json` reports the config file, each value and the layer it came from:
    flag, env, file and default side by side."""
    ccc.default_config.parent.mkdir(parents=True)
    ccc.default_config.write_text("batch_size = 64\n")
    got = ccc.json("config", "--vault", ccc.vault, extra_env={"CCC_WATCH_BACKEND": "sqlite"})
    assert got["config_file"] == str(ccc.default_config)
    assert got["sources"] == {s.key: "default" for s in config.SETTINGS} | {
        "vault": "flag",
        "backend": "env",
        "batch_size": "file",
    }
    assert got["settings"]["vault"] == str(ccc.vault)
    assert got["settings"]["backend"] == "sqlite"
    assert got["settings"]["batch_size"] == 64
    assert Path(got["settings"]["data_dir"]).parent == ccc.vaults_dir


def test_config_without_vault_or_file(ccc: Cli) -> None:
    """`config` works with nothing set: all defaults, no config file, no data dir; the
    text form says the default file is absent."""
    got = ccc.json("config")
    assert got["config_file"] is None
    assert set(got["sources"].values()) == {"default"}
    assert got["settings"]["vault"] is None
    assert got["settings"]["data_dir"] is None
    text = ccc.ok("config")
    assert "absent" in text
    assert str(ccc.default_config) in text
    assert not ccc.vaults_dir.exists()


# --- get ----------------------------------------------------------------------------


def rebuilt(ccc: Cli) -> None:
    """Index the vault (rebuild reports its progress on stderr)."""
    proc = ccc.run("--vault", ccc.vault, "rebuild")
    assert proc.returncode == 0, proc.stderr


def test_get_finds_a_note_by_absolute_path_and_by_link_name(ccc: Cli) -> None:
    """`get` takes a vault-relative path, an absolute path inside the vault (also
    through a symlink to the vault), or a note's name as a link gives it: without
    `.md`, without its folder, in another case when nothing matches the case given."""
    args = ["--vault", ccc.vault]
    rebuilt(ccc)
    (ccc.root / "link").symlink_to(ccc.vault)

    def path_of(name: str | Path) -> str:
        return str(json.loads(ccc.ok(*args, "get", name))["path"])

    assert path_of("Projects/Garden plan.md") == "Projects/Garden plan.md"
    assert path_of(ccc.vault / "Projects" / "Garden plan.md") == "Projects/Garden plan.md"
    assert path_of(ccc.root / "link" / "Projects" / "Budget.md") == "Projects/Budget.md"
    assert path_of(f"{ccc.vault}/Projects/../Welcome.md") == "Welcome.md"
    assert path_of("Garden plan") == "Projects/Garden plan.md"
    assert path_of("Projects/Budget") == "Projects/Budget.md"
    assert path_of("garden PLAN") == "Projects/Garden plan.md"
    assert path_of("beds.png") == "attachments/beds.png"


def test_get_outside_the_vault_is_a_usage_error(ccc: Cli) -> None:
    """An absolute path outside the vault, or the vault itself, is exit 2 with one line
    naming the path; nothing is looked up."""
    args = ["--vault", ccc.vault]
    rebuilt(ccc)
    outside = ccc.root / "elsewhere" / "Welcome.md"
    proc = ccc.run(*args, "get", outside)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(outside) in line and "not inside the vault" in line
    proc = ccc.run(*args, "get", ccc.vault)
    assert proc.returncode == 2 and "is the vault itself" in one_error_line(proc)


def test_get_names_every_candidate_of_an_ambiguous_name(ccc: Cli) -> None:
    """A name that several notes have is exit 1 naming them all; the path of one
    finds it; a note beats a file that has the same name without `.md`."""
    args = ["--vault", ccc.vault]
    (ccc.vault / "Old").mkdir()
    (ccc.vault / "Old" / "Budget.md").write_text("# old budget\n")
    (ccc.vault / "Old" / "Welcome").write_text("not a note\n")
    rebuilt(ccc)
    proc = ccc.run(*args, "get", "Budget")
    assert proc.returncode == 1
    assert one_error_line(proc) == (
        "ccc-watch: Budget names 2 records: Old/Budget.md, Projects/Budget.md; "
        "give one of these paths"
    )
    assert json.loads(ccc.ok(*args, "get", "Old/Budget"))["path"] == "Old/Budget.md"
    assert json.loads(ccc.ok(*args, "get", "Welcome"))["path"] == "Welcome.md"


def test_get_suggests_near_matches_when_nothing_matches(ccc: Cli) -> None:
    """No record: exit 1, one line with at most five near paths (by the whole path or
    the note's name), or none when nothing is close; hostile names stay one line."""
    args = ["--vault", ccc.vault]
    for i in range(8):
        (ccc.vault / f"Garden plan {i}.md").write_text("# plan\n")
    (ccc.vault / "Garden\nERROR forged.md").write_text("# forged\n")
    rebuilt(ccc)
    proc = ccc.run(*args, "get", "Projects/Garden plam.md")
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith("ccc-watch: no record at Projects/Garden plam.md; did you mean: ")
    suggested = line.split("did you mean: ", 1)[1].split(", ")
    assert suggested[0] == "Projects/Garden plan.md" and len(suggested) == 5
    proc = ccc.run(*args, "get", "Welcom")
    assert one_error_line(proc).endswith("did you mean: Welcome.md")
    proc = ccc.run(*args, "get", "Garden\nERROR forgd")
    assert proc.returncode == 1
    assert "Garden\\nERROR forged.md" in one_error_line(proc)
    proc = ccc.run(*args, "get", "zzzzqqqq")
    assert proc.returncode == 1
    assert one_error_line(proc) == "ccc-watch: no record at zzzzqqqq"


def test_config_names_where_the_config_file_came_from_and_the_log_file(ccc: Cli) -> None:
    """`config` says which file it read and why that one (--config, CCC_WATCH_CONFIG,
    the default path), or none; and the log file as resolved, not only the setting."""
    text = ccc.ok("config", "--vault", ccc.vault)
    rows = dict(line.split(None, 1) for line in text.splitlines())
    assert rows["config_file"] == f"none: all defaults ({ccc.default_config} is absent)"
    log_dir = ccc.root / "xdg-state" / "ccc-watch" / "log"
    data_dir = Path(ccc.json("config", "--vault", ccc.vault)["settings"]["data_dir"])
    assert rows["log_file"] == f"{log_dir / data_dir.name}.log  [default]"
    assert ccc.json("config", "--vault", ccc.vault)["config_from"] == "none"

    ccc.default_config.parent.mkdir(parents=True)
    ccc.default_config.write_text("batch_size = 64\n")
    own = ccc.root / "own.toml"
    own.write_text(f'log_file = "{ccc.root / "logs" / "v.log"}"\n')
    cases = [
        ([], {}, ccc.default_config, "the default path", "default"),
        (["--config", own], {}, own, "--config", "flag"),
        ([], {"CCC_WATCH_CONFIG": str(own)}, own, "CCC_WATCH_CONFIG", "env"),
    ]
    for args, env, file, said, source in cases:
        text = ccc.ok("config", "--vault", ccc.vault, *args, extra_env=env)
        rows = dict(line.split(None, 1) for line in text.splitlines())
        assert rows["config_file"] == f"{file}  [{said}]", text
        got = ccc.json("config", "--vault", ccc.vault, *args, extra_env=env)
        assert got["config_file"] == str(file) and got["config_from"] == source
    assert rows["log_file"] == f"{ccc.root / 'logs' / 'v.log'}  [file]"


def test_text_output_has_human_sizes_and_times_json_the_numbers(ccc: Cli) -> None:
    """`info` and `status` print sizes in KiB/MiB and times as local ISO time with
    their age; --json keeps bytes, epochs and UTC for programs."""
    ccc.ok("--vault", ccc.vault, "rebuild")
    ccc.ok("--vault", ccc.vault, "scan")  # sets meta.last_scan_started_ns
    info = ccc.json("--vault", ccc.vault, "info")
    rows = dict(line.split(None, 1) for line in ccc.ok("--vault", ccc.vault, "info").splitlines())
    assert "size_bytes" not in rows
    assert re.fullmatch(r"\d+\.\d (KiB|MiB)", rows["size"]), rows["size"]
    assert float(rows["size"].split()[0]) * 1024 ** (1 if "KiB" in rows["size"] else 2) == (
        pytest.approx(info["size_bytes"], rel=0.01)
    )
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d"
    age = r"\((now|\d+ s ago|\d+ min \d+ s ago)\)"
    for key in ("meta.created_at", "meta.last_scan_started_ns"):
        assert re.fullmatch(f"{stamp} {age}", rows[key]), rows[key]
        assert isinstance(info[key], int | float)

    proc = ccc.run("--vault", ccc.vault, "status")
    assert proc.returncode == 2  # no daemon
    rows = dict(re.split(r"  +", line, maxsplit=1) for line in proc.stdout.splitlines())
    assert re.fullmatch(r"\d+(\.\d)? (B|KiB|MiB)", rows["store size"]), rows
    assert re.fullmatch(r"\d+(\.\d)? (B|KiB|MiB)", rows["mirror size"]), rows
    assert rows["uptime"] == "-" and "uptime_seconds" not in rows
    status = json.loads(ccc.run("--vault", ccc.vault, "status", "--json").stdout)
    assert isinstance(status["store"]["bytes"], int) and "uptime_seconds" in status


def test_human_sizes_durations_and_times() -> None:
    """The text forms: binary units, two time units, local time with its age; a value
    that is no time (or beyond the calendar) is shown as it is, never raised."""
    from ccc_watch.cli._common import human_duration, human_size, human_time

    sizes = {0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 110592: "108.0 KiB",
             2633728: "2.5 MiB", 5 * 2**30: "5.0 GiB", 3 * 2**50: "3072.0 TiB"}  # fmt: skip
    assert {n: human_size(n) for n in sizes} == sizes and human_size(None) is None
    spans = {0: "0 s", 59.6: "1 min 0 s", 200: "3 min 20 s", 7500: "2 h 5 min",
             90000: "1 d 1 h"}  # fmt: skip
    assert {t: human_duration(t) for t in spans} == spans
    now = 1_800_000_000.0
    local = datetime.fromtimestamp(now - 130).astimezone().isoformat(" ", "seconds")
    assert human_time(now - 130, now) == f"{local} (2 min 10 s ago)"
    utc = datetime.fromtimestamp(now - 130, UTC).isoformat()
    assert human_time(utc, now) == f"{local} (2 min 10 s ago)"  # status's UTC, as local
    assert human_time(now + 5, now).endswith("(5 s from now)")
    assert human_time(now, now).endswith("(now)")
    assert human_time("not a time") == "not a time" and human_time(1e300) == "1e+300"
    assert human_time(None) is None


def test_off_a_terminal_results_and_warnings_only_and_quiet(ccc: Cli) -> None:
    """Piped, `scan` prints its findings and one summary line on stdout, and the same
    findings on stderr as WARNING entries in the log file's shape (no INFO line, no
    source location); --quiet (before or after the command) keeps only the findings."""
    ccc.ok("--vault", ccc.vault, "rebuild")
    (ccc.vault / "new one.md").write_text("# new\n")
    proc = ccc.run("--vault", ccc.vault, "scan")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == 'DRIFT kind=created-offline path="new one.md" detail="new file"'
    assert len(out) == 2 and out[1].startswith("scanned "), out
    (entry,) = proc.stderr.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}[+-]\d{4} \| WARNING  \| " + re.escape(out[0]),
        entry,
    ), entry

    (ccc.vault / "new one.md").unlink()
    quiet = ccc.ok("--quiet", "--vault", ccc.vault, "scan")
    assert quiet == 'DRIFT kind=deleted-offline path="new one.md" detail="file is gone"\n'
    (ccc.vault / "new one.md").write_text("# new\n")
    assert ccc.ok("--vault", ccc.vault, "scan", "-q") == proc.stdout.splitlines()[0] + "\n"
    assert ccc.ok("--vault", ccc.vault, "verify", "-q") == ""
    assert ccc.ok("--vault", ccc.vault, "mirror", "-q") == ""
    assert ccc.ok("--vault", ccc.vault, "rebuild", "-q") == ""


def on_terminal(ccc: Cli, *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    """Run ccc-watch with stderr on a pseudo-terminal and stdout on a pipe: exit code,
    stdout, and what the terminal showed."""
    import fcntl  # POSIX only, as this test
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    # A terminal of 24 rows and 100 columns: tqdm draws nothing on one of unknown size.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [*MODULE, *map(str, args)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=follower, env=ccc.env, cwd=ccc.cwd)  # fmt: skip
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    return proc.wait(timeout=60), out, shown.decode(errors="replace")


def test_on_a_terminal_a_progress_bar_and_quiet_has_none(ccc: Cli) -> None:
    """With stderr on a terminal, `rebuild` and `verify` draw a progress bar there (and
    clear it), the results still go to stdout; --quiet draws none."""
    code, out, shown = on_terminal(ccc, "--vault", ccc.vault, "rebuild")
    assert code == 0 and out.startswith("indexed "), (out, shown)
    assert "rebuild:" in shown and "file" in shown and "\r" in shown, repr(shown)
    code, out, shown = on_terminal(ccc, "--vault", ccc.vault, "verify")
    assert code == 0 and out == "verify: clean\n", out
    assert "verify:" in shown, repr(shown)
    code, out, shown = on_terminal(ccc, "--vault", ccc.vault, "rebuild", "--quiet")
    assert code == 0 and out == "" and shown == "", repr(shown)


# --- safety -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_store_folder_and_file_are_private(ccc: Cli, backend: str) -> None:
    """Even under umask 000 the data folder is created 0700 and every file in it
    (the database, and any lock/WAL file) is 0600."""
    args = ["--vault", ccc.vault, *backend_args(backend)]
    ccc.ok(*args, "init", umask=0)
    info = ccc.json(*args, "info", umask=0)
    store = Path(info["store"])
    assert stat.S_IMODE(os.stat(store.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    for entry in store.parent.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600, entry


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
@pytest.mark.parametrize(
    "commands", [["rebuild"], ["init"], ["init", "mirror"], ["rebuild", "export"]],
    ids=["rebuild", "init", "mirror", "export"],
)  # fmt: skip
def test_first_commands_create_everything_private(
    ccc: Cli, commands: list[str], umask: int
) -> None:
    """The first rebuild, init, mirror or export creates every folder it makes 0700 (from
    the user data dir's ccc-watch/ down to the data dir, and the export folder) and every
    file 0600, whatever the umask."""
    exports = ccc.root / "exports" / "today"
    for command in commands:
        extra = ["--parquet", exports] if command == "export" else []
        proc = ccc.run("--vault", ccc.vault, command, *extra, umask=umask)
        assert proc.returncode == 0, (command, proc.stderr)
    made = [ccc.data_home / "ccc-watch"]
    if exports.parent.exists():
        made.append(exports.parent)
    assert not_private(*made) == {}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_vault_is_unchanged_by_every_command(ccc: Cli, backend: str) -> None:
    """After config, init (twice), info, info --json and check, every file and folder
    of the vault, .obsidian included, has the same bytes, mode and mtime as before,
    and no entry was added or removed."""
    before = snapshot(ccc.vault)
    assert ".obsidian/app.json" in before
    args = ["--vault", ccc.vault, *backend_args(backend)]
    ccc.ok(*args, "config")
    ccc.ok(*args, "config", "--json")
    ccc.ok(*args, "init")
    ccc.ok(*args, "init")
    ccc.ok(*args, "info")
    ccc.ok(*args, "info", "--json")
    ccc.ok(*args, "check")
    assert snapshot(ccc.vault) == before


# --- closed pipes and interrupts ----------------------------------------------------


def test_closed_stdout_pipe_ends_quietly(ccc: Cli) -> None:
    """`ccc-watch dump | head -1`: when the reader closes the pipe, dump stops with exit
    0 and no traceback (its output is far larger than the pipe's buffer)."""
    for i in range(500):
        (ccc.vault / f"many-{i:03d}.md").write_text(f"# note {i}\n\n" + "word " * 200)
    assert ccc.run("--vault", ccc.vault, "rebuild").returncode == 0
    proc = subprocess.Popen(
        [*MODULE, "--vault", str(ccc.vault), "dump"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ccc.env, cwd=ccc.cwd,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert first["path"]
    assert err == ""


# Each command that can print many lines, as `CMD | head` runs it.
MANY_LINES = [
    ["dump"],
    ["sql", "FROM notes"],
    ["sql", "FROM notes", "--format", "json"],
    ["sql", "FROM notes", "--format", "nl"],
    ["sql", "FROM notes", "--format", "csv"],
    ["history", "Welcome.md"],
    ["log"],
    ["log", "--since", "1w"],
    ["manifest", "show"],
    ["nodes"],
    ["drift"],
    ["drift", "--missing"],
    ["verify"],
    ["audit", "verify"],
    ["export", "--parquet", "exported"],
]


def test_a_pipe_closed_before_the_first_line_ends_quietly(ccc: Cli) -> None:
    """`ccc-watch CMD | head` where the reader is gone before CMD writes a line (the
    harshest case: every write fails): exit 0, no traceback and no error line, for each
    command that prints many lines (drift with another node's manifest to compare with;
    its DRIFT log lines on stderr are its report, as ever)."""
    log = ccc.root / "daemon.log"
    log.write_text("2026-11-27 14:03:07.412+0100 | INFO     | watching\n" * 2000)
    common = ["--vault", ccc.vault, "--log-file", log, "--manifest-dir", ccc.root / "manifests"]
    assert ccc.run(*common, "rebuild").returncode == 0
    published = ccc.run(*common, "--node", "other", "manifest", "publish")
    assert published.returncode == 0, published.stderr
    (ccc.vault / "Welcome.md").write_text("# changed\n")  # drifts to report
    (ccc.vault / "Reading list.md").unlink()
    assert ccc.run(*common, "scan").returncode == 0
    for args in MANY_LINES:
        r, w = os.pipe()
        os.close(r)  # no reader, before the child starts
        try:
            proc = subprocess.run(
                [*MODULE, *map(str, common), "--node", "this", *args],
                stdout=w, stderr=subprocess.PIPE, env=ccc.env, cwd=ccc.cwd, timeout=120,
                check=False, text=True,
            )  # fmt: skip
        finally:
            os.close(w)
        unexpected = [line for line in proc.stderr.splitlines() if "DRIFT kind=" not in line]
        assert (proc.returncode, unexpected) == (0, []), args


def test_ctrl_c_ends_log_follow_quietly(ccc: Cli) -> None:
    """Ctrl-C is how `log -f` is stopped: exit 0, nothing on stderr."""
    log = ccc.root / "daemon.log"
    log.write_text("2026-11-27 14:03:07.412+0100 | INFO     | watching\n")
    proc = subprocess.Popen(
        [*MODULE, "--vault", str(ccc.vault), "--log-file", str(log), "log", "-f"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ccc.env, cwd=ccc.cwd, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().endswith("| INFO     | watching\n")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err == ""


def test_interrupt_is_one_line_and_exit_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C in any other command: `ccc-watch: interrupted` and exit 130, no traceback."""
    for name in [n for n in os.environ if n.startswith("CCC_WATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))

    def interrupted(args: Any, cfg: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.COMMANDS["config"].module, "run", interrupted)
    assert cli.main(["config"]) == 130
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == "ccc-watch: interrupted"
    assert "Traceback" not in captured.err and captured.out == ""


# Windows has neither fcntl nor SIGUSR1/SIGHUP: the commands that need no daemon (here
# rendering the scheduled task) must still import and work.
WITHOUT_POSIX = """
import signal, sys
sys.modules["fcntl"] = None
for name in ("SIGUSR1", "SIGHUP"):
    delattr(signal, name)
from ccc_watch.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_cli_works_without_posix_locks_and_signals(tmp_path: Path) -> None:
    """As on Windows: `service print` renders the task, and `status` says no daemon runs."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    common = ["--vault", str(SAMPLE_VAULT), "--data-dir", str(tmp_path / "data")]
    task = subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX, *common, "service", "print", "--platform",
         "windows"], capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert task.returncode == 0, task.stderr
    assert "<Arguments>-m ccc_watch.cli --config" in task.stdout
    status = subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX, *common, "status"],
        capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert status.returncode == 2 and "Traceback" not in status.stderr, status.stderr
