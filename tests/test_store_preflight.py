"""The preflight's build store checks (check_config.py): where builds live, and a live DATABASE_URL check.

Never prints the database password, whether the database answers or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.postgres_support import fresh_database
from tests.service_process import free_port
from tests.test_check_config import environ, finding, run  # noqa: F401  (environ is a fixture)
from utils.store.postgres import SCHEMA_VERSION, PostgresStore

PASSWORD = "pg-password-never-shown-42"


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh database's URL with a password in it (the test cluster trusts local connections)."""
    databases = fresh_database()
    parts = urlsplit(next(databases))
    yield urlunsplit(parts._replace(netloc=f"{parts.username}:{PASSWORD}@{parts.hostname or ''}"))
    next(databases, None)


@pytest.mark.postgres
def test_a_reachable_database_is_checked_and_its_password_never_shown(environ, capsys, database_url):  # noqa: F811
    code, report = run({**environ, "DATABASE_URL": database_url}, capsys)
    database = finding(report, "database")
    assert database["status"] == "ok" and f"schema version 0 of {SCHEMA_VERSION} (" in database["detail"]
    assert database["detail"].endswith("the rest is applied on start")
    assert finding(report, "build store")["detail"].startswith("PostgreSQL at postgresql://postgres@")
    PostgresStore(database_url)  # the service's first start migrates
    _, report = run({**environ, "DATABASE_URL": database_url}, capsys)
    assert f"schema version {SCHEMA_VERSION} of {SCHEMA_VERSION} (" in finding(report, "database")["detail"]
    assert PASSWORD not in str(report)


def test_an_unreachable_database_fails_without_showing_its_password(environ, capsys):  # noqa: F811
    url = f"postgresql://deploy:{PASSWORD}@127.0.0.1:{free_port()}/builds?connect_timeout=2"
    code, report = run({**environ, "DATABASE_URL": url}, capsys)
    assert code == 1 and finding(report, "database")["status"] == "fail"
    assert "DATABASE_URL" in finding(report, "database")["hint"]
    assert finding(report, "build store")["detail"] == "PostgreSQL at postgresql://deploy@127.0.0.1:" \
        f"{urlsplit(url).port}/builds"
    assert PASSWORD not in str(report)


def test_a_database_url_that_is_not_postgresql_fails(environ, capsys):  # noqa: F811
    code, report = run({**environ, "DATABASE_URL": "mysql://u:p@db/x"}, capsys, "--offline")
    assert code == 1 and finding(report, "build store")["status"] == "fail"


@pytest.mark.parametrize("extra, status", [({}, "info"), ({"VERCEL": "1"}, "warn")])
def test_sqlite_is_named_and_vercel_is_told_to_set_database_url(environ, capsys, extra, status):  # noqa: F811
    _, report = run({**environ, **extra}, capsys, "--offline")
    store = finding(report, "build store")
    assert store["status"] == status and "SQLite" in store["detail"]
