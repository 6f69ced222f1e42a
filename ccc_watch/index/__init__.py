"""Indexing: one file's bytes become one record (frontmatter, body scan, record type),
in this process or in a pool of worker processes."""
