"""The durable build queue (rq's Queue): builds stored before their answer, leased, taken, expired.

Builds live in the build store (``utils.store``), written before the client
gets an answer, so a crash never loses one. This module is the store-facing
side of a process: claim a build for this process, queue one when no slot is
free (bounded per slot), expire queued or abandoned builds whose deadline
passed, take the next queued or abandoned build, renew a lease, and report
the queue for /ready. A lease is a tenth of DEADLINE_SECONDS within 2..60 s,
so a takeover leaves most of the deadline to finish. The loop that uses it is
``utils.jobs.worker``.

Knows nothing of HTTP, threads or slots; never logs request bodies, secrets
or attachment contents, and never names a database URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from utils import metrics
from utils.config import Config
from utils.errors import BuildsSaturated
from utils.jobs.job import BuildJob
from utils.store.base import BuildRow, BuildStore, Claim, lease_seconds

log = logging.getLogger(__name__)

QUEUED_PER_SLOT = 8  # at most this many queued builds per build slot before early requests get 503


class BuildQueue:
    """This process's side of the durable queue in the build store."""

    def __init__(self, config: Config, store: Callable[[], BuildStore]):
        self.config = config
        self.store = store  # opened on first use (``Runtime.services``)
        self.lease_seconds = lease_seconds(config.deadline_seconds)

    def enqueue(self, job: BuildJob) -> Claim:
        """Store ``job`` as queued (no slot free now): it runs here or elsewhere when a slot frees."""
        store = self.store()
        limit = QUEUED_PER_SLOT * self.config.max_concurrent_builds
        if store.counts()["queued"] >= limit:
            raise BuildsSaturated(f"{limit} builds are already queued; retry in a minute")
        return store.claim(job.task_request, job.request_id, self.lease_seconds, queued=True, mode="early",
                           **job.durable_fields())

    def claim(self, job: BuildJob, *, mode: str) -> Claim:
        """Claim ``job``'s nonce for this process and store everything a resume needs (before answering)."""
        return self.store().claim(job.task_request, job.request_id, self.lease_seconds, mode=mode,
                                  **job.durable_fields())

    def expire_overdue(self) -> int:
        """Mark queued or abandoned builds whose deadline passed as expired (never started); return how many."""
        rows = self.store().expire_overdue()
        for row in rows:
            metrics.record_build("expired", "deadline")
            log.warning("build expired before it could run", extra={"nonce": row.nonce, "error": row.reason})
        return len(rows)

    def take_next(self) -> BuildRow | None:
        """The next queued build, or one whose owner is gone, now leased to this process (None: nothing to run)."""
        return self.store().take_next(self.lease_seconds)

    def renew(self, nonce: str) -> bool:
        """Extend this process's lease on ``nonce`` (False: not held yet, or taken over)."""
        return self.store().renew(nonce, self.lease_seconds)

    def status(self) -> tuple[dict[str, Any], str]:
        """For /ready: how many builds are queued, running and expired; and a problem, if any."""
        try:
            counts = self.store().counts()
        except Exception as exc:  # an unreachable database: say so without its URL
            log.warning("the build store cannot be read", extra={"error": type(exc).__name__})
            return {"error": f"the build store cannot be read ({type(exc).__name__})"}, "store"
        return {name: counts[name] for name in ("queued", "running", "expired")}, ""
