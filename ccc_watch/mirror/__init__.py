"""The DuckDB mirror: its schema, the exactly-once flush from the store's changelog, the
child process that flushes for the daemon, and read-only SQL."""
