"""Which build store a configuration gets: PostgreSQL when DATABASE_URL is set, else SQLite under DATA_DIR.

Never logs or returns the database password (``describe_store`` is safe to show).
"""

from __future__ import annotations

from utils.config import Config
from utils.store.base import BuildStore
from utils.store.postgres import PostgresStore, safe_location
from utils.store.sqlite import SQLiteStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(config: Config) -> BuildStore:
    """The build store for ``config``, migrated to the current schema."""
    if config.database_url:
        return PostgresStore(config.database_url)

    return SQLiteStore(config.data_dir / "ledger.sqlite3")


def describe_store(config: Config) -> str:
    """Where ``config``'s builds are stored, safe to show: the SQLite path or the PostgreSQL host and database."""
    if config.database_url:
        return safe_location(config.database_url)
    return f"sqlite:{config.data_dir / 'ledger.sqlite3'}"
