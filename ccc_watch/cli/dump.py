"""Print every record as one JSON object per line (read-only; safe while the daemon runs)."""

from __future__ import annotations

import argparse
import sys

from ccc_watch.cli._common import read_store
from ccc_watch.config import Config
from ccc_watch.log.safe import json_shown
from ccc_watch.store import codec

HELP = "print every record as JSON lines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Write the records' JSON to stdout, one per line; exit 0."""
    out = sys.stdout.buffer
    with read_store(cfg) as store:
        for record in store.records():
            line = codec.canonical(record)
            if not line.isascii():  # C1 controls, bidi overrides: escaped
                line = json_shown(line.decode()).encode()
            out.write(line + b"\n")
    out.flush()
    return 0
