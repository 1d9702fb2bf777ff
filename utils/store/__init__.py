"""Storage: the build store (idempotency record and crash recovery)."""
