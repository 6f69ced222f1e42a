"""ccc-watch: keeps a redb index and a DuckDB mirror of an Obsidian vault."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ccc-watch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
