"""The storage seam: what a build store does (idempotency store and durable build queue), whatever holds it.

Two backends implement ``BuildStore``: SQLite under ``DATA_DIR`` (the embedded
default, ``utils.store.sqlite``) and PostgreSQL (``DATABASE_URL``,
``utils.store.postgres``) for several instances. This module holds what both
share: the row and claim types, the same-request check and what a found row
settles for a claim, the lease arithmetic, the reasons of expiry, and the
(de)serialization of stored requests and attachments. A build's screenshot (a
PNG of the app as the self-check saw it, for the build page) is stored beside
its row.

A row is ``queued`` (accepted, not running), ``running`` (owned by a process
that renews its lease), or final: ``success``, ``error`` or ``expired`` (its
deadline passed before it could run, with a reason). ``attempts`` counts the
runs a build was started for; a build found abandoned (its process died) after
``MAX_ATTEMPTS`` runs is a poison build: it is ended as an error, never started
again (a request that crashed its worker was once resumed by every new worker,
104 times in 25 s). Never stores a secret.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from utils.errors import NonceConflict
from utils.records import Attachment, AttachmentRef, Attachments, Check, LinkedAttachment, TaskRequest
from utils.store.owners import owner_is_dead

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "success", "error", "expired")
UNFINISHED = ("queued", "running")  # the statuses of a build that has not ended
FINAL = ("success", "error", "expired")
MILESTONES = ("accepted", "generated", "committed", "notified")
MAX_SCREENSHOT_BYTES = 1_000_000  # a viewport PNG is usually 10-200 kB; a larger one is not kept
LEASE_MINIMUM, LEASE_MAXIMUM = 2.0, 60.0
MAX_ATTEMPTS = 2  # runs of one build whose process may die before the build is ended as an error


class StoreGone(RuntimeError):
    """The store's storage no longer exists (its SQLite file or DATA_DIR was removed): nothing to retry."""


def milestones_before(milestone: str) -> tuple[str, ...]:
    """The milestones that come before ``milestone`` (a build's milestone only moves forward)."""
    return MILESTONES[:MILESTONES.index(milestone)]


def lease_seconds(deadline_seconds: float) -> float:
    """A running build's lease: a tenth of the deadline within 2..60 s, so a takeover leaves most of it to work."""
    return min(LEASE_MAXIMUM, max(LEASE_MINIMUM, deadline_seconds / 10))


@dataclass(frozen=True)
class BuildRow:
    """One stored build."""

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
    deadline_at: float | None = None  # wall-clock end of the build's deadline (None: written by an older version)
    milestone: str = "accepted"  # the last stage done: accepted, generated, committed, notified
    mode: str = "sync"  # sync (a client waits for the answer) or early (answered 'accepted')
    public_url: str = ""  # the base of local links the build was accepted under
    reason: str = ""  # why an expired build never ran
    progress: dict[str, Any] | None = None  # a running build's current stage and links, for the dashboard
    attempts: int = 0  # runs started for this build (a takeover of a dead process's build is one more)

    def abandoned(self, now: float | None = None) -> bool:
        """True for a running build nobody is working on: its process died or its lease ran out."""
        if self.status != "running":
            return False
        return self.lease_until <= (time.time() if now is None else now) or owner_is_dead(self.owner)

    def crashed_too_often(self, now: float | None = None) -> bool:
        """True for an abandoned build that was already started MAX_ATTEMPTS times: never start it again."""
        return self.abandoned(now) and self.attempts >= MAX_ATTEMPTS

    def task_request(self) -> TaskRequest:
        """The stored request (without its secret, as it was stored) as a TaskRequest."""
        return request_from_stored(self.request)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a nonce: build it ('new', with any earlier attempt's row), or reuse a row."""

    state: str
    row: BuildRow | None = None


class BuildStore(Protocol):
    """Builds by nonce: claims, leases, milestones, results, and the queue the resumer takes builds from."""

    def claim(self, request: TaskRequest, request_id: str, lease_seconds: float, *, deadline_at: float | None = None,
              attachments: Attachments | None = None, mode: str = "sync", public_url: str = "",
              queued: bool = False) -> Claim:
        """Claim ``request.nonce`` (or, ``queued``, store it for the queue), or say it is done or running."""
        ...

    def take_next(self, lease_seconds: float) -> BuildRow | None:
        """Claim the oldest queued or abandoned build whose deadline has not passed, or None."""
        ...

    def expire_overdue(self) -> list[BuildRow]:
        """Mark queued and abandoned builds whose deadline passed as expired; return them."""
        ...

    def renew(self, nonce: str, lease_seconds: float) -> bool:
        """Extend this process's lease on a running build; False if it is no longer this process's."""
        ...

    def requeue(self, nonce: str) -> None:
        """Hand a build this process holds back to the queue (it was accepted but will not run here)."""
        ...

    def mark_milestone(self, nonce: str, milestone: str) -> None:
        """Record the last milestone a build reached (generated, committed); it never moves back."""
        ...

    def finish(self, nonce: str, status: str, result: dict[str, Any], notified: bool = False) -> None:
        """Record the outcome ('success' or 'error') and the response body; ``notified`` is never cleared."""
        ...

    def progress(self, nonce: str, progress: dict[str, Any]) -> None:
        """Record a running build's current stage and the links it has so far (shown on the dashboard)."""
        ...

    def mark_notified(self, nonce: str) -> None:
        """Record at once that the evaluation URL accepted the notification."""
        ...

    def get(self, nonce: str) -> BuildRow | None:
        """The row for ``nonce``, if any."""
        ...

    def attachments(self, nonce: str) -> Attachments:
        """The attachments stored with a build."""
        ...

    def wait_for(self, nonce: str, until: float, poll: float = 0.25) -> BuildRow | None:
        """Poll until the build of ``nonce`` ends or is abandoned, or monotonic time ``until`` passes."""
        ...

    def previous_checks(self, task: str, round_number: int) -> tuple[Check, ...]:
        """The checks of the latest successful build of ``task`` at ``round_number``."""
        ...

    def previous_written(self, task: str, round_number: int) -> list[dict[str, Any]]:
        """The written checks (``check``, ``kind``, ``js``, ``rubric``) kept with the latest successful build of
        ``task`` at ``round_number`` (empty when it wrote none)."""
        ...

    def save_screenshot(self, nonce: str, png: bytes) -> None:
        """Keep the PNG of ``nonce``'s app (replacing any; nothing when empty or over MAX_SCREENSHOT_BYTES)."""
        ...

    def screenshot(self, nonce: str) -> bytes | None:
        """The PNG kept for ``nonce``, or None."""
        ...

    def recent(self, limit: int = 20) -> list[BuildRow]:
        """The newest builds first."""
        ...

    def counts(self) -> dict[str, int]:
        """How many builds are in each status (every status in STATUSES, zero included)."""
        ...

    def describe(self) -> str:
        """Where the store lives, safe to show (SQLite path or PostgreSQL host/database, never a password)."""
        ...


def written_of(result_json: str | None) -> list[dict[str, Any]]:
    """The ``written_checks`` of a stored result (JSON text), each a dict with a ``check``; [] when none."""
    try:
        body = (json.loads(result_json) if result_json else {}).get("body") or {}
    except (ValueError, AttributeError):
        return []
    written = body.get("written_checks") if isinstance(body, dict) else None
    return [w for w in written if isinstance(w, dict) and w.get("check")] if isinstance(written, list) else []


def keeps_screenshot(png: bytes | None) -> bool:
    """True when ``png`` is worth storing: not empty, at most MAX_SCREENSHOT_BYTES."""
    return bool(png) and len(png or b"") <= MAX_SCREENSHOT_BYTES


def wait_for_row(store: BuildStore, nonce: str, until: float, poll: float = 0.25) -> BuildRow | None:
    """Poll ``store`` until the build of ``nonce`` ends or is abandoned, or monotonic time ``until`` passes."""
    row = store.get(nonce)
    while row is not None and row.status in ("running", "queued") and not row.abandoned() \
            and time.monotonic() < until:
        time.sleep(min(poll, max(0.0, until - time.monotonic())))
        row = store.get(nonce)
    return row


def existing_claim(previous: BuildRow | None, request: TaskRequest, *, queued: bool,
                   now: float | None = None) -> Claim | None:
    """The answer to a claim that ``previous`` (the nonce's row) settles: done, running or already queued.

    None means claim the nonce (anew, or taking over a running build whose owner is gone); "poison" means the
    build's process died MAX_ATTEMPTS times: the store ends it as an error (``poison_result``) and answers "done".
    """
    if previous is None:
        return None
    check_same_request(previous, request)
    if previous.status == "success":
        return Claim("done", previous)
    if previous.status == "running" and not previous.abandoned(now):
        return Claim("running", previous)
    if previous.status == "queued" and queued:
        return Claim("queued", previous)
    if previous.crashed_too_often(now):
        return Claim("poison", previous)
    if previous.status == "running":
        log.warning("taking over a build whose process is gone", extra={"nonce": request.nonce})
    return None


def next_attempts(previous: BuildRow | None, queued: bool) -> int:
    """The attempts a claimed row starts with: one more than an abandoned run's, else 1 (0 while queued)."""
    if previous is not None and previous.status == "running":
        return previous.attempts + 1
    return 0 if queued else 1


def check_same_request(row: BuildRow, request: TaskRequest) -> None:
    """A nonce belongs to one request: a different task, round, email or brief is a conflict."""
    previous = row.request
    for name in ("task", "round", "email", "brief"):
        if previous.get(name) != getattr(request, name):
            raise NonceConflict(
                f"nonce was already used for a different request ({name} differs); send a new nonce",
                field="nonce")


def request_from_stored(stored: dict[str, Any]) -> TaskRequest:
    """Rebuild a TaskRequest from ``TaskRequest.fingerprint()`` (attachment contents come from the store)."""
    return TaskRequest(
        email=stored["email"], task=stored["task"], round=int(stored["round"]), nonce=stored["nonce"],
        brief=stored["brief"], checks=tuple(Check(**c) for c in stored.get("checks", [])),
        evaluation_url=stored.get("evaluation_url"),
        attachments=tuple(AttachmentRef(name, "") for name in stored.get("attachments", [])))


def attachment_rows(attachments: Attachments) -> list[tuple[int, str, str, str, str, str, bytes | None]]:
    """``(position, kind, name, path_or_url, media_type, preview, data)`` for each file and link."""
    rows: list[tuple[int, str, str, str, str, str, bytes | None]] = [
        (i, "file", a.name, a.path, a.media_type, a.preview, a.data) for i, a in enumerate(attachments.files)]
    offset = len(rows)
    rows += [(offset + i, "link", link.name, link.url, "", "", None) for i, link in enumerate(attachments.links)]
    return rows


def attachments_from_rows(rows: list[tuple[str, str, str, str, str, bytes | None]]) -> Attachments:
    """The inverse of ``attachment_rows`` (rows without the position, in position order)."""
    files = tuple(Attachment(name, path, bytes(data or b""), media_type, preview)
                  for kind, name, path, media_type, preview, data in rows if kind == "file")
    links = tuple(LinkedAttachment(name, path) for kind, name, path, _m, _p, _d in rows if kind == "link")
    return Attachments(files, links)


def expiry_reason(row: BuildRow) -> str:
    """Why ``row`` expired: never started, or its process stopped and nobody took over in time."""
    if row.status == "queued":
        return "the deadline passed while the build waited in the queue; it was not started"
    return ("the process running the build stopped, and the deadline passed before another could take it over; "
            f"it was not restarted (last stage done: {row.milestone})")


def poison_result(row: BuildRow) -> dict[str, Any]:
    """The stored result of a build ended because its process died every time it ran."""
    message = (f"the process running this build died {row.attempts} times (last stage done: {row.milestone}), so it "
               "is not tried again: something in the request (an attachment or a fetched document) may crash the "
               "service; change it and send it with a new nonce")
    log.error("a build crashed its process too often and is ended", extra={"nonce": row.nonce,
                                                                            "attempts": row.attempts})
    return {"http_status": 500, "body": {"status": "error", "error": {"stage": "crash", "message": message}}}


def expired_result(reason: str) -> dict[str, Any]:
    """The stored result of a build whose deadline passed before it could run."""
    return {"http_status": 504, "body": {"status": "error", "error": {"stage": "deadline", "message": reason}}}
