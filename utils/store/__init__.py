"""Storage: the build ledger (idempotency record and crash recovery)."""
