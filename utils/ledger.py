"""The build ledger: one SQLite row per nonce, for idempotency, recovery and the dashboard.

A nonce is claimed atomically (BEGIN IMMEDIATE), so duplicate requests build
once even across gunicorn workers. Rows hold the request without its secret
and without attachment contents; never store either.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from utils.errors import NonceConflict
from utils.models import Check, TaskRequest

SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    nonce TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    round INTEGER NOT NULL,
    email TEXT NOT NULL,
    request_json TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | success | error
    lease_until REAL NOT NULL,       -- wall-clock end of the running build's deadline
    result_json TEXT,
    notified INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS builds_task_round ON builds (task, round, status);
CREATE INDEX IF NOT EXISTS builds_created ON builds (created_at);
"""


@dataclass(frozen=True)
class BuildRow:
    """One ledger row."""

    nonce: str
    task: str
    round: int
    status: str
    request_id: str
    request: dict[str, Any]
    result: dict[str, Any] | None
    notified: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a nonce: build it ('new'), or reuse a row ('done' / 'running')."""

    state: str
    row: BuildRow | None = None


class Ledger:
    """Builds by nonce in ``DATA_DIR/ledger.sqlite3``."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def claim(self, request: TaskRequest, request_id: str, lease_seconds: float) -> Claim:
        """Claim ``request.nonce`` for a new build, or say it is done or running elsewhere."""
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                found = db.execute("SELECT * FROM builds WHERE nonce = ?", (request.nonce,)).fetchone()
                if found is not None:
                    row = _row(found)
                    check_same_request(row, request)
                    live = row.status == "running" and found["lease_until"] > now
                    if row.status == "success" or live:
                        db.execute("COMMIT")
                        return Claim("done" if row.status == "success" else "running", row)
                db.execute(
                    "INSERT OR REPLACE INTO builds (nonce, task, round, email, request_json, request_id, status,"
                    " lease_until, result_json, notified, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, NULL, 0, ?, ?)",
                    (request.nonce, request.task, request.round, request.email,
                     json.dumps(request.fingerprint()), request_id, now + lease_seconds, now, now),
                )
                db.execute("COMMIT")
                return Claim("new")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def finish(self, nonce: str, status: str, result: dict[str, Any], notified: bool = False) -> None:
        """Record the outcome ('success' or 'error') and the response body of a build."""
        with self._connect() as db:
            db.execute(
                "UPDATE builds SET status = ?, result_json = ?, notified = ?, updated_at = ? WHERE nonce = ?",
                (status, json.dumps(result), int(notified), time.time(), nonce),
            )

    def get(self, nonce: str) -> BuildRow | None:
        """The row for ``nonce``, if any."""
        with self._connect() as db:
            found = db.execute("SELECT * FROM builds WHERE nonce = ?", (nonce,)).fetchone()
        return _row(found) if found else None

    def wait_for(self, nonce: str, until: float, poll: float = 0.25) -> BuildRow | None:
        """Poll until the build of ``nonce`` is no longer running or monotonic time ``until`` passes."""
        row = self.get(nonce)
        while row is not None and row.status == "running" and time.monotonic() < until:
            time.sleep(min(poll, max(0.0, until - time.monotonic())))
            row = self.get(nonce)
        return row

    def previous_checks(self, task: str, round_number: int) -> tuple[Check, ...]:
        """The checks of the latest successful build of ``task`` at ``round_number``."""
        with self._connect() as db:
            found = db.execute(
                "SELECT request_json FROM builds WHERE task = ? AND round = ? AND status = 'success'"
                " ORDER BY updated_at DESC LIMIT 1", (task, round_number)).fetchone()
        if not found:
            return ()
        return tuple(Check(**c) for c in json.loads(found["request_json"]).get("checks", []))

    def recent(self, limit: int = 20) -> list[BuildRow]:
        """The newest builds first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM builds ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [_row(r) for r in rows]


def check_same_request(row: BuildRow, request: TaskRequest) -> None:
    """A nonce belongs to one request: a different task, round, email or brief is a conflict."""
    previous = row.request
    for name in ("task", "round", "email", "brief"):
        if previous.get(name) != getattr(request, name):
            raise NonceConflict(
                f"nonce was already used for a different request ({name} differs); send a new nonce",
                field="nonce")


def _row(found: sqlite3.Row) -> BuildRow:
    return BuildRow(
        nonce=found["nonce"], task=found["task"], round=found["round"], status=found["status"],
        request_id=found["request_id"], request=json.loads(found["request_json"]),
        result=json.loads(found["result_json"]) if found["result_json"] else None,
        notified=bool(found["notified"]), created_at=found["created_at"], updated_at=found["updated_at"],
    )
