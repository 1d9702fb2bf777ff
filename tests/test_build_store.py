"""The build store on both backends (SQLite under DATA_DIR, PostgreSQL via DATABASE_URL): the same tests.

Claims and takeovers, the durable queue (stored request without its secret,
attachments, deadline), leases that lapse, expiry with a reason, milestones,
counts, migrations, screenshots, and where the store says it lives (never a password).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres_support import BACKENDS, fresh_database
from utils.records import Attachment, Attachments, Check, LinkedAttachment, TaskRequest
from utils.store.base import MAX_SCREENSHOT_BYTES, BuildStore, StoreGone
from utils.store.postgres import PostgresStore, safe_location
from utils.store.sqlite import SQLiteStore


@pytest.fixture(params=BACKENDS)
def store_factory(request, tmp_path: Path) -> Iterator:
    """A function opening the store (again) on one SQLite file or one fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "ledger.sqlite3")
        return
    databases = fresh_database()
    url = next(databases)
    yield lambda: PostgresStore(url)
    next(databases, None)


@pytest.fixture
def store(store_factory) -> BuildStore:
    """A fresh store."""
    return store_factory()


def sample_request(nonce: str = "n-1", **fields) -> TaskRequest:
    """A small valid request."""
    return TaskRequest(**{"email": "a@example.com", "task": "t", "round": 1, "nonce": nonce, "brief": "b",
                          "checks": (Check("title is set", "document.title !== ''"),), **fields})


ATTACHMENTS = Attachments(files=(Attachment("data.csv", "data.csv", b"a,b\n1,2\n\x00\xff", "text/csv", "a,b"),),
                          links=(LinkedAttachment("site", "https://example.com/x"),))


def test_a_queued_build_keeps_its_request_attachments_and_deadline(store):
    deadline_at = time.time() + 100
    claim = store.claim(sample_request(), "rid", 10, deadline_at=deadline_at, attachments=ATTACHMENTS,
                        mode="early", public_url="http://svc", queued=True)
    assert claim.state == "queued"
    row = store.get("n-1")
    assert row.status == "queued" and row.mode == "early" and row.public_url == "http://svc"
    assert abs(row.deadline_at - deadline_at) < 1
    assert row.task_request() == sample_request(), "the request comes back whole (no secret was ever in it)"
    assert store.attachments("n-1") == ATTACHMENTS
    assert store.counts()["queued"] == 1


def test_take_next_claims_each_queued_build_once_even_from_many_threads(store):
    for n in range(5):
        store.claim(sample_request(f"q-{n}"), "rid", 10, deadline_at=time.time() + 100, queued=True)
    taken: list[str] = []

    def take() -> None:
        while (row := store.take_next(10)) is not None:
            taken.append(row.nonce)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == [f"q-{n}" for n in range(5)]
    assert store.counts()["running"] == 5 and store.take_next(10) is None


def test_a_running_build_whose_lease_lapsed_is_taken_over_and_renewal_keeps_it(store):
    store.claim(sample_request(), "rid", 0.5, deadline_at=time.time() + 100)
    assert store.take_next(10) is None, "a live lease is respected"
    assert store.renew("n-1", 0.5) is True
    time.sleep(0.8)
    taken = store.take_next(10)
    assert taken is not None and taken.nonce == "n-1"
    assert store.get("n-1").lease_until > time.time() + 5, "the new holder's lease"


def test_only_the_holder_renews(store):
    store.claim(sample_request(), "rid", 10, deadline_at=time.time() + 100, queued=True)
    assert store.renew("n-1", 10) is False, "a queued build has no holder"
    store.take_next(10)
    assert store.renew("n-1", 10) is True
    store.requeue("n-1")
    assert store.get("n-1").status == "queued" and store.get("n-1").owner is None


def test_builds_past_their_deadline_expire_with_a_reason_and_are_never_taken(store):
    store.claim(sample_request("late"), "rid", 10, deadline_at=time.time() - 1, attachments=ATTACHMENTS,
                queued=True)
    store.claim(sample_request("alive"), "rid", 10, deadline_at=time.time() - 1)
    assert store.take_next(10) is None
    expired = store.expire_overdue()
    assert [row.nonce for row in expired] == ["late"], "a build whose holder lives is left to it"
    row = store.get("late")
    assert row.status == "expired" and "deadline passed" in row.reason
    assert row.result["body"]["error"]["stage"] == "deadline"
    assert store.attachments("late") == Attachments(), "an ended build's attachments are deleted"
    assert store.counts()["expired"] == 1


def test_an_expired_build_sent_again_is_built_again(store):
    store.claim(sample_request(), "rid", 10, deadline_at=time.time() - 1, queued=True)
    store.expire_overdue()
    assert store.claim(sample_request(), "again", 10, deadline_at=time.time() + 100).state == "new"


def test_claims_replay_wait_and_keep_the_notified_flag(store):
    assert store.claim(sample_request(), "first", 600).state == "new"
    assert store.claim(sample_request(), "second", 600).state == "running"
    store.mark_milestone("n-1", "committed")
    store.mark_notified("n-1")
    assert store.get("n-1").milestone == "notified"
    store.finish("n-1", "success", {"http_status": 200, "body": {"status": "success"}})
    done = store.claim(sample_request(), "third", 600)
    assert done.state == "done" and done.row.notified is True
    assert store.previous_checks("t", 1) == sample_request().checks


def test_written_checks_are_kept_with_the_round(store):
    assert store.previous_written("t", 1) == []
    store.claim(sample_request(), "first", 600)
    written = [{"check": "about.md has three words", "kind": "js", "js": "true", "rubric": ""}]
    store.finish("n-1", "success", {"http_status": 200, "body": {"status": "success", "written_checks": written}})
    assert store.previous_written("t", 1) == written
    assert store.previous_written("t", 2) == []


def test_a_nonce_reused_for_another_request_is_a_conflict(store):
    from utils.errors import NonceConflict

    store.claim(sample_request(), "first", 600)
    with pytest.raises(NonceConflict):
        store.claim(sample_request(brief="other"), "second", 600)


def test_opening_twice_migrates_once(store_factory):
    first = store_factory()
    first.claim(sample_request(), "rid", 10)
    second = store_factory()
    assert second.get("n-1") is not None and [r.nonce for r in second.recent()] == ["n-1"]


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_a_builds_screenshot_is_kept_by_the_store_and_replaced_by_a_newer_one(store):
    assert store.screenshot("n-1") is None
    store.save_screenshot("n-1", PNG)
    assert store.screenshot("n-1") == PNG, "the PNG comes back byte for byte"
    store.save_screenshot("n-1", PNG[:100])
    assert store.screenshot("n-1") == PNG[:100]
    assert store.screenshot("n-2") is None, "each build has its own"


def test_an_empty_or_oversized_screenshot_is_not_kept(store):
    store.save_screenshot("n-1", b"")
    store.save_screenshot("n-2", b"\x89PNG" + b"\0" * MAX_SCREENSHOT_BYTES)
    assert store.screenshot("n-1") is None and store.screenshot("n-2") is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_from_before_screenshots_is_migrated_on_open(backend, tmp_path: Path):
    """The schema from before screenshots and attempts gains both on open; its builds stay, with no attempts."""
    if backend == "sqlite":
        SQLiteStore(tmp_path / "ledger.sqlite3").claim(sample_request(), "rid", 10)
        with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
            db.execute("DROP TABLE build_screenshots")
            db.execute("ALTER TABLE builds DROP COLUMN attempts")
            db.execute("PRAGMA user_version = 2")
        def reopen() -> BuildStore:
            return SQLiteStore(tmp_path / "ledger.sqlite3")
    else:
        import psycopg

        databases = fresh_database()
        url = next(databases)
        PostgresStore(url).claim(sample_request(), "rid", 10)
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute("DROP TABLE build_screenshots")
            pg.execute("ALTER TABLE builds DROP COLUMN attempts")
            pg.execute("DELETE FROM schema_migrations WHERE version >= 2")
        def reopen() -> BuildStore:
            return PostgresStore(url)
    store = reopen()
    store.save_screenshot("n-1", PNG)
    row = store.get("n-1")
    assert row is not None and row.attempts == 0 and store.screenshot("n-1") == PNG
    if backend != "sqlite":
        next(databases, None)


def test_where_the_store_lives_never_shows_a_password(store):
    assert "password" not in store.describe().lower()
    assert safe_location("postgresql://deploy:s3cret@db.example:5432/builds?sslmode=require") == \
        "postgresql://deploy@db.example:5432/builds"
    assert safe_location("postgresql://postgres@/deploy?host=/run/pg") == "postgresql://postgres@/run/pg/deploy"


@pytest.mark.parametrize("dsn", [
    "host=db.example port=5432 dbname=builds user=deploy password=kv-secret-1 sslmode=require",
    "dbname=builds password='kv-secret-1' host=db.example user=deploy port=5432",
    "postgresql://deploy:kv-secret-1@db.example:5432/builds?sslpassword=kv-secret-1",
])
def test_either_dsn_form_is_shown_from_an_allow_list_of_fields(dsn):
    assert safe_location(dsn) == "postgresql://deploy@db.example:5432/builds"


def test_a_dsn_that_does_not_parse_is_not_quoted():
    assert "kv-secret" not in safe_location("host=db password='kv-secret unterminated")


def test_a_removed_sqlite_store_says_so_and_is_never_created_again_empty(tmp_path):
    store = SQLiteStore(tmp_path / "ledger.sqlite3")
    store.claim(sample_request(), "rid", 10)
    for path in tmp_path.glob("ledger.sqlite3*"):  # DATA_DIR emptied under a running service
        path.unlink()
    with pytest.raises(StoreGone, match="no longer exists"):
        store.get("n-1")
    assert list(tmp_path.iterdir()) == [], "no empty store without tables appears in its place"
