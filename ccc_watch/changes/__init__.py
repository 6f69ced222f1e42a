"""Where store operations come from, and the check that they were right: file events
and scans (reconcile) become upserts, deletes and moves; rebuild indexes everything
anew; verify compares the vault, the store and the mirror."""
