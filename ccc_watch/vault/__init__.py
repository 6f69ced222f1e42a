"""The vault and its rules: vault-relative keys, ignore rules, and the walk that lists
what gets indexed."""
