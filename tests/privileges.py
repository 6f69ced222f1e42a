"""Permission tests as root: CI runs as root, and root reads a chmod 000 folder anyway.

A command run under NO_DAC lacks the two capabilities that bypass file permissions
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so the mode bits bind it as they bind any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Root reads a chmod 000 folder anyway: run the daemon as root without the two
# capabilities that bypass file permissions, so the mode bits bind it like any user.
NO_DAC = (
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
)


def blocked_prefix(locked: Path) -> tuple[str, ...]:
    """A command prefix under which `locked` (mode 000) cannot be listed; skip if none."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: chmod 000 cannot stop the daemon")
    probe = subprocess.run(
        [*NO_DAC, sys.executable, "-c", "import os, sys; os.listdir(sys.argv[1])", str(locked)],
        capture_output=True,
        text=True,
    )
    if "PermissionError" not in probe.stderr:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {probe.stderr.strip()[-200:]}")
    return NO_DAC
