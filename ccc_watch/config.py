"""Settings, resolved in one order everywhere: flag, then CCC_WATCH_* variable,
then the TOML config file, then the default.

Each setting is declared once, as a typed field of Settings; SETTINGS, the CLI's flags
and `ccc-watch config`'s report derive from it, so a new setting is one field.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from ccc_watch.errors import ConfigError

APP = "ccc-watch"
CONFIG_ENV = "CCC_WATCH_CONFIG"
# Lowest to highest; a note's level comes from its frontmatter `classification`, else
# from the default_classification setting.
CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET")


def parse_level(value: object) -> str | None:
    """A classification level written any way (' secret ', 'Secret'), or None."""
    if isinstance(value, str) and value.strip().upper() in CLASSIFICATIONS:
        return value.strip().upper()
    return None


def _path(value: object, base: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty path string")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _choice(*choices: str) -> Callable[[object, Path], str]:
    def parse(value: object, base: Path) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return str(value)

    return parse


def _positive_int(value: object, base: Path) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"must be a positive whole number, not {value!r}")
    return value


def _count_or_zero(value: object, base: Path) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number, 0 or more (0: no limit), not {value!r}")
    return value


def _seconds(value: object, base: Path) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"must be a positive number of seconds, not {value!r}")
    return float(value)


def _seconds_or_off(value: object, base: Path) -> float:
    if isinstance(value, str) and value.strip() in ("0", "0.0", "off"):
        return 0.0
    if not isinstance(value, bool) and isinstance(value, int | float) and value == 0:
        return 0.0
    return _seconds(value, base)


def _address(value: object, base: Path) -> str:
    text = str(value).strip()
    _, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be PORT or HOST:PORT, not {value!r}")
    return text


def _patterns(value: object, base: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [p for p in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError("must be a list of gitignore-style patterns (comma-separated in a flag)")
    return tuple(p.strip() for p in value if p.strip())


def _folder_name(value: object, base: Path) -> str:
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise ValueError(f"must be a folder name inside the vault, not {value!r}")
    return value


_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _node(value: object, base: Path) -> str:
    if not isinstance(value, str) or not _NODE.match(value):
        raise ValueError(
            f"must be a node name of letters, digits, '.', '_' or '-' (at most 64, "
            f"starting with a letter or digit), not {value!r}"
        )
    return value


def _postgres_url(value: object, base: Path) -> str:
    from urllib.parse import urlsplit

    text = str(value).strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ValueError(f"must be a postgresql:// URL, not {value!r}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"must be a postgresql:// URL, not {value!r}")
    if parts.password is not None or "password=" in parts.query:
        raise ValueError(
            "holds a password: keep it out of the configuration (PGPASSWORD, ~/.pgpass, "
            "or hq_password_file)"
        )
    return text


def _flag(value: object, base: Path) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, not {value!r}")


def _classification(value: object, base: Path) -> str:
    level = parse_level(value)
    if level is None:
        raise ValueError(f"must be one of {', '.join(CLASSIFICATIONS)}, not {value!r}")
    return level


@dataclass(frozen=True)
class Setting:
    """One setting: its TOML key, environment variable, flag, parser and default."""

    key: str
    help: str
    parse: Callable[[object, Path], Any]
    default: Any = None

    @property
    def env(self) -> str:
        """Its CCC_WATCH_* environment variable."""
        return "CCC_WATCH_" + self.key.upper()

    @property
    def flag(self) -> str:
        """Its command-line flag."""
        return "--" + self.key.replace("_", "-")


def _about(help: str, parse: Callable[[object, Path], Any]) -> dict[str, Any]:
    """A Settings field's metadata: its help text and its parser."""
    return {"help": help, "parse": parse}


@dataclass(frozen=True)
class Settings:
    """Every setting's value, typed; the one table of settings (SETTINGS derives from
    its fields, the CLI its flags and `ccc-watch config` its report)."""

    vault: Path | None = field(
        default=None, metadata=_about("the Obsidian vault folder to index", _path)
    )
    data_dir: Path | None = field(
        default=None,
        metadata=_about(
            "where the databases live (default: a per-vault folder under the user data dir)", _path
        ),
    )
    backend: str = field(
        default="redb",
        metadata=_about("the store's engine: redb (default) or sqlite", _choice("redb", "sqlite")),
    )
    batch_size: int = field(
        default=1000, metadata=_about("records written per store transaction", _positive_int)
    )
    config_dir: str = field(
        default=".obsidian",
        metadata=_about(
            "Obsidian's config folder in the vault (ignored; app.json read from it)", _folder_name
        ),
    )
    ignore: tuple[str, ...] = field(
        default=(),
        metadata=_about("extra gitignore-style patterns to leave out of the index", _patterns),
    )
    max_note_bytes: int = field(
        default=8 * 1024 * 1024,
        metadata=_about("notes larger than this are checksummed but not parsed", _positive_int),
    )
    default_classification: str = field(
        default="INTERNAL",
        metadata=_about("classification of notes whose frontmatter gives none", _classification),
    )
    confidential_text: str = field(
        default="drop",
        metadata=_about(
            "what a CONFIDENTIAL note's record does with its text: drop it (default) or seal "
            "it, encrypted under the vault's key (see key_file), for `get --reveal`",
            _choice("drop", "seal"),
        ),
    )
    settle: float = field(
        default=0.2,
        metadata=_about(
            "seconds a changed file must stay quiet before the daemon indexes it", _seconds
        ),
    )
    flush_interval: float = field(
        default=1.0,
        metadata=_about("seconds between mirror flushes while the store changes", _seconds),
    )
    reconcile_interval: float = field(
        default=1800.0,
        metadata=_about(
            "seconds between the daemon's full reconciles (jittered by a quarter)", _seconds
        ),
    )
    fallback_interval: float = field(
        default=60.0,
        metadata=_about(
            "seconds between full reconciles when file events cannot be trusted "
            "(out of inotify watches or instances)",
            _seconds,
        ),
    )
    metrics: str | None = field(
        default=None,
        metadata=_about(
            "serve Prometheus metrics from `run` at PORT or HOST:PORT (loopback unless a host "
            "is given; off by default)",
            _address,
        ),
    )
    log_file: Path | None = field(
        default=None,
        metadata=_about(
            "the daemon's log file (default: <user log dir>/<data dir name>.log)", _path
        ),
    )
    log_max_bytes: int = field(
        default=10 * 1024 * 1024,
        metadata=_about(
            "size in bytes at which the daemon's log file is rotated and compressed", _positive_int
        ),
    )
    log_retention: int = field(
        default=5, metadata=_about("rotated, compressed log files kept", _positive_int)
    )
    key_file: Path | None = field(
        default=None,
        metadata=_about(
            "a file holding the vault's key, of encrypted backups and sealed text (64 hex "
            "digits; 0600, outside the vault and the data dir); the OS keyring and a systemd "
            "credential come first",
            _path,
        ),
    )
    backup_dir: Path | None = field(
        default=None,
        metadata=_about(
            "where `backup` writes its archives (default: <user data dir>/ccc-watch/backups/"
            "<data dir name>)",
            _path,
        ),
    )
    backup_keep: int | None = field(
        default=None,
        metadata=_about(
            "archives of this vault `backup` keeps; older ones are removed (default: all)",
            _positive_int,
        ),
    )
    backup_encrypt: bool = field(
        default=False,
        metadata=_about("encrypt backup archives (AES-256-GCM, key: see key_file)", _flag),
    )
    backup_interval: float = field(
        default=0.0,
        metadata=_about(
            "seconds between the daemon's scheduled backups into backup_dir (0: off)",
            _seconds_or_off,
        ),
    )
    history_keep_days: int = field(
        default=0,
        metadata=_about(
            "days of change history kept; older entries are pruned (0: keep all)", _count_or_zero
        ),
    )
    history_keep_entries: int = field(
        default=0,
        metadata=_about(
            "change history entries kept; older ones are pruned (0: no limit)", _count_or_zero
        ),
    )
    node: str | None = field(
        default=None,
        metadata=_about("this installation's node name (default: the host name)", _node),
    )
    role: str = field(
        default="outpost",
        metadata=_about(
            "this node's role: outpost (default) or headquarters",
            _choice("outpost", "headquarters"),
        ),
    )
    manifest_dir: Path | None = field(
        default=None,
        metadata=_about(
            "a folder your sync engine shares between devices, for <node>.parquet manifests",
            _path,
        ),
    )
    hq_url: str | None = field(
        default=None,
        metadata=_about(
            "headquarters' PostgreSQL database, as a postgresql:// URL without a password",
            _postgres_url,
        ),
    )
    hq_password_file: Path | None = field(
        default=None,
        metadata=_about(
            "a file (0600) holding the PostgreSQL password (else PGPASSWORD or ~/.pgpass)",
            _path,
        ),
    )
    publish_interval: float = field(
        default=300.0,
        metadata=_about(
            "seconds between the daemon's manifest publications while the store changes",
            _seconds_or_off,
        ),
    )
    stale_after: float = field(
        default=86400.0,
        metadata=_about("seconds after which a node's manifest counts as stale", _seconds),
    )
    manifest_paths: str = field(
        default="private",
        metadata=_about(
            "private (default): SECRET paths leave the device only as keyed digests; "
            "plain: as they are",
            _choice("private", "plain"),
        ),
    )


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.metadata["help"], f.metadata["parse"], f.default) for f in fields(Settings)
)
BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Config(Settings):
    """Resolved settings, plus where each one came from (flag, env, file or default)."""

    sources: Mapping[str, str] = field(default_factory=dict)
    config_file: Path | None = None  # the file read, None when there was none
    # Where the config file's name came from: "flag" (--config), "env"
    # (CCC_WATCH_CONFIG) or "default" (config.toml in the user config dir).
    config_from: str = "default"

    @property
    def values(self) -> dict[str, Any]:
        """Every setting's value by key, in the order of SETTINGS."""
        return {s.key: getattr(self, s.key) for s in SETTINGS}

    def reloaded(self, new: Config) -> Config:
        """The configuration a running daemon takes on SIGHUP: the new file's values,
        except that command-line flags still outrank it, as at start, and the vault and
        the data dir cannot change under a running daemon."""
        kept = {k for k, source in self.sources.items() if source == "flag"}
        kept |= {"vault", "data_dir"}
        values = {k: getattr(self if k in kept else new, k) for k in BY_KEY}
        sources = {k: (self if k in kept else new).sources[k] for k in BY_KEY}
        return Config(
            **values, sources=sources, config_file=new.config_file, config_from=new.config_from
        )

    def require_vault(self) -> Path:
        """The vault folder, or ConfigError when it is unset or not a folder."""
        vault = self.vault
        if vault is None:
            raise ConfigError(
                "vault",
                "not set: pass --vault, set CCC_WATCH_VAULT, or add "
                'vault = "..." to the config file',
            )
        if not vault.is_dir():
            raise ConfigError("vault", f"not a folder: {vault}")
        return Path(vault)

    def resolved_data_dir(self) -> Path:
        """data_dir, or the default per-vault folder; never inside the vault."""
        vault = self.require_vault().resolve()
        data_dir = self.data_dir
        if data_dir is None:
            data_dir = default_data_dir(vault)
        data_dir = Path(data_dir).resolve()
        self._outside_vault(
            "data_dir", data_dir, "the databases", "so that sync tools never copy a live database"
        )
        return data_dir

    def resolved_log_file(self) -> Path:
        """log_file, or the default `<user log dir>/<data dir name>.log` (letters, digits,
        `_` and `-` kept, anything else `_`, so no two vaults' rotated files share a
        glob); never inside the vault, not even through a symlink."""
        if self.log_file is None:
            name = re.sub(r"[^A-Za-z0-9_-]+", "_", self.resolved_data_dir().name).strip("_")
            path = platformdirs.user_log_path(APP) / f"{name or 'vault'}.log"
        else:
            path = Path(self.log_file)
            if self.vault is None:  # `ccc-watch log --log-file F`: no vault to keep it out of
                return path
        self._outside_vault(
            "log_file", path, "the log", "so that sync tools never copy it, nor the daemon index it"
        )
        return path

    def resolved_backup_dir(self) -> Path:
        """backup_dir, or the default `<user data dir>/ccc-watch/backups/<data dir name>`:
        beside the data dirs, not in one, so archives outlive a deleted data dir; never
        inside the vault nor the data dir."""
        data_dir = self.resolved_data_dir()
        path = self.backup_dir
        if path is None:
            path = platformdirs.user_data_path(APP) / "backups" / data_dir.name
        path = Path(path).resolve()
        self._outside_vault(
            "backup_dir", path, "backups", "so that sync tools never copy them half written"
        )
        if within(path, data_dir):
            raise ConfigError(
                "backup_dir", f"{path} is inside the data dir {data_dir}; backups must outlive it"
            )
        return path

    def _outside_vault(self, key: str, path: Path, what: str, why: str) -> None:
        """ConfigError naming key when path, resolved, is the vault or inside it."""
        vault = self.require_vault().resolve()
        if within(path, vault):
            raise ConfigError(
                key, f"{path} is inside the vault {vault}; {what} must live outside it {why}"
            )


def within(path: Path, folder: Path) -> bool:
    """Whether path is folder or lies below it, once both have their symlinks resolved
    (a dangling one too, so a link planted for a file yet to be made counts)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def default_config_file() -> Path:
    """The TOML file read when neither --config nor CCC_WATCH_CONFIG names one."""
    return platformdirs.user_config_path(APP) / "config.toml"


def default_data_dir(vault: Path) -> Path:
    """A folder per vault under the user data dir: '<name>-<hash of the path>'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", vault.name).strip("._") or "vault"
    digest = hashlib.sha256(str(vault).encode()).hexdigest()[:12]
    return platformdirs.user_data_path(APP) / "vaults" / f"{name}-{digest}"


def _read_file(path: Path, named_by: str | None) -> dict[str, Any]:
    """The file's settings; an absent file is no settings, unless named_by (the flag or
    variable that named it) says it was asked for."""
    if not path.exists():
        if named_by:
            raise ConfigError(
                "config",
                f"no such file: {path} (named by {named_by}; create it, or leave "
                f"{named_by} out to use the default file)",
            )
        return {}
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError("config", f"{path}: not UTF-8 text: {e.reason}") from None
    except OSError as e:
        raise ConfigError("config", f"{path}: cannot read: {e.strerror}") from None
    unknown = sorted(set(data) - BY_KEY.keys())
    if unknown:
        raise ConfigError(unknown[0], f"unknown setting in {path} (known: {', '.join(BY_KEY)})")
    return data


def load(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    must_exist: bool = True,
) -> Config:
    """Resolve every setting: flag > CCC_WATCH_* env > config file > default.

    flags holds command-line values by setting key (None or absent: not given);
    config_file is the --config flag. A bad value raises ConfigError naming its key.
    An explicit config file that does not exist is an error unless not must_exist
    (`service install` creates it).
    """
    flags = flags or {}
    env = os.environ if environ is None else environ
    named_by = (
        "--config" if config_file is not None else CONFIG_ENV if env.get(CONFIG_ENV) else None
    )
    config_from = "flag" if config_file is not None else "env" if env.get(CONFIG_ENV) else "default"
    if config_file is None:
        config_file = Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else default_config_file()
    # Absolute, so relative paths inside it stay right if the process changes folder.
    config_file = config_file.expanduser().absolute()
    file_values = _read_file(config_file, named_by if must_exist else None)

    cwd = Path.cwd()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        candidates = (
            ("flag", flags.get(s.key), cwd),
            ("env", env.get(s.env) or None, cwd),
            ("file", file_values.get(s.key), config_file.parent),
        )
        for source, raw, base in candidates:
            if raw is None:
                continue
            try:
                values[s.key] = s.parse(raw, base)
            except ValueError as e:
                where = {"flag": s.flag, "env": s.env, "file": str(config_file)}[source]
                raise ConfigError(s.key, f"{e} (from {where})") from None
            sources[s.key] = source
            break
        else:
            values[s.key] = s.default
            sources[s.key] = "default"
    return Config(
        **values,
        sources=sources,
        config_file=config_file if config_file.exists() else None,
        config_from=config_from,
    )
