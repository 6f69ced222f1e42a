"""`python -m ccc_watch.cli`: how the Windows scheduled task (and the tests) run it."""

import sys

from ccc_watch.cli import main

sys.exit(main())
