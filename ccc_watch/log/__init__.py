"""The log: where lines go (file, journald, stderr), how `ccc-watch log` reads them
back, and the one-line drift reports."""
