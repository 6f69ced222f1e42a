"""Headquarters and outposts: each node publishes a manifest of its records through a
carrier (a shared folder of Parquet files, or a PostgreSQL database), and compares
its own with the others' (`manifest publish`, `nodes`, `drift`). Files travel by the
user's own sync engine; nodes only report whether the copies agree."""
