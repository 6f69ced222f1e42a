"""The exceptions ccc-watch raises; the CLI turns each into one line and an exit code."""

from __future__ import annotations

import errno

EXIT_FAILURE = 1
EXIT_USAGE = 2  # what argparse uses for a bad command line
EXIT_RESYNC = 3  # the change feed's cursor is gone: resync from a full listing
# sysexits.h codes, so that scripts and service managers can tell the causes apart.
EXIT_DATAERR = 65  # the store file is damaged: `ccc-watch rebuild`
EXIT_UNAVAILABLE = 69  # headquarters' database, or the user's service manager, out of reach
EXIT_SOFTWARE = 70  # an internal error: a bug (see StoreInternalError)
EXIT_IOERR = 74  # disk full, or another I/O error on the store file
EXIT_TEMPFAIL = 75  # the store is open for writing in another process: try again later
EXIT_NOPERM = 77  # permission denied on the store file or its folder
EXIT_CONFIG = 78  # a bad setting: systemd units use it in RestartPreventExitStatus
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

# What each exit code means, for `ccc-watch --help` (and its short form in every
# command's --help): one table, so the help and the codes cannot drift apart.
EXIT_CODES: dict[int, str] = {
    0: "success (status: Healthy; verify, drift, audit: all agree)",
    1: "failure, or differences found (status: Degraded)",
    EXIT_USAGE: "usage error: a bad command line (status: Unhealthy or not running)",
    EXIT_RESYNC: "events: the cursor's history is gone; resync from `ccc-watch dump`",
    EXIT_DATAERR: "the store file is damaged: `ccc-watch rebuild`",
    EXIT_UNAVAILABLE: "headquarters' database, or the user's service manager, is out of reach",
    EXIT_SOFTWARE: "internal error: a bug in ccc-watch",
    EXIT_IOERR: "disk full, or another I/O error",
    EXIT_TEMPFAIL: "the store is open for writing in another process: try again later",
    EXIT_NOPERM: "permission denied",
    EXIT_CONFIG: "a bad setting (the message names it and where it came from)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class CccWatchError(Exception):
    """Base class of every error ccc-watch reports to a user."""

    exit_code = EXIT_FAILURE


class UsageError(CccWatchError):
    """A command-line argument names something the command must not use."""

    exit_code = EXIT_USAGE


class ConfigError(CccWatchError):
    """A setting has a bad value, or the config file cannot be read."""

    exit_code = EXIT_CONFIG

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config: {key}: {reason}")
        self.key = key
        self.reason = reason


class HeadquartersError(CccWatchError):
    """Headquarters' PostgreSQL database cannot be used: down, unreachable, a refused
    login, missing rights. The message names the server (never a password) and the cause."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, *, exit_code: int = EXIT_UNAVAILABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StoreError(CccWatchError):
    """The store cannot be opened or used."""


class StoreLockedError(StoreError):
    """Another process holds the store open for writing."""

    exit_code = EXIT_TEMPFAIL

    def __init__(self, path: object) -> None:
        super().__init__(
            f"store is open for writing in another process (is `ccc-watch run` running?): {path}"
        )


class StoreNeedsRepairError(StoreError):
    """The store was not closed cleanly; only a writable open repairs it."""

    def __init__(self, path: object) -> None:
        super().__init__(
            f"store was not closed cleanly and is repaired the next time the daemon or a "
            f"writing command opens it: {path}"
        )


class StoreCorruptError(StoreError):
    """The store file is damaged: its engine found bad pages, a bad header or a short file."""

    exit_code = EXIT_DATAERR

    def __init__(self, path: object, detail: str) -> None:
        super().__init__(
            f"store file is damaged: {path}: {detail}; "
            "run `ccc-watch rebuild` to recreate it from the vault"
        )
        self.detail = detail


class StoreFullError(StoreError):
    """The disk (or quota) of the store file is full."""

    exit_code = EXIT_IOERR

    def __init__(self, path: object, detail: str, *, what: str = "store file") -> None:
        super().__init__(
            f"no space left for the {what}: {path}: {detail}; free space on that disk "
            "(or choose another --data-dir) and try again: the last commit is intact"
        )


class StorePermissionError(StoreError):
    """The store file or its folder cannot be opened, read or written by this user."""

    exit_code = EXIT_NOPERM

    def __init__(self, path: object, detail: str, *, what: str = "store file") -> None:
        super().__init__(
            f"permission denied on the {what}: {path}: {detail}; the data dir and its "
            "files must be writable by the user running ccc-watch"
        )


class StoreIOError(StoreError):
    """Another I/O error on the store file (a failing disk, a vanished mount)."""

    exit_code = EXIT_IOERR

    def __init__(self, path: object, detail: str, *, what: str = "store file") -> None:
        super().__init__(
            f"cannot read or write the {what}: {path}: {detail}; check the disk, then try again"
        )


class StoreInternalError(StoreError):
    """The store engine failed in a way it should not (a panic, a misuse): a bug.

    A redb reader cannot tell such a failure from a page damaged outside redb (it
    trusts the file), so for a read-only open the message names both and says how to
    tell them apart; a writer checks the file itself and raises StoreCorruptError.
    """

    exit_code = EXIT_SOFTWARE

    def __init__(self, path: object, detail: str, *, maybe_damaged: bool = False) -> None:
        if maybe_damaged:
            advice = (
                "the file may be damaged (`ccc-watch check`, with the daemon stopped, tells; "
                "`ccc-watch rebuild` recreates it from the vault), or this is a bug in ccc-watch"
            )
        else:
            advice = "this is a bug in ccc-watch: please report it"
        super().__init__(f"internal error in the store engine: {path}: {detail}; {advice}")


def store_os_error(path: object, err: OSError, *, what: str = "store file") -> StoreError:
    """The StoreError for an OSError met while opening, reading or writing the store
    (or `what` else in the data dir)."""
    detail = err.strerror or str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StoreFullError(path, detail, what=what)
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorePermissionError(path, detail, what=what)
    return StoreIOError(path, detail, what=what)


def os_exit_code(err: OSError) -> int:
    """The exit code for an OSError that reached the command line unwrapped."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
        return EXIT_IOERR
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EXIT_NOPERM
    return EXIT_FAILURE


class StoreMissingError(StoreError):
    """There is no store yet where one was expected."""


class InvalidPathError(StoreError, ValueError):
    """A record key is not a valid vault-relative path."""
