"""The build ledger: one SQLite row per nonce, for idempotency, recovery and the dashboard.

A nonce is claimed atomically (BEGIN IMMEDIATE), so duplicate requests build
once even across gunicorn workers. A running row names the process holding it
(``owner``: hostname, boot id, pid namespace, pid and process start time); a
row whose owner has died (a SIGKILL, an OOM kill, a restart of this container
or machine) is taken over at once, and a row held under another hostname
(another machine or container sharing DATA_DIR) only when its lease runs out.
Rows hold the request without its secret and without attachment contents;
never store either.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from utils.errors import NonceConflict
from utils.models import Check, TaskRequest

log = logging.getLogger(__name__)

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
    owner TEXT,                      -- process_token() of the process running the build
    result_json TEXT,
    progress_json TEXT,              -- a running build's current stage and links, for the dashboard
    notified INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS builds_task_round ON builds (task, round, status);
CREATE INDEX IF NOT EXISTS builds_created ON builds (created_at);
"""
# Columns added after the first release: ledgers written by older versions get them on open.
ADDED_COLUMNS = {"owner": "TEXT", "progress_json": "TEXT"}


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
    lease_until: float = 0.0
    owner: str | None = None
    progress: dict[str, Any] | None = None

    def abandoned(self, now: float | None = None) -> bool:
        """True for a running build nobody is working on: its process died or its lease ran out."""
        if self.status != "running":
            return False
        return self.lease_until <= (time.time() if now is None else now) or owner_is_dead(self.owner)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a nonce: build it ('new', with any earlier attempt's row), or reuse a row."""

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
        with self._transaction() as db:
            _add_missing_columns(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
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

    def claim(self, request: TaskRequest, request_id: str, lease_seconds: float) -> Claim:
        """Claim ``request.nonce`` for a new build, or say it is done or running elsewhere.

        A running row whose owner died or whose lease ran out is taken over; the
        new claim keeps the row's ``notified`` flag, so a retry never re-sends a
        notification that was accepted, and takes this attempt's received time.
        """
        now = time.time()
        with self._transaction() as db:
            found = db.execute("SELECT * FROM builds WHERE nonce = ?", (request.nonce,)).fetchone()
            previous = _row(found) if found else None
            if previous is not None:
                check_same_request(previous, request)
                if previous.status == "success":
                    return Claim("done", previous)
                if previous.status == "running" and not previous.abandoned(now):
                    return Claim("running", previous)
                if previous.status == "running":
                    log.warning("taking over a build whose process is gone", extra={"nonce": request.nonce})
            db.execute(
                "INSERT INTO builds (nonce, task, round, email, request_json, request_id, status, lease_until,"
                " owner, result_json, notified, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, NULL, 0, ?, ?)"
                " ON CONFLICT (nonce) DO UPDATE SET request_json = excluded.request_json,"
                " request_id = excluded.request_id, status = 'running', lease_until = excluded.lease_until,"
                " owner = excluded.owner, result_json = NULL, progress_json = NULL,"
                " created_at = excluded.created_at, updated_at = excluded.updated_at",
                (request.nonce, request.task, request.round, request.email, json.dumps(request.fingerprint()),
                 request_id, now + lease_seconds, process_token(), now, now),
            )
            return Claim("new", previous)

    def finish(self, nonce: str, status: str, result: dict[str, Any], notified: bool = False) -> None:
        """Record the outcome ('success' or 'error') and the response body; ``notified`` is never cleared."""
        with self._connect() as db:
            db.execute(
                "UPDATE builds SET status = ?, result_json = ?, notified = MAX(notified, ?), owner = NULL,"
                " updated_at = ? WHERE nonce = ?",
                (status, json.dumps(result), int(notified), time.time(), nonce),
            )

    def progress(self, nonce: str, progress: dict[str, Any]) -> None:
        """Record a running build's current stage and the links it has so far (shown on the dashboard)."""
        with self._connect() as db:
            db.execute("UPDATE builds SET progress_json = ?, updated_at = ? WHERE nonce = ? AND status = 'running'",
                       (json.dumps(progress), time.time(), nonce))

    def mark_notified(self, nonce: str) -> None:
        """Record at once that the evaluation URL accepted the notification (before anything else can fail)."""
        with self._connect() as db:
            db.execute("UPDATE builds SET notified = 1, updated_at = ? WHERE nonce = ?", (time.time(), nonce))

    def get(self, nonce: str) -> BuildRow | None:
        """The row for ``nonce``, if any."""
        with self._connect() as db:
            found = db.execute("SELECT * FROM builds WHERE nonce = ?", (nonce,)).fetchone()
        return _row(found) if found else None

    def wait_for(self, nonce: str, until: float, poll: float = 0.25) -> BuildRow | None:
        """Poll until the build of ``nonce`` ends or is abandoned, or monotonic time ``until`` passes."""
        row = self.get(nonce)
        while row is not None and row.status == "running" and not row.abandoned() and time.monotonic() < until:
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
        lease_until=found["lease_until"], owner=found["owner"],
        progress=json.loads(found["progress_json"]) if found["progress_json"] else None,
    )


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Migrate a ledger written by an older version (inside the caller's write transaction)."""
    present = {column["name"] for column in db.execute("PRAGMA table_info(builds)")}
    for name, declaration in ADDED_COLUMNS.items():
        if name not in present:
            db.execute(f"ALTER TABLE builds ADD COLUMN {name} {declaration}")


# --- which process holds a build ----------------------------------------------------------------------------------
# A pid alone is not enough: a restarted container numbers its processes from 1 again. The
# token adds the process's start time, and the hostname, boot id and pid namespace that say
# whether the pid can be looked up from here. Only Linux (/proc) can check; elsewhere the lease decides.


def process_token(pid: int | None = None) -> str | None:
    """``hostname|boot-id|pid-namespace|pid|start-time`` of a live process (default: this one), or None."""
    scope = _host_scope()
    started = _start_time(pid or os.getpid())
    return "|".join([*scope, str(pid or os.getpid()), started]) if scope and started else None


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` ran under this hostname and is gone; False when it lives or cannot be checked."""
    parts = (owner or "").split("|")
    scope = _host_scope()
    if len(parts) != 5 or scope is None or parts[0] != scope[0] or not parts[3].isdigit():
        return False  # another machine or container: its processes cannot be seen from here
    if tuple(parts[:3]) != scope:
        return True  # this machine rebooted or this container restarted since: everything it ran is gone
    return process_token(int(parts[3])) != owner


@functools.cache
def _host_scope() -> tuple[str, str, str] | None:
    """This hostname, kernel boot and pid namespace, or None where /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return socket.gethostname(), boot, os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None
