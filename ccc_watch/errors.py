"""The exceptions ccc-watch raises; the CLI turns each into one line and an exit code."""

from __future__ import annotations

# sysexits.h EX_CONFIG: systemd units use it in RestartPreventExitStatus.
EXIT_CONFIG = 78
EXIT_FAILURE = 1


class CccWatchError(Exception):
    """Base class of every error ccc-watch reports to a user."""

    exit_code = EXIT_FAILURE


class ConfigError(CccWatchError):
    """A setting has a bad value, or the config file cannot be read."""

    exit_code = EXIT_CONFIG

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config: {key}: {reason}")
        self.key = key
        self.reason = reason


class StoreError(CccWatchError):
    """The store cannot be opened or used."""


class StoreLockedError(StoreError):
    """Another process holds the store open for writing."""

    def __init__(self, path: object) -> None:
        super().__init__(
            f"store is open for writing in another process (is `ccc-watch run` running?): {path}"
        )


class StoreMissingError(StoreError):
    """There is no store yet where one was expected."""


class InvalidPathError(StoreError, ValueError):
    """A record key is not a valid vault-relative path."""
