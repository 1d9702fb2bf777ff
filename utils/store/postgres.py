"""The PostgreSQL build store (``DATABASE_URL=postgresql://...``): one store and queue for several instances.

Same behaviour as the SQLite store (``utils.store.sqlite``), shared by every
instance that uses the database: a nonce is claimed under a transaction-scoped
advisory lock on the nonce and a row lock, so two instances that receive the
same request at once build it once; the resumer takes queued or abandoned
builds with ``FOR UPDATE SKIP LOCKED``, so instances never wait on each other;
leases and deadlines are measured with the database's clock, so instances with
skewed clocks agree on when a lease ran out. Migrations are versioned
(``schema_migrations``) and applied on start under an advisory lock.

Times in returned rows are converted to this machine's wall clock. Never logs
or shows the URL's password; never stores a secret.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from utils.records import Attachments, Check, TaskRequest
from utils.store.base import (
    STATUSES,
    BuildRow,
    Claim,
    attachment_rows,
    attachments_from_rows,
    existing_claim,
    expired_result,
    expiry_reason,
    keeps_screenshot,
    milestones_before,
    next_attempts,
    poison_result,
    wait_for_row,
    written_of,
)
from utils.store.owners import owner_token

log = logging.getLogger(__name__)

NOW = "extract(epoch from clock_timestamp())"
MIGRATION_LOCK = 7_415_001  # pg_advisory_xact_lock key held while migrating
MIGRATIONS = (
    """
    CREATE TABLE builds (
        nonce TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        round INTEGER NOT NULL,
        email TEXT NOT NULL,
        request_json TEXT NOT NULL,
        request_id TEXT NOT NULL,
        status TEXT NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL,
        owner TEXT,
        result_json TEXT,
        progress_json TEXT,
        notified BOOLEAN NOT NULL DEFAULT FALSE,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        deadline_at DOUBLE PRECISION,
        milestone TEXT NOT NULL DEFAULT 'accepted',
        mode TEXT NOT NULL DEFAULT 'sync',
        public_url TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX builds_task_round ON builds (task, round, status);
    CREATE INDEX builds_created ON builds (created_at);
    CREATE INDEX builds_status ON builds (status, created_at);
    CREATE TABLE build_attachments (
        nonce TEXT NOT NULL, position INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
        path TEXT NOT NULL, media_type TEXT NOT NULL, preview TEXT NOT NULL, data BYTEA,
        PRIMARY KEY (nonce, position));
    """,
    """
    CREATE TABLE build_screenshots (
        nonce TEXT PRIMARY KEY, png BYTEA NOT NULL, saved_at DOUBLE PRECISION NOT NULL);
    """,
    """
    ALTER TABLE builds ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
ROW = f"SELECT *, {NOW} AS db_now FROM builds"


def safe_location(url: str) -> str:
    """``postgresql://user@host:port/db`` from an allow-list of the DSN's fields (URL or key=value form), for the
    signed-in dashboard and the log: never a password, a query secret or any field not on the list."""
    from psycopg.conninfo import conninfo_to_dict  # why: psycopg is loaded only when DATABASE_URL is set

    try:
        fields = conninfo_to_dict(url)
    except Exception:  # psycopg.ProgrammingError on a malformed DSN: its message may quote the DSN
        return "postgresql (the DATABASE_URL does not parse)"
    shown = {name: str(fields.get(name) or "") for name in ("user", "host", "port", "dbname")}
    user = f"{shown['user']}@" if shown["user"] else ""
    port = f":{shown['port']}" if shown["port"] else ""
    return f"postgresql://{user}{shown['host']}{port}/{shown['dbname']}".rstrip("/")


class PostgresStore:
    """Builds by nonce in a PostgreSQL database shared by every instance."""

    def __init__(self, url: str, connect_timeout: float = 10):
        self.url = url
        self.connect_timeout = connect_timeout
        self.migrate()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A connection in one transaction (committed on success), rows as dicts."""
        import psycopg  # why: psycopg is loaded only when DATABASE_URL is set
        from psycopg.rows import dict_row  # why: as above

        with psycopg.connect(self.url, connect_timeout=int(self.connect_timeout), row_factory=dict_row,
                             application_name="llm-deploy") as db:
            with db.transaction():
                yield db

    def migrate(self) -> int:
        """Apply the migrations this database lacks (one instance at a time); return the schema version."""
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                       " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            applied = {r["version"] for r in db.execute("SELECT version FROM schema_migrations")}
            for number, script in enumerate(MIGRATIONS, start=1):
                if number not in applied:
                    db.execute(script)
                    db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
                    log.info("database migrated", extra={"schema_version": number})
        return SCHEMA_VERSION

    def claim(self, request: TaskRequest, request_id: str, lease_seconds: float, *, deadline_at: float | None = None,
              attachments: Attachments | None = None, mode: str = "sync", public_url: str = "",
              queued: bool = False) -> Claim:
        """Claim ``request.nonce`` for a new build (``queued``: store it for the queue), or say it is done or
        running."""
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (request.nonce,))
            found = db.execute(f"{ROW} WHERE nonce = %s FOR UPDATE", (request.nonce,)).fetchone()
            previous = _row(found) if found else None
            settled = existing_claim(previous, request, queued=queued)
            if settled is not None and settled.state == "poison" and previous is not None:
                return Claim("done", _end_poisoned(db, previous))
            if settled is not None:
                return settled
            status, owner = ("queued", None) if queued else ("running", owner_token())
            local_now = time.time()
            db.execute(
                "INSERT INTO builds (nonce, task, round, email, request_json, request_id, status, lease_until,"
                " owner, result_json, notified, created_at, updated_at, deadline_at, mode, public_url, attempts)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, {NOW} + %s, %s, NULL, FALSE, {NOW}, {NOW},"
                f" {NOW} + %s, %s, %s, %s)"
                " ON CONFLICT (nonce) DO UPDATE SET request_json = excluded.request_json,"
                " request_id = excluded.request_id, status = excluded.status, lease_until = excluded.lease_until,"
                " owner = excluded.owner, result_json = NULL, progress_json = NULL,"
                " created_at = excluded.created_at, updated_at = excluded.updated_at,"
                " deadline_at = excluded.deadline_at, mode = excluded.mode, public_url = excluded.public_url,"
                " reason = '', attempts = excluded.attempts",
                (request.nonce, request.task, request.round, request.email, json.dumps(request.fingerprint()),
                 request_id, status, lease_seconds, owner,
                 None if deadline_at is None else deadline_at - local_now, mode, public_url,
                 next_attempts(previous, queued)),
            )
            if attachments is not None:
                db.execute("DELETE FROM build_attachments WHERE nonce = %s", (request.nonce,))
                with db.cursor() as cursor:
                    cursor.executemany("INSERT INTO build_attachments VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                                       [(request.nonce, *row) for row in attachment_rows(attachments)])
            return Claim("queued" if queued else "new", previous)

    def take_next(self, lease_seconds: float) -> BuildRow | None:
        """Claim the oldest queued or abandoned build whose deadline has not passed (locked rows skipped), or None."""
        with self._transaction() as db:
            found = db.execute(f"{ROW} WHERE status IN ('queued', 'running') AND deadline_at > {NOW}"
                               " ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 50").fetchall()
            candidates = [r for r in map(_row, found) if r.status == "queued" or r.abandoned()]
            for poisoned in [r for r in candidates if r.crashed_too_often()]:
                _end_poisoned(db, poisoned)
            row = next((r for r in candidates if not r.crashed_too_often()), None)
            if row is None:
                return None
            db.execute(f"UPDATE builds SET status = 'running', owner = %s, lease_until = {NOW} + %s,"
                       f" updated_at = {NOW}, attempts = attempts + 1 WHERE nonce = %s",
                       (owner_token(), lease_seconds, row.nonce))
            return replace(row, attempts=row.attempts + 1)

    def expire_overdue(self) -> list[BuildRow]:
        """Mark queued and abandoned builds whose deadline passed as expired, with the reason; return them."""
        with self._transaction() as db:
            found = db.execute(f"{ROW} WHERE status IN ('queued', 'running') AND deadline_at <= {NOW}"
                               " FOR UPDATE SKIP LOCKED").fetchall()
            overdue = [r for r in map(_row, found) if r.status == "queued" or r.abandoned()]
            for row in overdue:
                reason = expiry_reason(row)
                db.execute(f"UPDATE builds SET status = 'expired', reason = %s, result_json = %s, owner = NULL,"
                           f" updated_at = {NOW} WHERE nonce = %s",
                           (reason, json.dumps(expired_result(reason)), row.nonce))
                db.execute("DELETE FROM build_attachments WHERE nonce = %s", (row.nonce,))
        return overdue

    def renew(self, nonce: str, lease_seconds: float) -> bool:
        """Extend this process's lease on a running build; False if it is no longer this process's."""
        with self._transaction() as db:
            changed = db.execute(f"UPDATE builds SET lease_until = {NOW} + %s WHERE nonce = %s"
                                 " AND status = 'running' AND owner = %s",
                                 (lease_seconds, nonce, owner_token())).rowcount
        return bool(changed == 1)

    def requeue(self, nonce: str) -> None:
        """Hand a build this process holds back to the queue (it was accepted but will not run here)."""
        with self._transaction() as db:
            db.execute(f"UPDATE builds SET status = 'queued', owner = NULL, updated_at = {NOW},"
                       " attempts = GREATEST(0, attempts - 1) WHERE nonce = %s AND status = 'running'"
                       " AND owner = %s", (nonce, owner_token()))  # it was not run here: not an attempt

    def mark_milestone(self, nonce: str, milestone: str) -> None:
        """Record the last milestone a build reached (generated, committed); it never moves back."""
        with self._transaction() as db:
            db.execute(f"UPDATE builds SET milestone = %s, updated_at = {NOW} WHERE nonce = %s"
                       " AND milestone = ANY(%s)", (milestone, nonce, list(milestones_before(milestone))))

    def finish(self, nonce: str, status: str, result: dict[str, Any], notified: bool = False) -> None:
        """Record the outcome ('success' or 'error') and the response body; ``notified`` is never cleared."""
        with self._transaction() as db:
            db.execute(f"UPDATE builds SET status = %s, result_json = %s, notified = notified OR %s, owner = NULL,"
                       f" updated_at = {NOW} WHERE nonce = %s", (status, json.dumps(result), notified, nonce))
            db.execute("DELETE FROM build_attachments WHERE nonce = %s", (nonce,))

    def progress(self, nonce: str, progress: dict[str, Any]) -> None:
        """Record a running build's current stage and the links it has so far (shown on the dashboard)."""
        with self._transaction() as db:
            db.execute(f"UPDATE builds SET progress_json = %s, updated_at = {NOW} WHERE nonce = %s"
                       " AND status = 'running'", (json.dumps(progress), nonce))

    def mark_notified(self, nonce: str) -> None:
        """Record at once that the evaluation URL accepted the notification (before anything else can fail)."""
        with self._transaction() as db:
            db.execute(f"UPDATE builds SET notified = TRUE, milestone = 'notified', updated_at = {NOW}"
                       " WHERE nonce = %s", (nonce,))

    def get(self, nonce: str) -> BuildRow | None:
        """The row for ``nonce``, if any."""
        with self._transaction() as db:
            found = db.execute(f"{ROW} WHERE nonce = %s", (nonce,)).fetchone()
        return _row(found) if found else None

    def attachments(self, nonce: str) -> Attachments:
        """The attachments stored with a build (until it ends)."""
        with self._transaction() as db:
            rows = db.execute("SELECT kind, name, path, media_type, preview, data FROM build_attachments"
                              " WHERE nonce = %s ORDER BY position", (nonce,)).fetchall()
        return attachments_from_rows([tuple(r.values()) for r in rows])

    def wait_for(self, nonce: str, until: float, poll: float = 0.25) -> BuildRow | None:
        """Poll until the build of ``nonce`` ends or is abandoned, or monotonic time ``until`` passes."""
        return wait_for_row(self, nonce, until, poll)

    def previous_checks(self, task: str, round_number: int) -> tuple[Check, ...]:
        """The checks of the latest successful build of ``task`` at ``round_number``."""
        with self._transaction() as db:
            found = db.execute("SELECT request_json FROM builds WHERE task = %s AND round = %s AND status = 'success'"
                               " ORDER BY updated_at DESC LIMIT 1", (task, round_number)).fetchone()
        if not found:
            return ()
        return tuple(Check(**c) for c in json.loads(found["request_json"]).get("checks", []))

    def previous_written(self, task: str, round_number: int) -> list[dict[str, Any]]:
        """The written checks kept with the latest successful build of ``task`` at ``round_number``."""
        with self._transaction() as db:
            found = db.execute("SELECT result_json FROM builds WHERE task = %s AND round = %s AND status = 'success'"
                               " ORDER BY updated_at DESC LIMIT 1", (task, round_number)).fetchone()
        return written_of(found["result_json"] if found else None)

    def save_screenshot(self, nonce: str, png: bytes) -> None:
        """Keep the PNG of ``nonce``'s app (replacing any; nothing when empty or over MAX_SCREENSHOT_BYTES)."""
        if keeps_screenshot(png):
            with self._transaction() as db:
                db.execute(f"INSERT INTO build_screenshots (nonce, png, saved_at) VALUES (%s, %s, {NOW})"
                           " ON CONFLICT (nonce) DO UPDATE SET png = excluded.png, saved_at = excluded.saved_at",
                           (nonce, png))

    def screenshot(self, nonce: str) -> bytes | None:
        """The PNG kept for ``nonce``, or None."""
        with self._transaction() as db:
            found = db.execute("SELECT png FROM build_screenshots WHERE nonce = %s", (nonce,)).fetchone()
        return bytes(found["png"]) if found else None

    def recent(self, limit: int = 20) -> list[BuildRow]:
        """The newest builds first."""
        with self._transaction() as db:
            rows = db.execute(f"{ROW} ORDER BY created_at DESC LIMIT %s", (limit,)).fetchall()
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many builds are in each status (every status, zero included)."""
        with self._transaction() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM builds GROUP BY status")
            found = {r["status"]: r["n"] for r in rows}
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def describe(self) -> str:
        """Where the store lives: the database URL without its password."""
        return safe_location(self.url)


def _row(found: dict[str, Any]) -> BuildRow:
    """A row with its database-clock times moved to this machine's wall clock."""
    shift = time.time() - float(found["db_now"])
    return BuildRow(
        nonce=found["nonce"], task=found["task"], round=found["round"], status=found["status"],
        request_id=found["request_id"], request=json.loads(found["request_json"]),
        result=json.loads(found["result_json"]) if found["result_json"] else None,
        notified=bool(found["notified"]), created_at=found["created_at"] + shift,
        updated_at=found["updated_at"] + shift, lease_until=found["lease_until"] + shift, owner=found["owner"],
        deadline_at=None if found["deadline_at"] is None else found["deadline_at"] + shift,
        milestone=found["milestone"], mode=found["mode"], public_url=found["public_url"], reason=found["reason"],
        progress=json.loads(found["progress_json"]) if found["progress_json"] else None,
        attempts=found["attempts"],
    )


def _end_poisoned(db: Any, row: BuildRow) -> BuildRow:
    """End a build whose process died every time it ran as an error (inside the caller's transaction)."""
    result = poison_result(row)
    db.execute(f"UPDATE builds SET status = 'error', result_json = %s, owner = NULL, updated_at = {NOW}"
               " WHERE nonce = %s", (json.dumps(result), row.nonce))
    db.execute("DELETE FROM build_attachments WHERE nonce = %s", (row.nonce,))
    return replace(row, status="error", result=result, owner=None)
