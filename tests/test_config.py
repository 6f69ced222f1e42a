"""ccc_watch.config: flag > CCC_WATCH_* env > TOML file > default, on real files.

Every test runs with XDG_CONFIG_HOME, XDG_DATA_HOME and HOME inside tmp_path, no
CCC_WATCH_* variable set, and tmp_path/cwd as the working folder, so the user's real
configuration and data are never read or written.
"""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccc_watch import config
from ccc_watch.errors import EXIT_CONFIG, ConfigError


@dataclass
class Env:
    """The isolated environment one test runs in."""

    root: Path
    cwd: Path
    home: Path
    config_home: Path
    data_home: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def default_config(self) -> Path:
        return self.config_home / "ccc-watch" / "config.toml"

    def write_default_config(self, text: str) -> Path:
        self.default_config.parent.mkdir(parents=True, exist_ok=True)
        self.default_config.write_text(text, encoding="utf-8")
        return self.default_config

    def setenv(self, name: str, value: str) -> None:
        self.monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Isolate XDG dirs, HOME and the cwd into tmp_path; unset every CCC_WATCH_*."""
    for name in list(os.environ):
        if name.startswith("CCC_WATCH_"):
            monkeypatch.delenv(name)
    e = Env(
        root=tmp_path,
        cwd=tmp_path / "cwd",
        home=tmp_path / "home",
        config_home=tmp_path / "xdg-config",
        data_home=tmp_path / "xdg-data",
        monkeypatch=monkeypatch,
    )
    for d in (e.cwd, e.home, e.config_home, e.data_home):
        d.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(e.config_home))
    monkeypatch.setenv("XDG_DATA_HOME", str(e.data_home))
    monkeypatch.setenv("HOME", str(e.home))
    monkeypatch.chdir(e.cwd)
    return e


def toml_str(path: Path | str) -> str:
    """A TOML basic string holding path."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- precedence -------------------------------------------------------------


@dataclass(frozen=True)
class Layers:
    """For one setting: the raw value each layer gives and what it parses to.

    Neighbouring layers differ, so the winner is always visible in the value.
    """

    flag: Callable[[Path], str]
    env: Callable[[Path], str]
    file: Callable[[Path], str]  # a TOML literal
    expect_flag: Callable[[Path], Any]
    expect_env: Callable[[Path], Any]
    expect_file: Callable[[Path], Any]


LAYERS: dict[str, Layers] = {
    "vault": Layers(
        flag=lambda r: str(r / "v-flag"),
        env=lambda r: str(r / "v-env"),
        file=lambda r: toml_str(r / "v-file"),
        expect_flag=lambda r: r / "v-flag",
        expect_env=lambda r: r / "v-env",
        expect_file=lambda r: r / "v-file",
    ),
    "data_dir": Layers(
        flag=lambda r: str(r / "d-flag"),
        env=lambda r: str(r / "d-env"),
        file=lambda r: toml_str(r / "d-file"),
        expect_flag=lambda r: r / "d-flag",
        expect_env=lambda r: r / "d-env",
        expect_file=lambda r: r / "d-file",
    ),
    "backend": Layers(
        flag=lambda r: "sqlite",
        env=lambda r: "redb",
        file=lambda r: '"sqlite"',
        expect_flag=lambda r: "sqlite",
        expect_env=lambda r: "redb",
        expect_file=lambda r: "sqlite",
    ),
    "batch_size": Layers(
        flag=lambda r: "7",
        env=lambda r: "8",
        file=lambda r: "9",
        expect_flag=lambda r: 7,
        expect_env=lambda r: 8,
        expect_file=lambda r: 9,
    ),
    "config_dir": Layers(
        flag=lambda r: ".obsidian-flag",
        env=lambda r: ".obsidian-env",
        file=lambda r: '".obsidian-file"',
        expect_flag=lambda r: ".obsidian-flag",
        expect_env=lambda r: ".obsidian-env",
        expect_file=lambda r: ".obsidian-file",
    ),
    "ignore": Layers(
        flag=lambda r: "a/,*.pdf",
        env=lambda r: "b/",
        file=lambda r: '["c/", "*.tmp"]',
        expect_flag=lambda r: ("a/", "*.pdf"),
        expect_env=lambda r: ("b/",),
        expect_file=lambda r: ("c/", "*.tmp"),
    ),
    "max_note_bytes": Layers(
        flag=lambda r: "1000",
        env=lambda r: "2000",
        file=lambda r: "3000",
        expect_flag=lambda r: 1000,
        expect_env=lambda r: 2000,
        expect_file=lambda r: 3000,
    ),
    "default_classification": Layers(
        flag=lambda r: "public",
        env=lambda r: "SECRET",
        file=lambda r: '"CONFIDENTIAL"',
        expect_flag=lambda r: "PUBLIC",
        expect_env=lambda r: "SECRET",
        expect_file=lambda r: "CONFIDENTIAL",
    ),
    "confidential_text": Layers(
        flag=lambda r: "seal",
        env=lambda r: "drop",
        file=lambda r: '"seal"',
        expect_flag=lambda r: "seal",
        expect_env=lambda r: "drop",
        expect_file=lambda r: "seal",
    ),
    **{
        key: Layers(
            flag=lambda r: "0.5",
            env=lambda r: "2",
            file=lambda r: "3.25",
            expect_flag=lambda r: 0.5,
            expect_env=lambda r: 2.0,
            expect_file=lambda r: 3.25,
        )
        for key in ("settle", "flush_interval", "reconcile_interval", "fallback_interval")
    },
    "log_file": Layers(
        flag=lambda r: str(r / "l-flag.log"),
        env=lambda r: str(r / "l-env.log"),
        file=lambda r: toml_str(r / "l-file.log"),
        expect_flag=lambda r: r / "l-flag.log",
        expect_env=lambda r: r / "l-env.log",
        expect_file=lambda r: r / "l-file.log",
    ),
    "log_max_bytes": Layers(
        flag=lambda r: "4096",
        env=lambda r: "8192",
        file=lambda r: "16384",
        expect_flag=lambda r: 4096,
        expect_env=lambda r: 8192,
        expect_file=lambda r: 16384,
    ),
    "log_retention": Layers(
        flag=lambda r: "1",
        env=lambda r: "2",
        file=lambda r: "3",
        expect_flag=lambda r: 1,
        expect_env=lambda r: 2,
        expect_file=lambda r: 3,
    ),
    **{
        key: Layers(
            flag=lambda r, key=key: str(r / f"{key}-flag"),
            env=lambda r, key=key: str(r / f"{key}-env"),
            file=lambda r, key=key: toml_str(r / f"{key}-file"),
            expect_flag=lambda r, key=key: r / f"{key}-flag",
            expect_env=lambda r, key=key: r / f"{key}-env",
            expect_file=lambda r, key=key: r / f"{key}-file",
        )
        for key in ("key_file", "backup_dir")
    },
    "backup_keep": Layers(
        flag=lambda r: "1",
        env=lambda r: "2",
        file=lambda r: "3",
        expect_flag=lambda r: 1,
        expect_env=lambda r: 2,
        expect_file=lambda r: 3,
    ),
    "backup_encrypt": Layers(
        flag=lambda r: "yes",
        env=lambda r: "0",
        file=lambda r: "true",
        expect_flag=lambda r: True,
        expect_env=lambda r: False,
        expect_file=lambda r: True,
    ),
    "backup_interval": Layers(
        flag=lambda r: "3600",
        env=lambda r: "0",
        file=lambda r: "86400",
        expect_flag=lambda r: 3600.0,
        expect_env=lambda r: 0.0,
        expect_file=lambda r: 86400.0,
    ),
    "node": Layers(
        flag=lambda r: "laptop",
        env=lambda r: "desk-top.2",
        file=lambda r: '"field_machine"',
        expect_flag=lambda r: "laptop",
        expect_env=lambda r: "desk-top.2",
        expect_file=lambda r: "field_machine",
    ),
    "role": Layers(
        flag=lambda r: "headquarters",
        env=lambda r: "outpost",
        file=lambda r: '"headquarters"',
        expect_flag=lambda r: "headquarters",
        expect_env=lambda r: "outpost",
        expect_file=lambda r: "headquarters",
    ),
    "manifest_dir": Layers(
        flag=lambda r: str(r / "m-flag"),
        env=lambda r: str(r / "m-env"),
        file=lambda r: toml_str(r / "m-file"),
        expect_flag=lambda r: r / "m-flag",
        expect_env=lambda r: r / "m-env",
        expect_file=lambda r: r / "m-file",
    ),
    "hq_url": Layers(
        flag=lambda r: "postgresql://hq.example/vaults",
        env=lambda r: "postgresql://ccc@localhost:5433/v?sslmode=require",
        file=lambda r: '"postgres:///vaults?host=/run/postgresql"',
        expect_flag=lambda r: "postgresql://hq.example/vaults",
        expect_env=lambda r: "postgresql://ccc@localhost:5433/v?sslmode=require",
        expect_file=lambda r: "postgres:///vaults?host=/run/postgresql",
    ),
    "hq_password_file": Layers(
        flag=lambda r: str(r / "pw-flag"),
        env=lambda r: str(r / "pw-env"),
        file=lambda r: toml_str(r / "pw-file"),
        expect_flag=lambda r: r / "pw-flag",
        expect_env=lambda r: r / "pw-env",
        expect_file=lambda r: r / "pw-file",
    ),
    "publish_interval": Layers(
        flag=lambda r: "60",
        env=lambda r: "0",
        file=lambda r: "900",
        expect_flag=lambda r: 60.0,
        expect_env=lambda r: 0.0,
        expect_file=lambda r: 900.0,
    ),
    "stale_after": Layers(
        flag=lambda r: "3600",
        env=lambda r: "7200.5",
        file=lambda r: "604800",
        expect_flag=lambda r: 3600.0,
        expect_env=lambda r: 7200.5,
        expect_file=lambda r: 604800.0,
    ),
    "manifest_paths": Layers(
        flag=lambda r: "plain",
        env=lambda r: "private",
        file=lambda r: '"plain"',
        expect_flag=lambda r: "plain",
        expect_env=lambda r: "private",
        expect_file=lambda r: "plain",
    ),
    "history_keep_days": Layers(
        flag=lambda r: "7",
        env=lambda r: "30",
        file=lambda r: "0",
        expect_flag=lambda r: 7,
        expect_env=lambda r: 30,
        expect_file=lambda r: 0,
    ),
    "history_keep_entries": Layers(
        flag=lambda r: "100",
        env=lambda r: "0",
        file=lambda r: "5000",
        expect_flag=lambda r: 100,
        expect_env=lambda r: 0,
        expect_file=lambda r: 5000,
    ),
    "metrics": Layers(
        flag=lambda r: "9464",
        env=lambda r: "127.0.0.1:9465",
        file=lambda r: '"0.0.0.0:9466"',
        expect_flag=lambda r: "9464",
        expect_env=lambda r: "127.0.0.1:9465",
        expect_file=lambda r: "0.0.0.0:9466",
    ),
}


def test_layers_cover_every_setting() -> None:
    """The precedence table below has an entry for every setting in SETTINGS, so a new
    setting cannot slip past the precedence tests."""
    assert set(LAYERS) == {s.key for s in config.SETTINGS}


@pytest.mark.parametrize("top", ["flag", "env", "file", "default"])
@pytest.mark.parametrize("setting", config.SETTINGS, ids=lambda s: s.key)
def test_precedence(env: Env, setting: config.Setting, top: str) -> None:
    """Given the top layer and every layer below it, the top layer wins and `sources`
    names it: flag > CCC_WATCH_* env > TOML file > default."""
    layers = LAYERS[setting.key]
    order = ["flag", "env", "file", "default"]
    given = order[order.index(top) :]
    flags: dict[str, Any] = {s.key: None for s in config.SETTINGS}
    if "flag" in given:
        flags[setting.key] = layers.flag(env.root)
    if "env" in given:
        env.setenv(setting.env, layers.env(env.root))
    if "file" in given:
        env.write_default_config(f"{setting.key} = {layers.file(env.root)}\n")

    cfg = config.load(flags)

    expected = {
        "flag": layers.expect_flag,
        "env": layers.expect_env,
        "file": layers.expect_file,
        "default": lambda r: setting.default,
    }[top](env.root)
    assert cfg.values[setting.key] == expected
    assert getattr(cfg, setting.key) == expected
    assert cfg.sources[setting.key] == top
    # Every other setting stays at its default.
    for other in config.SETTINGS:
        if other is not setting:
            assert cfg.sources[other.key] == "default"
            assert cfg.values[other.key] == other.default


def test_precedence_all_settings_at_once(env: Env) -> None:
    """Each setting takes its value from a different layer in one load; `sources`
    reports all four origins side by side."""
    env.setenv("CCC_WATCH_BACKEND", "sqlite")
    env.setenv("CCC_WATCH_BATCH_SIZE", "5")  # loses to the flag
    env.write_default_config(
        f'batch_size = 9\nbackend = "redb"\ndata_dir = {toml_str(env.root / "d")}\n'
    )
    cfg = config.load({"batch_size": "3"})
    assert {k: cfg.values[k] for k in ("vault", "data_dir", "backend", "batch_size")} == {
        "vault": None,
        "data_dir": env.root / "d",
        "backend": "sqlite",
        "batch_size": 3,
    }
    assert {k: cfg.sources[k] for k in ("vault", "data_dir", "backend", "batch_size")} == {
        "vault": "default",
        "data_dir": "file",
        "backend": "env",
        "batch_size": "flag",
    }


def test_none_flag_means_not_given(env: Env) -> None:
    """A flag whose value is None (argparse: not on the command line) falls through to
    the environment."""
    env.setenv("CCC_WATCH_BATCH_SIZE", "12")
    cfg = config.load({"batch_size": None})
    assert cfg.batch_size == 12
    assert cfg.sources["batch_size"] == "env"


def test_empty_env_variable_counts_as_unset(env: Env) -> None:
    """CCC_WATCH_BACKEND='' does not hide the file's value (nor raise)."""
    env.setenv("CCC_WATCH_BACKEND", "")
    env.write_default_config('backend = "sqlite"\n')
    cfg = config.load()
    assert cfg.backend == "sqlite"
    assert cfg.sources["backend"] == "file"


def test_load_reads_os_environ_by_default(env: Env) -> None:
    """Without an explicit environ, load() reads the real process environment; an
    explicit environ replaces it entirely."""
    env.setenv("CCC_WATCH_BACKEND", "sqlite")
    assert config.load().backend == "sqlite"
    assert config.load(environ={}).backend == "redb"


def test_setting_names() -> None:
    """Each setting's env variable is CCC_WATCH_<KEY> and its flag --<key-with-dashes>."""
    by_key = config.BY_KEY
    assert by_key["data_dir"].env == "CCC_WATCH_DATA_DIR"
    assert by_key["data_dir"].flag == "--data-dir"
    assert by_key["batch_size"].env == "CCC_WATCH_BATCH_SIZE"
    assert by_key["batch_size"].flag == "--batch-size"
    for s in config.SETTINGS:
        assert s.env == "CCC_WATCH_" + s.key.upper()
        assert s.help.strip()


# --- the config file ----------------------------------------------------------


def test_missing_default_config_file_means_all_defaults(env: Env) -> None:
    """No file at the default location is not an error: every setting is its default
    and config_file is None."""
    assert not env.default_config.exists()
    assert config.default_config_file() == env.default_config
    cfg = config.load()
    assert cfg.config_file is None
    for s in config.SETTINGS:
        assert cfg.values[s.key] == s.default
        assert cfg.sources[s.key] == "default"


def test_empty_config_file_means_all_defaults(env: Env) -> None:
    """An empty TOML file sets nothing: all defaults, and config_file names the file."""
    path = env.write_default_config("")
    cfg = config.load()
    assert cfg.config_file == path
    assert all(src == "default" for src in cfg.sources.values())
    assert dict(cfg.values) == {s.key: s.default for s in config.SETTINGS}


def test_comment_only_config_file_means_all_defaults(env: Env) -> None:
    """A file holding only comments and blank lines behaves like an empty one."""
    env.write_default_config("# nothing here\n\n   # still nothing\n")
    cfg = config.load()
    assert all(src == "default" for src in cfg.sources.values())


def test_config_flag_overrides_config_env(env: Env) -> None:
    """--config (load's config_file) beats CCC_WATCH_CONFIG, which beats the default
    location."""
    default = env.write_default_config("batch_size = 1\n")
    from_env = env.root / "env.toml"
    from_env.write_text("batch_size = 2\n")
    from_flag = env.root / "flag.toml"
    from_flag.write_text("batch_size = 3\n")

    assert config.load().config_file == default
    assert config.load().batch_size == 1
    env.setenv("CCC_WATCH_CONFIG", str(from_env))
    assert config.load().config_file == from_env
    assert config.load().batch_size == 2
    cfg = config.load(config_file=from_flag)
    assert cfg.config_file == from_flag
    assert cfg.batch_size == 3


def test_explicit_missing_config_file_flag_is_an_error(env: Env) -> None:
    """--config naming a file that does not exist is a ConfigError (key 'config',
    exit code 78) naming the file, not a silent fall back to defaults."""
    missing = env.root / "nope.toml"
    with pytest.raises(ConfigError) as info:
        config.load(config_file=missing)
    assert info.value.key == "config"
    assert str(missing) in str(info.value)
    assert info.value.exit_code == EXIT_CONFIG == 78


def test_explicit_missing_config_file_env_is_an_error(env: Env) -> None:
    """CCC_WATCH_CONFIG naming a missing file is a ConfigError naming the file, even
    when the default config file exists."""
    env.write_default_config("batch_size = 1\n")
    missing = env.root / "gone" / "config.toml"
    env.setenv("CCC_WATCH_CONFIG", str(missing))
    with pytest.raises(ConfigError) as info:
        config.load()
    assert info.value.key == "config"
    assert str(missing) in str(info.value)


def test_config_file_path_expands_tilde(env: Env) -> None:
    """--config ~/x.toml reads the file in HOME."""
    (env.home / "x.toml").write_text("batch_size = 4\n")
    cfg = config.load(config_file=Path("~/x.toml"))
    assert cfg.batch_size == 4
    assert cfg.config_file == env.home / "x.toml"


@pytest.mark.parametrize(
    "text",
    ["backend = ", "[unclosed", 'vault = "no end', "batch_size = 1\nbatch_size = 2\n", "= 3"],
)
def test_invalid_toml_is_a_config_error_naming_the_file(env: Env, text: str) -> None:
    """A file that is not valid TOML is a ConfigError (key 'config') whose message
    names the file, for the default file and an explicit one alike."""
    path = env.write_default_config(text)
    with pytest.raises(ConfigError) as info:
        config.load()
    assert info.value.key == "config"
    assert str(path) in str(info.value)
    assert "TOML" in str(info.value)

    other = env.root / "explicit.toml"
    other.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(config_file=other)
    assert str(other) in str(info.value)


def test_non_utf8_config_file_is_a_config_error(env: Env) -> None:
    """Bytes that are not UTF-8 are invalid TOML: ConfigError naming the file."""
    env.default_config.parent.mkdir(parents=True)
    env.default_config.write_bytes(b'vault = "\xff\xfe"\n')
    with pytest.raises(ConfigError) as info:
        config.load()
    assert str(env.default_config) in str(info.value)


def test_config_file_that_is_a_folder_is_a_config_error(env: Env) -> None:
    """A --config naming a folder cannot be read: ConfigError naming it."""
    folder = env.root / "folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigError) as info:
        config.load(config_file=folder)
    assert info.value.key == "config"
    assert str(folder) in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('colour = "red"\n', "colour"),
        ("batch-size = 3\n", "batch-size"),
        ('Backend = "redb"\n', "Backend"),
        ('[store]\nbackend = "redb"\n', "store"),
        ('backend = "redb"\nzzz_extra = 1\n', "zzz_extra"),
    ],
)
def test_unknown_key_is_a_config_error_naming_it(env: Env, text: str, key: str) -> None:
    """A key that is not a setting (a typo, a dash, a capital, a table) is refused:
    ConfigError whose .key is that key and whose message names the file."""
    path = env.write_default_config(text)
    with pytest.raises(ConfigError) as info:
        config.load()
    assert info.value.key == key
    assert f": {key}:" in str(info.value)
    assert str(path) in str(info.value)


# --- bad values ---------------------------------------------------------------

BAD_VALUES: list[tuple[str, str, str]] = [
    # (setting, raw for flag/env, TOML literal for the file)
    ("backend", "mysql", '"mysql"'),
    ("backend", "REDB", '"REDB"'),
    ("batch_size", "0", "0"),
    ("batch_size", "-1", "-1"),
    ("batch_size", "abc", '"abc"'),
    ("batch_size", "true", "true"),
    ("batch_size", "1.5", "1.5"),
    ("vault", "", '""'),
    ("data_dir", "   ", '"   "'),
    ("settle", "0", "0"),
    ("metrics", "http", '"http"'),
    ("metrics", "localhost:70000", '"localhost:70000"'),
    ("settle", "-0.1", "-0.1"),
    ("flush_interval", "soon", '"soon"'),
    ("reconcile_interval", "true", "true"),
    ("log_file", "  ", '"  "'),
    ("log_max_bytes", "10MB", '"10MB"'),
    ("log_max_bytes", "0", "0"),
    ("log_retention", "0", "0"),
    ("log_retention", "-2", "-2"),
    ("history_keep_days", "-1", "-1"),
    ("history_keep_days", "a week", '"a week"'),
    ("history_keep_entries", "1.5", "1.5"),
    ("node", "my laptop", '"my laptop"'),
    ("node", "a/b", '"a/b"'),
    ("node", "-x", '"-x"'),
    ("role", "hq", '"hq"'),
    ("hq_url", "mysql://db/x", '"mysql://db/x"'),
    ("hq_url", "postgresql://u:secret@db/x", '"postgresql://u:secret@db/x"'),
    ("hq_url", "postgresql://db/x?password=secret", '"postgresql://db/x?password=secret"'),
    ("stale_after", "0", "0"),
    ("manifest_paths", "digest", '"digest"'),
    ("confidential_text", "encrypt", '"encrypt"'),
    ("confidential_text", "SEAL", '"SEAL"'),
    ("confidential_text", "true", "true"),
]


@pytest.mark.parametrize(
    ("source", "key", "raw", "literal"),
    [
        (source, *bad)
        for bad in BAD_VALUES
        for source in ("flag", "env", "file")
        if not (source == "env" and bad[1] == "")  # an empty variable counts as unset
    ],
)
def test_bad_value_is_a_config_error_saying_where_from(
    env: Env, source: str, key: str, raw: str, literal: str
) -> None:
    """A bad value is a ConfigError whose .key is the setting and whose message says
    where the value came from (the flag, the variable or the file)."""
    setting = config.BY_KEY[key]
    flags: dict[str, Any] = {}
    if source == "flag":
        flags[key] = raw
        where = setting.flag
    elif source == "env":
        env.setenv(setting.env, raw)
        where = setting.env
    else:
        where = str(env.write_default_config(f"{key} = {literal}\n"))
    with pytest.raises(ConfigError) as info:
        config.load(flags)
    assert info.value.key == key
    assert info.value.exit_code == 78
    assert f"(from {where})" in str(info.value)
    assert str(info.value).startswith(f"config: {key}: ")


def test_bad_value_error_quotes_the_value(env: Env) -> None:
    """The error repeats the bad value, so the user sees what was read."""
    with pytest.raises(ConfigError, match="mysql"):
        config.load({"backend": "mysql"})
    env.setenv("CCC_WATCH_BATCH_SIZE", "abc")
    with pytest.raises(ConfigError, match="abc"):
        config.load()


def test_bad_lower_layer_hidden_by_a_higher_one(env: Env) -> None:
    """A lower layer is not validated once a higher one wins: a good flag hides a bad
    environment value (the flag is what the user asked for)."""
    env.setenv("CCC_WATCH_BACKEND", "mysql")
    assert config.load({"backend": "sqlite"}).backend == "sqlite"
    with pytest.raises(ConfigError):
        config.load()


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), (" 42 ", 42), ("1000000", 1000000)])
def test_batch_size_strings_parse(env: Env, raw: str, expected: int) -> None:
    """A positive whole number in a flag or variable parses, surrounding blanks allowed."""
    assert config.load({"batch_size": raw}).batch_size == expected
    env.setenv("CCC_WATCH_BATCH_SIZE", raw)
    assert config.load().batch_size == expected


# --- paths --------------------------------------------------------------------


def test_relative_file_paths_resolve_against_the_config_folder(env: Env) -> None:
    """vault = "notes" in /x/cfg/config.toml means /x/cfg/notes, whatever the cwd."""
    cfg_dir = env.root / "cfgdir"
    cfg_dir.mkdir()
    path = cfg_dir / "c.toml"
    path.write_text('vault = "notes"\ndata_dir = "../data/here"\n')
    cfg = config.load(config_file=path)
    assert cfg.vault == cfg_dir / "notes"
    assert cfg.data_dir == cfg_dir / "../data/here"
    assert cfg.vault.is_absolute()

    path = env.write_default_config('vault = "v"\n')
    assert config.load().vault == env.default_config.parent / "v"


def test_relative_flag_and_env_paths_resolve_against_the_cwd(env: Env) -> None:
    """A relative --vault or CCC_WATCH_DATA_DIR is taken from the cwd, not from the
    config file's folder."""
    env.write_default_config("batch_size = 2\n")
    env.setenv("CCC_WATCH_DATA_DIR", "data/d")
    cfg = config.load({"vault": "my vault"})
    assert cfg.vault == env.cwd / "my vault"
    assert cfg.data_dir == env.cwd / "data/d"
    assert cfg.vault.is_absolute() and cfg.data_dir.is_absolute()

    env.setenv("CCC_WATCH_VAULT", "ev")
    assert config.load().vault == env.cwd / "ev"


def test_relative_config_file_still_gives_absolute_paths(env: Env) -> None:
    """Relative paths in a config file named by a relative --config are resolved to
    absolute paths at load time, like flag and env paths, so a later chdir (e.g. a
    daemon moving to /) cannot change what they mean."""
    (env.cwd / "cfg").mkdir()
    (env.cwd / "cfg" / "c.toml").write_text('vault = "v"\n')
    cfg = config.load(config_file=Path("cfg/c.toml"))
    assert cfg.vault == env.cwd / "cfg" / "v"
    assert cfg.vault.is_absolute()


def test_tilde_is_expanded_in_every_layer(env: Env) -> None:
    """'~' means HOME in a flag, a variable and the file."""
    env.setenv("CCC_WATCH_DATA_DIR", "~/data")
    cfg = config.load({"vault": "~/vault"})
    assert cfg.vault == env.home / "vault"
    assert cfg.data_dir == env.home / "data"

    env.monkeypatch.delenv("CCC_WATCH_DATA_DIR")
    env.write_default_config('vault = "~/fv"\ndata_dir = "~"\n')
    cfg = config.load()
    assert cfg.vault == env.home / "fv"
    assert cfg.data_dir == env.home


# --- the vault and the data dir ----------------------------------------------


def make_vault(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "note.md").write_text("# hi\n")
    return path


def test_default_data_dir_is_under_xdg_data_home(env: Env) -> None:
    """With no data_dir, the databases go to XDG_DATA_HOME/ccc-watch/vaults/<name>-<hash>;
    the folder is not created by resolving it."""
    vault = make_vault(env.root / "My Vault")
    cfg = config.load({"vault": str(vault)})
    data_dir = cfg.resolved_data_dir()
    assert data_dir.parent == env.data_home / "ccc-watch" / "vaults"
    assert data_dir.name.startswith("My_Vault-")
    assert data_dir == config.default_data_dir(vault.resolve())
    assert not data_dir.exists()


def test_default_data_dir_differs_for_same_named_vaults(env: Env) -> None:
    """Two vaults called 'notes' in different places get different data dirs."""
    a = make_vault(env.root / "a" / "notes")
    b = make_vault(env.root / "b" / "notes")
    da = config.load({"vault": str(a)}).resolved_data_dir()
    db = config.load({"vault": str(b)}).resolved_data_dir()
    assert da != db
    assert da.parent == db.parent
    assert da.name.startswith("notes-") and db.name.startswith("notes-")


def test_default_data_dir_is_stable_for_the_same_vault(env: Env) -> None:
    """The same vault always maps to the same data dir, however it is spelled: absolute,
    relative to the cwd, with a trailing '/.', or through a symlink."""
    vault = make_vault(env.cwd / "notes")
    link = env.root / "link-to-notes"
    link.symlink_to(vault, target_is_directory=True)
    spellings = [str(vault), "notes", "./notes/.", str(link), str(vault) + "/"]
    dirs = {config.load({"vault": s}).resolved_data_dir() for s in spellings}
    env.setenv("CCC_WATCH_VAULT", "notes")
    dirs.add(config.load().resolved_data_dir())
    assert len(dirs) == 1


def test_default_data_dir_name_is_safe(env: Env) -> None:
    """Odd vault names become a plain folder name; a name of dots only becomes 'vault'."""
    weird = make_vault(env.root / "we ird#[[x]]")
    assert config.default_data_dir(weird).name.startswith("we_ird_x-")
    assert config.default_data_dir(Path("/x/...")).name.startswith("vault-")


def test_explicit_data_dir_is_used(env: Env) -> None:
    """A data_dir outside the vault is used as given (resolved)."""
    vault = make_vault(env.root / "v")
    cfg = config.load({"vault": str(vault), "data_dir": str(env.root / "db")})
    assert cfg.resolved_data_dir() == (env.root / "db").resolve()


def test_data_dir_beside_or_above_the_vault_is_allowed(env: Env) -> None:
    """'Outside' means not inside: the vault's parent folder is a valid data_dir."""
    vault = make_vault(env.root / "v")
    cfg = config.load({"vault": str(vault), "data_dir": str(env.root)})
    assert cfg.resolved_data_dir() == env.root.resolve()


@pytest.mark.parametrize("inside", [".", ".ccc-watch", "sub/deeper/x", "sub/../x"])
@pytest.mark.parametrize("source", ["flag", "env", "file"])
@pytest.mark.parametrize("key", ["data_dir", "log_file"])
def test_a_path_inside_the_vault_is_refused(env: Env, key: str, source: str, inside: str) -> None:
    """A data_dir or log_file equal to the vault or anywhere inside it is a ConfigError
    with its key, whichever layer set it: a sync tool would copy a live database or the
    log, and the daemon would index its own log lines."""
    vault = make_vault(env.root / "v")
    path = str(vault / inside)
    flags: dict[str, Any] = {"vault": str(vault)}
    if source == "flag":
        flags[key] = path
    elif source == "env":
        env.setenv(config.BY_KEY[key].env, path)
    else:
        env.write_default_config(f"{key} = {toml_str(path)}\n")
    cfg = config.load(flags)
    resolve = {"data_dir": cfg.resolved_data_dir, "log_file": cfg.resolved_log_file}[key]
    with pytest.raises(ConfigError) as info:
        resolve()
    assert info.value.key == key
    assert "inside the vault" in str(info.value)
    assert info.value.exit_code == 78


def test_data_dir_inside_the_vault_through_a_symlink_is_refused(env: Env) -> None:
    """A data_dir that only reaches into the vault through a symlink is refused too."""
    vault = make_vault(env.root / "v")
    (vault / "inner").mkdir()
    link = env.root / "sneaky"
    link.symlink_to(vault / "inner", target_is_directory=True)
    cfg = config.load({"vault": str(vault), "data_dir": str(link / "db")})
    with pytest.raises(ConfigError) as info:
        cfg.resolved_data_dir()
    assert info.value.key == "data_dir"


def test_vault_reached_through_a_symlink_still_guards_its_inside(env: Env) -> None:
    """With --vault given as a symlink, a data_dir inside the real folder is refused."""
    vault = make_vault(env.root / "real")
    link = env.root / "alias"
    link.symlink_to(vault, target_is_directory=True)
    cfg = config.load({"vault": str(link), "data_dir": str(vault / "db")})
    with pytest.raises(ConfigError) as info:
        cfg.resolved_data_dir()
    assert info.value.key == "data_dir"


def test_log_file_inside_the_vault_through_symlinks_is_refused(env: Env) -> None:
    """A log_file that reaches into the vault only through a symlink is refused: a linked
    folder, a link at the file's own name (also one whose target does not exist yet),
    and a vault given as a link."""
    vault = make_vault(env.root / "v")
    (vault / "inner").mkdir()
    (env.root / "folder-link").symlink_to(vault / "inner", target_is_directory=True)
    (env.root / "file-link.log").symlink_to(vault / "inner" / "not-yet.log")
    (env.root / "vault-link").symlink_to(vault, target_is_directory=True)
    for vault_arg, log_file in (
        (vault, env.root / "folder-link" / "x.log"),
        (vault, env.root / "file-link.log"),
        (env.root / "vault-link", vault / "x.log"),
        (vault, env.root / "vault-link" / "x.log"),
    ):
        cfg = config.load({"vault": str(vault_arg), "log_file": str(log_file)})
        with pytest.raises(ConfigError) as info:
            cfg.resolved_log_file()
        assert info.value.key == "log_file", log_file


def test_default_log_dir_inside_the_vault_is_refused(env: Env) -> None:
    """The default log file counts too: a vault that holds the user log dir (a vault at
    the home folder, say) is refused rather than logged into."""
    vault = make_vault(env.root / "v")
    env.setenv("XDG_STATE_HOME", str(vault / ".state"))
    cfg = config.load({"vault": str(vault), "data_dir": str(env.root / "data")})
    with pytest.raises(ConfigError) as info:
        cfg.resolved_log_file()
    assert info.value.key == "log_file"


def test_log_file_beside_the_vault_is_used(env: Env) -> None:
    """A log_file outside the vault is used as given; without a vault (`log --log-file`
    alone) there is nothing to keep it out of."""
    vault = make_vault(env.root / "v")
    beside = env.root / "v.log"
    assert config.load({"vault": str(vault), "log_file": str(beside)}).resolved_log_file() == beside
    assert config.load({"log_file": str(beside)}).resolved_log_file() == beside


def test_require_vault_unset(env: Env) -> None:
    """No vault anywhere: require_vault (and resolved_data_dir) raise ConfigError with
    key 'vault' telling how to set it."""
    cfg = config.load()
    for call in (cfg.require_vault, cfg.resolved_data_dir):
        with pytest.raises(ConfigError) as info:
            call()
        assert info.value.key == "vault"
        assert "--vault" in str(info.value)
        assert "CCC_WATCH_VAULT" in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "file", "broken-symlink"])
def test_require_vault_not_a_folder(env: Env, kind: str) -> None:
    """A vault that does not exist, is a file, or is a dangling symlink is refused:
    ConfigError with key 'vault' naming the path."""
    target = env.root / "vault-thing"
    if kind == "file":
        target.write_text("not a folder")
    elif kind == "broken-symlink":
        target.symlink_to(env.root / "nowhere")
    cfg = config.load({"vault": str(target)})
    with pytest.raises(ConfigError) as info:
        cfg.require_vault()
    assert info.value.key == "vault"
    assert str(target) in str(info.value)


def test_require_vault_returns_the_folder(env: Env) -> None:
    """A vault that is a folder is returned as a Path."""
    vault = make_vault(env.root / "v")
    cfg = config.load({"vault": str(vault)})
    assert cfg.require_vault() == vault


def test_unknown_attribute_is_an_attribute_error(env: Env) -> None:
    """Config exposes settings as attributes and nothing else."""
    cfg = config.load()
    with pytest.raises(AttributeError):
        _ = cfg.no_such_setting


def test_config_can_be_copied_and_pickled(env: Env) -> None:
    """A Config survives copy.copy, copy.deepcopy and pickle (e.g. to hand it to a
    worker process)."""
    cfg = config.load({"backend": "sqlite"})
    assert copy.copy(cfg).backend == "sqlite"
    assert copy.deepcopy(cfg).backend == "sqlite"
    assert pickle.loads(pickle.dumps(cfg)).backend == "sqlite"
