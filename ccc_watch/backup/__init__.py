"""Backups of a vault's index: one archive of the store and the mirror (plain, or
encrypted with the vault's key), checked without restoring, restored and reconciled.

    backup.py     take_backup, verify_archive
    restore.py    restore
    archive.py    the archive's manifest and members, written and read as a stream
    crypt.py      AES-256-GCM over a stream, in authenticated chunks
    retention.py  which archives are this vault's; --keep

The submodules are imported where needed: the daemon schedules backups through
retention.py without loading DuckDB.
"""
