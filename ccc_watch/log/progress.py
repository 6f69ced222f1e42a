"""Progress of a long command (rebuild, scan, verify): a tqdm bar on stderr when a
person watches it, nothing otherwise.

Off by default: the CLI turns it on (`enable`) for a command other than `run` whose
stderr is a terminal and that was not given --quiet. So the daemon, its helper
processes, the tests and a command whose stderr is a pipe or a file never draw a
bar, and tqdm is imported only when one is drawn (it costs ~50 ms of start-up).
"""

from __future__ import annotations

import sys
from typing import Any

_enabled = False


def enable(on: bool) -> None:
    """Draw bars from now on (on) or not."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    """Whether a bar would be drawn now: enabled, and stderr still a terminal."""
    return _enabled and sys.stderr.isatty()


class Progress:
    """A bar of `total` steps named `desc`, or nothing when bars are off. The bar is
    removed when closed, so only the command's results stay on the screen."""

    def __init__(self, total: int | None, desc: str, unit: str = "file") -> None:
        self.bar: Any = None
        if enabled():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)

    def set_total(self, total: int) -> None:
        """The number of steps, once known (a bar made with None counts without one)."""
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def advance(self, n: int = 1) -> None:
        """n more steps done."""
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
