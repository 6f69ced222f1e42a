"""The carriers the settings name: the folder carrier when manifest_dir is set, the
database carrier when hq_url is set (its module, ccc_watch.nodes.postgres, is loaded
only then, and skipped with a log line when this installation lacks it; it provides
`carrier(cfg) -> Carrier`)."""

from __future__ import annotations

import importlib
from pathlib import Path

from loguru import logger

from ccc_watch.config import Config
from ccc_watch.errors import ConfigError
from ccc_watch.nodes.carrier import Carrier

HOW_TO_SET = (
    "no manifest carrier: set manifest_dir to a folder your sync engine shares between "
    "devices (--manifest-dir, CCC_WATCH_MANIFEST_DIR or manifest_dir in the config file), "
    "or hq_url to a PostgreSQL database"
)


def carriers(cfg: Config) -> list[Carrier]:
    """The configured carriers, the folder first; [] when neither is set."""
    out: list[Carrier] = []
    if cfg.manifest_dir is not None:
        from ccc_watch.nodes.folder import FolderCarrier

        if cfg.vault is not None and Path(cfg.manifest_dir).resolve() == Path(cfg.vault).resolve():
            raise ConfigError(
                "manifest_dir", "is the vault itself: name a folder inside or outside it"
            )

        out.append(FolderCarrier(cfg.manifest_dir))
    if cfg.hq_url is not None:
        try:
            postgres = importlib.import_module("ccc_watch.nodes.postgres")
        except ModuleNotFoundError as e:
            if e.name != "ccc_watch.nodes.postgres":  # its driver (psycopg) is missing
                raise ConfigError(
                    "hq_url",
                    f"the database carrier needs the {e.name} package, which is not "
                    "installed: install it, or unset hq_url",
                ) from None
            logger.warning("hq_url is set but this installation has no database carrier")
        else:
            out.append(postgres.carrier(cfg))
    return out


def require_carriers(cfg: Config) -> list[Carrier]:
    """carriers(cfg), or a ConfigError (exit 78) saying how to set manifest_dir."""
    found = carriers(cfg)
    if not found:
        raise ConfigError("manifest_dir", HOW_TO_SET.removeprefix("no manifest carrier: "))
    return found
