"""Who this installation is among the nodes: its name and its role."""

from __future__ import annotations

import socket
from pathlib import Path

from ccc_watch.config import BY_KEY, Config
from ccc_watch.errors import ConfigError


def node_name(cfg: Config) -> str:
    """The `node` setting, or the host name checked as the setting is (a host name that
    is no valid node name is a ConfigError saying to set `node`)."""
    if cfg.node is not None:
        return cfg.node
    host = socket.gethostname().split(".", 1)[0]
    try:
        return str(BY_KEY["node"].parse(host, Path.cwd()))
    except ValueError as e:
        raise ConfigError(
            "node", f"the host name is no node name ({e}); set node (--node, CCC_WATCH_NODE)"
        ) from None


def role(cfg: Config) -> str:
    """ "outpost" or "headquarters"."""
    return cfg.role
