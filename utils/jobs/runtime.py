"""The app's runtime: config, build slots, the queue, the worker, the lazily built services; and submitting a build.

Builds run inline (the default) or, with ``RESPONSE_MODE=early`` or a
``Prefer: respond-async`` header, in a background thread of the same worker
after a 200 ``accepted`` answer. Either way the build is written to the build
store (request without its secret, attachments, wall-clock deadline) before
the client gets an answer, so a crash never loses it (``utils.jobs.worker``
resumes it). At most ``MAX_CONCURRENT_BUILDS`` builds run at once per process;
an extra synchronous request waits up to ``BUILD_QUEUE_SECONDS`` for a slot,
then gets 503 with ``Retry-After``; an extra early request is queued durably
and answered ``accepted`` at once.

Knows nothing of HTTP: the routes in ``main.py`` turn an ``Outcome`` into a
response. Never logs request bodies, secrets or attachment contents.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from utils import metrics
from utils.config import Config
from utils.errors import PipelineError
from utils.intake.secret_failures import SecretFailures
from utils.jobs.job import BuildJob, Outcome, accepted_body
from utils.jobs.queue import BuildQueue
from utils.jobs.slots import create_slots
from utils.jobs.worker import Worker
from utils.store.backends import store_backend
from utils.store.base import check_same_request

if TYPE_CHECKING:
    from utils.jobs.pipeline import Services

log = logging.getLogger(__name__)

EARLY_SLOT_WAIT_SECONDS = 1.0  # an early request waits this long for a slot (one may be in a queue check), then queues


class Runtime:
    """The app's config, its build slots, queue and worker, its wrong-secret counter and its pipeline services."""

    def __init__(self, config: Config):
        self.config = config
        self.slots = create_slots(config)
        self.secret_failures = SecretFailures(config.secret_failures_limit, config.secret_failures_window_seconds)
        self._services: Services | None = None
        self._lock = threading.Lock()
        self.queue = BuildQueue(config, lambda: self.services().store)
        self.worker = Worker(self.queue, self.slots, self.services,
                             default_url=config.public_url or f"http://127.0.0.1:{config.port}")

    def services(self) -> Services:
        """Build the pipeline's collaborators (store, model client, publisher) on first use."""
        with self._lock:
            if self._services is None:
                from utils.jobs.pipeline import create_services  # why: import time (requests, model, publishers)

                self._services = create_services(self.config)
            return self._services

    def submit(self, job: BuildJob, *, early: bool) -> Outcome:
        """Take a build slot and run ``job`` inline, or (``early``) store it, answer ``accepted`` and run it after.

        In early mode a nonce that belongs to another request is refused (409)
        now, while the client still listens, not in the background; the build is
        in the store before the answer, and queued there when no slot is free.
        """
        self.worker.ensure_started()
        try:
            self.worker.refuse_if_stopping()
            if early:
                self._refuse_conflicting_nonce(job)
                if not self.slots.try_acquire(EARLY_SLOT_WAIT_SECONDS):
                    claim = self.queue.enqueue(job)
                    metrics.record_build("accepted", "queue")
                    return Outcome(200, accepted_body(job.task_request, job.request_id,
                                                      queued=claim.state == "queued"))
            else:
                self.slots.acquire()
        except PipelineError as exc:
            metrics.record_build("rejected", exc.stage)
            raise
        if early:
            return self._accept_early(job)
        try:
            return self.worker.run(job)
        finally:
            self.slots.release()

    def store_status(self) -> tuple[dict[str, Any], str]:
        """For /ready (anonymous): the kind of store (never its location), how many builds are queued, running and
        expired; and a problem, if any."""
        status: dict[str, Any] = {"backend": store_backend(self.config), "stopping": self.worker.stopping.is_set()}
        counts, problem = self.queue.status()
        return {**status, **counts}, problem

    def _refuse_conflicting_nonce(self, job: BuildJob) -> None:
        """Raise NonceConflict (409) if the nonce belongs to a different request (checked before an early answer)."""
        row = self.services().store.get(job.task_request.nonce)
        if row is not None:
            check_same_request(row, job.task_request)

    def _accept_early(self, job: BuildJob) -> Outcome:
        """Claim the nonce and store the build (holding a slot), answer ``accepted``, build in the background."""
        try:
            claim = self.queue.claim(job, mode="early")
        except BaseException:
            self.slots.release()
            raise
        if claim.state == "new":
            job.claim = claim  # a duplicate of a done or running build replays or waits in the background instead
        self.worker.start_in_background(job)
        metrics.record_build("accepted", "validate")
        return Outcome(200, accepted_body(job.task_request, job.request_id))
