"""The build runner: build slots, the app's runtime holder, and running a build inline or in the background.

Builds run inline (the default) or, with ``RESPONSE_MODE=early`` or a
``Prefer: respond-async`` header, in a background thread of the same worker
after a 200 ``accepted`` answer. Either way the build is written to the build
store (request without its secret, attachments, wall-clock deadline) before
the client gets an answer, so a crash never loses it (``utils.jobs.queue``
resumes it). At most ``MAX_CONCURRENT_BUILDS`` builds run at once per process;
an extra synchronous request waits up to ``BUILD_QUEUE_SECONDS`` for a slot,
then gets 503 with ``Retry-After``; an extra early request is queued durably
and answered ``accepted`` at once.

Knows nothing of HTTP: the routes in ``main.py`` turn an ``Outcome`` into a
response. Never logs request bodies, secrets or attachment contents.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from utils import metrics
from utils.config import Config
from utils.deadline import Deadline
from utils.errors import BuildsSaturated, PipelineError
from utils.intake.secret_failures import SecretFailures

if TYPE_CHECKING:
    from utils.jobs.pipeline import Outcome, Services
    from utils.records import Attachments, TaskRequest
    from utils.store.base import Claim

log = logging.getLogger(__name__)

EARLY_SLOT_WAIT_SECONDS = 1.0  # an early request waits this long for a slot (one may be in a queue check), then queues


class BuildSlots:
    """At most ``limit`` builds at once in this process; at most ``max_waiting`` requests queue for a slot.

    Waiting requests hold a server thread, so the queue is bounded to leave a
    thread free for /health (see ``create_slots``).
    """

    def __init__(self, limit: int, max_waiting: int, wait_seconds: float):
        self.limit = limit
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._waiting = 0

    def acquire(self) -> None:
        """Take a slot, waiting up to ``wait_seconds``; raise BuildsSaturated if none frees up."""
        if self._slots.acquire(blocking=False):
            return
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise self._saturated()
            self._waiting += 1
        try:
            with metrics.track_waiting():
                acquired = self._slots.acquire(timeout=self.wait_seconds)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise self._saturated()

    def try_acquire(self, wait_seconds: float = 0.0) -> bool:
        """Take a slot if one is free now or within ``wait_seconds``."""
        return self._slots.acquire(timeout=wait_seconds) if wait_seconds > 0 else self._slots.acquire(blocking=False)

    def release(self) -> None:
        """Give a slot back."""
        self._slots.release()

    def _saturated(self) -> BuildsSaturated:
        return BuildsSaturated(f"all {self.limit} build slots are busy (MAX_CONCURRENT_BUILDS); "
                               f"retry in a minute")


def create_slots(config: Config) -> BuildSlots:
    """Slots for ``config``: waiting requests never take the last WEB_THREADS thread, kept for /health."""
    max_waiting = max(0, config.web_threads - 1 - config.max_concurrent_builds)
    return BuildSlots(config.max_concurrent_builds, max_waiting, config.build_queue_seconds)


class Runtime:
    """The app's config, its build slots, its wrong-secret counter and its lazily built pipeline services."""

    def __init__(self, config: Config):
        self.config = config
        self.slots = create_slots(config)
        self.secret_failures = SecretFailures(config.secret_failures_limit, config.secret_failures_window_seconds)
        self._services: Services | None = None
        self._lock = threading.Lock()
        from utils.jobs.queue import BuildQueue

        self.queue = BuildQueue(self)

    def services(self) -> Services:
        """Build the pipeline's collaborators (store, model client, publisher) on first use."""
        with self._lock:
            if self._services is None:
                from utils.jobs.pipeline import create_services

                self._services = create_services(self.config)
            return self._services


@dataclass
class BuildJob:
    """One pipeline run with everything it needs from the request, so it can leave the request thread."""

    runtime: Runtime
    task_request: TaskRequest
    attachments: Attachments
    deadline: Deadline
    request_id: str
    public_url: str
    claim: Claim | None = None  # the nonce already claimed for this job (early answers, resumed builds)

    def run(self) -> Outcome:
        """Run the pipeline (renewing the build's lease meanwhile) and record its outcome in the metrics."""
        from utils.jobs import pipeline

        with metrics.track_running(), self.runtime.queue.holding(self.task_request.nonce):
            try:
                outcome = pipeline.run(self.task_request, self.attachments, self.runtime.services(),
                                       public_url=self.public_url, deadline=self.deadline,
                                       request_id=self.request_id, claim=self.claim)
            except PipelineError as exc:
                metrics.record_build("error", exc.stage)
                raise
            except Exception:
                metrics.record_build("error", "internal")
                raise
        metrics.record_response(outcome.http_status, outcome.body)
        return outcome


def submit(job: BuildJob, *, early: bool) -> Outcome:
    """Take a build slot and run ``job`` inline, or (``early``) store it, answer ``accepted`` and run it after.

    In early mode a nonce that belongs to another request is refused (409)
    now, while the client still listens, not in the background; the build is
    in the store before the answer, and queued there when no slot is free.
    """
    from utils.jobs.pipeline import Outcome, refuse_conflicting_nonce

    runtime = job.runtime
    runtime.queue.ensure_started()
    try:
        runtime.queue.refuse_if_stopping()
        if early:
            refuse_conflicting_nonce(job.task_request, runtime.services())
            if not runtime.slots.try_acquire(EARLY_SLOT_WAIT_SECONDS):
                claim = runtime.queue.enqueue(job)
                metrics.record_build("accepted", "queue")
                return Outcome(200, accepted_body(job.task_request, job.request_id, queued=claim.state == "queued"))
        else:
            runtime.slots.acquire()
    except PipelineError as exc:
        metrics.record_build("rejected", exc.stage)
        raise
    if early:
        return _accept_early(job)
    try:
        return job.run()
    finally:
        runtime.slots.release()


def _accept_early(job: BuildJob) -> Outcome:
    """Claim the nonce and store the build (holding a slot), answer ``accepted``, build in the background."""
    from utils.jobs.pipeline import Outcome

    runtime = job.runtime
    try:
        claim = runtime.queue.claim(job, mode="early")
    except BaseException:
        runtime.slots.release()
        raise
    if claim.state == "new":
        job.claim = claim  # a duplicate of a done or running build replays or waits in the background instead
    start_in_background(job, release=runtime.slots.release)
    metrics.record_build("accepted", "validate")
    return Outcome(200, accepted_body(job.task_request, job.request_id))


def accepted_body(task_request: TaskRequest, request_id: str, *, queued: bool = False) -> dict:
    """The early answer: the build was validated and stored, and runs in the background."""
    return {"status": "accepted", "task": task_request.task, "round": task_request.round,
            "nonce": task_request.nonce, "request_id": request_id, "queued": queued,
            "message": ("queued: every build slot is busy; " if queued else "")
            + "building in the background; the result goes to evaluation_url and appears on the dashboard (GET /)"}


def start_in_background(job: BuildJob, release: Callable[[], None]) -> None:
    """Run ``job`` in a non-daemon thread (so a graceful shutdown waits for it); release the slot after."""
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome = job.run()
            log.info("background build finished", extra={"stage": "done", "http_status": outcome.http_status})
        except PipelineError as exc:
            log.warning("background build failed", extra={"stage": exc.stage, "http_status": exc.status,
                                                          "error": exc.message})
        except Exception:
            log.exception("background build failed unexpectedly", extra={"stage": "internal"})
        finally:
            release()
            job.runtime.queue.wake()

    thread = threading.Thread(target=context.run, args=(target,), name=f"build-{job.request_id}", daemon=False)
    try:
        thread.start()
    except BaseException:
        release()
        raise
