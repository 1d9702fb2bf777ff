"""The SQLite build store (the embedded default): one row per nonce under DATA_DIR, for idempotency and the queue.

A nonce is claimed atomically (BEGIN IMMEDIATE), so duplicate requests build
once even across gunicorn workers. A running row names the process holding it
(``owner``: hostname, boot id, pid namespace, pid and process start time, see
``utils.store.owners``) and a lease that process renews while it works; a row
whose owner has died (a SIGKILL, an OOM kill, a restart of this container or
machine) is taken over at once, and a row held under another hostname (another
machine or container sharing DATA_DIR) only when its lease runs out. The
schema is versioned (``PRAGMA user_version``) and migrated on open.
Rows hold the request without its secret; attachments are stored in their own
table for a resumed build, and its screenshot in a third. Never store the secret.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from utils.records import Attachments, Check, TaskRequest
from utils.store.base import (
    STATUSES,
    BuildRow,
    Claim,
    StoreGone,
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    nonce TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    round INTEGER NOT NULL,
    email TEXT NOT NULL,
    request_json TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL,            -- queued | running | success | error | expired
    lease_until REAL NOT NULL,       -- wall-clock end of the running build's lease
    owner TEXT,                      -- owner_token() of the process running the build
    result_json TEXT,
    progress_json TEXT,              -- a running build's current stage and links, for the dashboard
    notified INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS builds_task_round ON builds (task, round, status);
CREATE INDEX IF NOT EXISTS builds_created ON builds (created_at);
"""
# Columns added before versioning: ledgers written by those versions get them in migration 1.
ADDED_COLUMNS = {"owner": "TEXT", "progress_json": "TEXT"}
# Migration N brings a store from user_version N-1 to N (version 1 is the schema above).
MIGRATIONS = (
    """
    ALTER TABLE builds ADD COLUMN deadline_at REAL;
    ALTER TABLE builds ADD COLUMN milestone TEXT NOT NULL DEFAULT 'accepted';
    ALTER TABLE builds ADD COLUMN mode TEXT NOT NULL DEFAULT 'sync';
    ALTER TABLE builds ADD COLUMN public_url TEXT NOT NULL DEFAULT '';
    ALTER TABLE builds ADD COLUMN reason TEXT NOT NULL DEFAULT '';
    CREATE INDEX IF NOT EXISTS builds_status ON builds (status, created_at);
    CREATE TABLE IF NOT EXISTS build_attachments (
        nonce TEXT NOT NULL, position INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
        path TEXT NOT NULL, media_type TEXT NOT NULL, preview TEXT NOT NULL, data BLOB,
        PRIMARY KEY (nonce, position));
    """,
    """
    CREATE TABLE IF NOT EXISTS build_screenshots (
        nonce TEXT PRIMARY KEY, png BLOB NOT NULL, saved_at REAL NOT NULL);
    """,
    """
    ALTER TABLE builds ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = 1 + len(MIGRATIONS)


class SQLiteStore:
    """Builds by nonce in ``DATA_DIR/ledger.sqlite3``."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.resolve()  # absolute, so a later change of working directory cannot move it
        with self._connect(create=True) as db:
            db.execute("PRAGMA journal_mode=WAL")
        with self._transaction() as db:
            _migrate(db)

    @contextmanager
    def _connect(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection to the build store file; StoreGone once the file was removed (never silently recreated)."""
        try:
            db = sqlite3.connect(f"{self._file.as_uri()}?mode={'rwc' if create else 'rw'}", uri=True, timeout=30,
                                 isolation_level=None)
        except sqlite3.OperationalError as exc:
            if not self._file.exists():
                raise StoreGone(f"the build store {self.path} no longer exists (was DATA_DIR removed?)") from exc
            raise
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (BEGIN IMMEDIATE), so read-then-write is atomic across processes."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def claim(self, request: TaskRequest, request_id: str, lease_seconds: float, *, deadline_at: float | None = None,
              attachments: Attachments | None = None, mode: str = "sync", public_url: str = "",
              queued: bool = False) -> Claim:
        """Claim ``request.nonce`` for a new build (``queued``: store it for the queue), or say it is done or running.

        A running row whose owner died or whose lease ran out is taken over; the
        new claim keeps the row's ``notified`` flag and milestone, so a retry never
        re-sends a notification that was accepted, and takes this attempt's received time.
        """
        now = time.time()
        with self._transaction() as db:
            found = db.execute("SELECT * FROM builds WHERE nonce = ?", (request.nonce,)).fetchone()
            previous = _row(found) if found else None
            settled = existing_claim(previous, request, queued=queued, now=now)
            if settled is not None and settled.state == "poison" and previous is not None:
                return Claim("done", _end_poisoned(db, previous, now))
            if settled is not None:
                return settled
            status, owner = ("queued", None) if queued else ("running", owner_token())
            db.execute(
                "INSERT INTO builds (nonce, task, round, email, request_json, request_id, status, lease_until,"
                " owner, result_json, notified, created_at, updated_at, deadline_at, mode, public_url, attempts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (nonce) DO UPDATE SET request_json = excluded.request_json,"
                " request_id = excluded.request_id, status = excluded.status, lease_until = excluded.lease_until,"
                " owner = excluded.owner, result_json = NULL, progress_json = NULL,"
                " created_at = excluded.created_at, updated_at = excluded.updated_at,"
                " deadline_at = excluded.deadline_at, mode = excluded.mode, public_url = excluded.public_url,"
                " reason = '', attempts = excluded.attempts",
                (request.nonce, request.task, request.round, request.email, json.dumps(request.fingerprint()),
                 request_id, status, now + lease_seconds, owner, now, now, deadline_at, mode, public_url,
                 next_attempts(previous, queued)),
            )
            if attachments is not None:
                db.execute("DELETE FROM build_attachments WHERE nonce = ?", (request.nonce,))
                db.executemany("INSERT INTO build_attachments VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               [(request.nonce, *row) for row in attachment_rows(attachments)])
            return Claim("queued" if queued else "new", previous)

    def take_next(self, lease_seconds: float) -> BuildRow | None:
        """Claim the oldest queued or abandoned build whose deadline has not passed, or None."""
        now = time.time()
        with self._transaction() as db:
            found = db.execute("SELECT * FROM builds WHERE status IN ('queued', 'running') AND deadline_at > ?"
                               " ORDER BY created_at", (now,)).fetchall()
            candidates = [r for r in map(_row, found) if r.status == "queued" or r.abandoned(now)]
            for poisoned in [r for r in candidates if r.crashed_too_often(now)]:
                _end_poisoned(db, poisoned, now)
            row = next((r for r in candidates if not r.crashed_too_often(now)), None)
            if row is None:
                return None
            db.execute("UPDATE builds SET status = 'running', owner = ?, lease_until = ?, updated_at = ?,"
                       " attempts = attempts + 1 WHERE nonce = ?", (owner_token(), now + lease_seconds, now, row.nonce))
            return replace(row, attempts=row.attempts + 1)

    def expire_overdue(self) -> list[BuildRow]:
        """Mark queued and abandoned builds whose deadline passed as expired, with the reason; return them."""
        now = time.time()
        with self._transaction() as db:
            found = db.execute("SELECT * FROM builds WHERE status IN ('queued', 'running') AND deadline_at <= ?",
                               (now,)).fetchall()
            overdue = [r for r in map(_row, found) if r.status == "queued" or r.abandoned(now)]
            for row in overdue:
                reason = expiry_reason(row)
                db.execute("UPDATE builds SET status = 'expired', reason = ?, result_json = ?, owner = NULL,"
                           " updated_at = ? WHERE nonce = ?", (reason, json.dumps(expired_result(reason)), now,
                                                                row.nonce))
                db.execute("DELETE FROM build_attachments WHERE nonce = ?", (row.nonce,))
        return overdue

    def renew(self, nonce: str, lease_seconds: float) -> bool:
        """Extend this process's lease on a running build; False if it is no longer this process's."""
        with self._connect() as db:
            changed = db.execute("UPDATE builds SET lease_until = ? WHERE nonce = ? AND status = 'running'"
                                 " AND owner = ?", (time.time() + lease_seconds, nonce, owner_token())).rowcount
        return changed == 1

    def requeue(self, nonce: str) -> None:
        """Hand a build this process holds back to the queue (it was accepted but will not run here)."""
        with self._connect() as db:
            db.execute("UPDATE builds SET status = 'queued', owner = NULL, updated_at = ?,"
                       " attempts = MAX(0, attempts - 1) WHERE nonce = ? AND status = 'running' AND owner = ?",
                       (time.time(), nonce, owner_token()))  # it was not run here: not an attempt

    def mark_milestone(self, nonce: str, milestone: str) -> None:
        """Record the last milestone a build reached (generated, committed); it never moves back."""
        with self._connect() as db:
            earlier = milestones_before(milestone)
            db.execute(f"UPDATE builds SET milestone = ?, updated_at = ? WHERE nonce = ?"
                       f" AND milestone IN ({', '.join('?' * len(earlier))})",
                       (milestone, time.time(), nonce, *earlier))

    def finish(self, nonce: str, status: str, result: dict[str, Any], notified: bool = False) -> None:
        """Record the outcome ('success' or 'error') and the response body; ``notified`` is never cleared."""
        with self._transaction() as db:
            db.execute(
                "UPDATE builds SET status = ?, result_json = ?, notified = MAX(notified, ?), owner = NULL,"
                " updated_at = ? WHERE nonce = ?",
                (status, json.dumps(result), int(notified), time.time(), nonce),
            )
            db.execute("DELETE FROM build_attachments WHERE nonce = ?", (nonce,))

    def progress(self, nonce: str, progress: dict[str, Any]) -> None:
        """Record a running build's current stage and the links it has so far (shown on the dashboard)."""
        with self._connect() as db:
            db.execute("UPDATE builds SET progress_json = ?, updated_at = ? WHERE nonce = ? AND status = 'running'",
                       (json.dumps(progress), time.time(), nonce))

    def mark_notified(self, nonce: str) -> None:
        """Record at once that the evaluation URL accepted the notification (before anything else can fail)."""
        with self._connect() as db:
            db.execute("UPDATE builds SET notified = 1, milestone = 'notified', updated_at = ? WHERE nonce = ?",
                       (time.time(), nonce))

    def get(self, nonce: str) -> BuildRow | None:
        """The row for ``nonce``, if any."""
        with self._connect() as db:
            found = db.execute("SELECT * FROM builds WHERE nonce = ?", (nonce,)).fetchone()
        return _row(found) if found else None

    def attachments(self, nonce: str) -> Attachments:
        """The attachments stored with a build (until it ends)."""
        with self._connect() as db:
            rows = db.execute("SELECT kind, name, path, media_type, preview, data FROM build_attachments"
                              " WHERE nonce = ? ORDER BY position", (nonce,)).fetchall()
        return attachments_from_rows([tuple(r) for r in rows])

    def wait_for(self, nonce: str, until: float, poll: float = 0.25) -> BuildRow | None:
        """Poll until the build of ``nonce`` ends or is abandoned, or monotonic time ``until`` passes."""
        return wait_for_row(self, nonce, until, poll)

    def previous_checks(self, task: str, round_number: int) -> tuple[Check, ...]:
        """The checks of the latest successful build of ``task`` at ``round_number``."""
        with self._connect() as db:
            found = db.execute(
                "SELECT request_json FROM builds WHERE task = ? AND round = ? AND status = 'success'"
                " ORDER BY updated_at DESC LIMIT 1", (task, round_number)).fetchone()
        if not found:
            return ()
        return tuple(Check(**c) for c in json.loads(found["request_json"]).get("checks", []))

    def previous_written(self, task: str, round_number: int) -> list[dict[str, Any]]:
        """The written checks kept with the latest successful build of ``task`` at ``round_number``."""
        with self._connect() as db:
            found = db.execute("SELECT result_json FROM builds WHERE task = ? AND round = ? AND status = 'success'"
                               " ORDER BY updated_at DESC LIMIT 1", (task, round_number)).fetchone()
        return written_of(found["result_json"] if found else None)

    def save_screenshot(self, nonce: str, png: bytes) -> None:
        """Keep the PNG of ``nonce``'s app (replacing any; nothing when empty or over MAX_SCREENSHOT_BYTES)."""
        if keeps_screenshot(png):
            with self._transaction() as db:
                db.execute("INSERT INTO build_screenshots (nonce, png, saved_at) VALUES (?, ?, ?) ON CONFLICT (nonce)"
                           " DO UPDATE SET png = excluded.png, saved_at = excluded.saved_at", (nonce, png, time.time()))

    def screenshot(self, nonce: str) -> bytes | None:
        """The PNG kept for ``nonce``, or None."""
        with self._connect() as db:
            found = db.execute("SELECT png FROM build_screenshots WHERE nonce = ?", (nonce,)).fetchone()
        return bytes(found["png"]) if found else None

    def recent(self, limit: int = 20) -> list[BuildRow]:
        """The newest builds first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM builds ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many builds are in each status (every status, zero included)."""
        with self._connect() as db:
            found = dict(db.execute("SELECT status, COUNT(*) FROM builds GROUP BY status").fetchall())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def describe(self) -> str:
        """Where the store lives: ``sqlite:`` and the build store's path."""
        return f"sqlite:{self.path}"


def _row(found: sqlite3.Row) -> BuildRow:
    return BuildRow(
        nonce=found["nonce"], task=found["task"], round=found["round"], status=found["status"],
        request_id=found["request_id"], request=json.loads(found["request_json"]),
        result=json.loads(found["result_json"]) if found["result_json"] else None,
        notified=bool(found["notified"]), created_at=found["created_at"], updated_at=found["updated_at"],
        lease_until=found["lease_until"], owner=found["owner"], deadline_at=found["deadline_at"],
        milestone=found["milestone"], mode=found["mode"], public_url=found["public_url"], reason=found["reason"],
        progress=json.loads(found["progress_json"]) if found["progress_json"] else None,
        attempts=found["attempts"],
    )


def _end_poisoned(db: sqlite3.Connection, row: BuildRow, now: float) -> BuildRow:
    """End a build whose process died every time it ran as an error (inside the caller's transaction)."""
    result = poison_result(row)
    db.execute("UPDATE builds SET status = 'error', result_json = ?, owner = NULL, updated_at = ? WHERE nonce = ?",
               (json.dumps(result), now, row.nonce))
    db.execute("DELETE FROM build_attachments WHERE nonce = ?", (row.nonce,))
    return replace(row, status="error", result=result, owner=None)


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the build store to SCHEMA_VERSION (inside the caller's write transaction, so workers migrate once)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version < 1:
        for statement in filter(str.strip, SCHEMA.split(";")):
            db.execute(statement)
        present = {column["name"] for column in db.execute("PRAGMA table_info(builds)")}
        for name, declaration in ADDED_COLUMNS.items():
            if name not in present:
                db.execute(f"ALTER TABLE builds ADD COLUMN {name} {declaration}")
    for number, script in enumerate(MIGRATIONS, start=2):
        if version < number:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
