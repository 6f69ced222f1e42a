"""`ccc-watch run`: the one writer per vault, its watcher, and what it tells the outside
world (status file, systemd notifications, metrics, rebuild requests)."""
