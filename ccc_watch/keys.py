"""The key of a vault's encrypted backups: 32 bytes, never kept in the data dir.

It comes from the first of three sources that has one (README "Keys"):

1. the OS keyring (the `keyring` package: macOS Keychain, Secret Service, Windows
   Credential Locker), service "ccc-watch", user name the vault id; skipped when the
   package is not installed or has no usable backend (a server, CI);
2. a systemd credential: `$CREDENTIALS_DIRECTORY/ccc-watch.key`
   (`LoadCredential=ccc-watch.key:/path` in the unit);
3. a key file the user names (`key_file`, `--key-file`, `CCC_WATCH_KEY_FILE`): a
   regular file, not a symlink, owned by the user, readable by nobody else (0600 or
   0400), outside the vault and the data dir.

A key is written as 64 hexadecimal digits (or the base64 of 32 bytes) and a newline.
Nothing here logs or prints a key, nor the text of a file that is not one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from loguru import logger

from ccc_watch.config import Config, within
from ccc_watch.errors import CccWatchError, ConfigError

KEY_BYTES = 32
SERVICE = "ccc-watch"  # the keyring's service name
CREDENTIAL = "ccc-watch.key"  # the systemd credential's name
_MAX_KEY_FILE = 4096  # a key is 65 bytes: anything longer is no key file


class NoKeyError(ConfigError):
    """No source holds a key for the vault."""

    def __init__(self, vault_id: str, new_vault: bool = False) -> None:
        keyring = (
            "the OS keyring (once `ccc-watch init` has given the vault its id, which "
            "`ccc-watch info` shows)"
            if new_vault
            else f"the OS keyring (service {SERVICE}, user {vault_id})"
        )
        name = "this new index" if new_vault else vault_id
        super().__init__(
            "key",
            f"no key for vault {name}: put one in {keyring}, give the service a systemd "
            f"credential named {CREDENTIAL}, or name a key file with --key-file, "
            "CCC_WATCH_KEY_FILE or key_file (`ccc-watch key new FILE` makes one)",
        )


def parse_key(text: str, where: str, setting: str = "key_file") -> bytes:
    """The 32 bytes a key's text holds: 64 hex digits or base64, surrounding white space
    ignored. ConfigError naming `where` (never quoting the text) otherwise."""
    text = text.strip()
    if len(text) == 2 * KEY_BYTES:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(text)
    with contextlib.suppress(binascii.Error, ValueError):
        raw = base64.b64decode(text, validate=True)
        if len(raw) == KEY_BYTES:
            return raw
    raise ConfigError(
        setting,
        f"{where}: holds no key: expected 64 hexadecimal digits (or the base64 of 32 bytes) "
        "and a newline",
    )


def from_keyring(vault_id: str) -> bytes | None:
    """The key the OS keyring holds for the vault, or None: also when the keyring
    package is not installed, has no usable backend, or fails (the next source is then
    asked; the failure is logged at DEBUG, without the key)."""
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        text = keyring.get_password(SERVICE, vault_id)
    except KeyringError as e:
        logger.debug("keyring: no usable backend ({}): trying the next key source", type(e))
        return None
    except Exception as e:  # a backend's own failure (D-Bus gone, a locked store)
        logger.debug("keyring: {} from the backend: trying the next key source", type(e))
        return None
    if text is None:
        return None
    return parse_key(text, f"the OS keyring's entry {SERVICE}/{vault_id}", "key")


def from_credential(environ: dict[str, str] | None = None) -> bytes | None:
    """The key systemd passed as the credential `ccc-watch.key`, or None."""
    env = os.environ if environ is None else environ
    folder = env.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    path = Path(folder) / CREDENTIAL
    try:
        text = _read_small(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError("key", f"cannot read the systemd credential {path}: {e.strerror}") from e
    return parse_key(text, str(path), "key")


def _read_small(path: Path) -> str:
    """At most _MAX_KEY_FILE bytes of path, as text; never following a symlink at the
    end, never blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError("key_file", f"{path}: not a regular file")
        return os.read(fd, _MAX_KEY_FILE + 1).decode("ascii", errors="replace")
    finally:
        os.close(fd)


def from_key_file(path: Path, forbidden: Sequence[tuple[str, Path]] = ()) -> bytes:
    """The key in a file the user named, after checking it is theirs alone: a regular
    file (not a symlink), owned by this user, readable by no group or other, and not
    inside any folder of `forbidden` ((name, folder) pairs: the vault, the data dir).
    ConfigError naming the path and the reason otherwise."""
    for name, folder in forbidden:
        if within(path, folder):
            raise ConfigError(
                "key_file",
                f"{path} is inside {name} {folder}; keep the key outside it, where neither a "
                "sync tool nor a backup of the index carries it",
            )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError("key_file", f"{path}: no such file") from None
    except OSError as e:
        if os.path.islink(path):
            raise ConfigError(
                "key_file", f"{path} is a symlink; name the key file itself"
            ) from None
        raise ConfigError("key_file", f"{path}: cannot read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError("key_file", f"{path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise ConfigError(
                "key_file", f"{path} is owned by uid {st.st_uid}, not by this user ({os.geteuid()})"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise ConfigError(
                "key_file",
                f"{path} can be read or written by others (mode {mode:04o}); "
                f"`chmod 600 {path}` first",
            )
        text = os.read(fd, _MAX_KEY_FILE + 1).decode("ascii", errors="replace")
    finally:
        os.close(fd)
    return parse_key(text, str(path))


def forbidden_folders(cfg: Config) -> list[tuple[str, Path]]:
    """The folders a key file must stay out of: the vault and the data dir, when the
    settings name a vault (`backup --verify` of an archive needs none)."""
    if cfg.vault is None:
        return []
    return [("the vault", cfg.require_vault()), ("the data dir", cfg.resolved_data_dir())]


def key_for(cfg: Config, vault_id: str) -> bytes:
    """The vault's key from the first source that has one: the OS keyring, a systemd
    credential, the key file of the settings. NoKeyError when none does."""
    key = from_keyring(vault_id)
    if key is not None:
        logger.debug("backup key: from the OS keyring")
        return key
    key = from_credential()
    if key is not None:
        logger.debug("backup key: from the systemd credential")
        return key
    if cfg.key_file is not None:
        logger.debug("backup key: from the key file {}", cfg.key_file)
        return from_key_file(Path(cfg.key_file), forbidden_folders(cfg))
    raise NoKeyError(vault_id)


def new_key_file(path: Path, forbidden: Sequence[tuple[str, Path]] = ()) -> None:
    """Write a fresh random key to a new file, 0600 from its creation; never over an
    existing file (nor through a symlink)."""
    for name, folder in forbidden:
        if within(path, folder):
            raise ConfigError(
                "key_file", f"{path} is inside {name} {folder}; make the key file outside it"
            )
    text = secrets.token_bytes(KEY_BYTES).hex() + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise CccWatchError(f"{path} exists: refusing to overwrite a key file") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
