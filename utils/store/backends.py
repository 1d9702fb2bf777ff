"""Which build store a configuration gets: PostgreSQL when DATABASE_URL is set, else SQLite under DATA_DIR.

Never logs or returns the database password: ``store_backend`` (the kind only) is what anonymous visitors see,
``describe_store`` (host, port, database and user from an allow-list, never a password) is for signed-in views.
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


def store_backend(config: Config) -> str:
    """Which kind of store ``config`` uses ('postgresql' or 'sqlite'): all an anonymous visitor is shown."""
    return "postgresql" if config.database_url else "sqlite"
