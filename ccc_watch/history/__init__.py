"""The vault's history: the audit chain's verification, one note's operations, what
existed at a time, and pruning by age or count (`audit`, `history`, `manifest`)."""
