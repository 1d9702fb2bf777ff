"""A fresh PostgreSQL database per test, from the cluster `.ci/run` starts (TEST_DATABASE_URL).

Without TEST_DATABASE_URL the PostgreSQL variants skip locally, and fail under
CI=true (CI must run them). Each database is dropped after its test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def admin_url() -> str:
    """TEST_DATABASE_URL, or skip (locally) / fail (CI) without it."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("TEST_DATABASE_URL is not set: .ci/run must start PostgreSQL for these tests")
        pytest.skip("TEST_DATABASE_URL is not set (.ci/postgres start DIR prints one)")
    return url


def fresh_database() -> Iterator[str]:
    """Create an empty database on the test cluster, yield its URL, drop it."""
    import psycopg

    base = admin_url()
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
