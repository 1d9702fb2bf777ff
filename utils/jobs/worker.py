"""The worker (rq's Worker): runs builds inline or in the background, renews leases, resumes stored builds.

Every process that serves builds runs one daemon thread that, every third of
a lease:

- renews the lease of each build this process runs (so other instances know
  it is alive);
- marks queued or abandoned builds whose deadline passed as ``expired``;
- takes over queued builds and builds whose owner is gone (a dead process on
  this host, or a lapsed lease) while a build slot is free, and runs them in
  the background from the stored request, attachments and deadline.

On SIGTERM (``stop``) the process takes no new builds and resumes none; the
builds it runs finish within the platform's grace period, and queued builds
stay queued for the next instance. The thread ends with its app, or with one
log line once its store is gone (a SQLite file whose DATA_DIR was removed).
Knows nothing of HTTP; never logs request bodies, secrets or attachment contents.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from utils import metrics
from utils.deadline import Deadline
from utils.errors import PipelineError, ShuttingDown
from utils.jobs.job import BuildJob, Outcome
from utils.jobs.queue import BuildQueue
from utils.jobs.slots import BuildSlots
from utils.store.base import BuildRow, Claim, StoreGone

if TYPE_CHECKING:
    from utils.jobs.pipeline import Services

log = logging.getLogger(__name__)


class Worker:
    """This process's builds: running them, renewing their leases, resuming stored ones, and the stop switch."""

    def __init__(self, queue: BuildQueue, slots: BuildSlots, services: Callable[[], Services], default_url: str):
        self.queue = queue
        self.slots = slots
        self.services = services  # the pipeline's collaborators, built on first use
        self.default_url = default_url  # the base of local links for a resumed build that stored none
        self.interval = queue.lease_seconds / 3
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._thread_pid = 0

    def ensure_started(self) -> None:
        """Start this process's resume thread unless it runs (a forked worker starts its own)."""
        with self._lock:
            if self._thread_pid == os.getpid() or self.stopping.is_set():
                return
            self._thread_pid = os.getpid()
        threading.Thread(target=_run_loop, args=(weakref.ref(self), self._wake, self.interval), name="build-queue",
                         daemon=True).start()

    def stop(self) -> None:
        """Stop taking and resuming builds (SIGTERM); running builds go on, queued ones stay queued."""
        if not self.stopping.is_set():
            log.info("stopping: no new builds; running builds finish, queued builds stay queued",
                     extra={"running": len(self._held)})
        self.stopping.set()
        self._wake.set()

    def refuse_if_stopping(self) -> None:
        """Raise ShuttingDown (503) once ``stop`` was called."""
        if self.stopping.is_set():
            raise ShuttingDown("this instance is shutting down; retry in a few seconds (another instance "
                               "or the restarted one will answer)")

    def wake(self) -> None:
        """Look at the queue now (a build slot was freed)."""
        self._wake.set()

    @contextmanager
    def holding(self, nonce: str) -> Iterator[None]:
        """Renew ``nonce``'s lease from the resume thread while the block runs."""
        self.ensure_started()
        with self._lock:
            self._held.add(nonce)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(nonce)
            self.wake()

    def run(self, job: BuildJob) -> Outcome:
        """Run the pipeline (renewing the build's lease meanwhile) and record its outcome in the metrics."""
        from utils.jobs import pipeline  # why: import time (the pipeline pulls requests, model and publishers)

        with metrics.track_running(), self.holding(job.task_request.nonce):
            try:
                outcome = pipeline.run(job.task_request, job.attachments, self.services(),
                                       public_url=job.public_url, deadline=job.deadline,
                                       request_id=job.request_id, claim=job.claim)
            except PipelineError as exc:
                metrics.record_build("error", exc.stage)
                raise
            except Exception:
                metrics.record_build("error", "internal")
                raise
        metrics.record_response(outcome.http_status, outcome.body)
        return outcome

    def start_in_background(self, job: BuildJob) -> None:
        """Run ``job`` in a non-daemon thread (so a graceful shutdown waits for it); release its slot after."""
        context = contextvars.copy_context()

        def target() -> None:
            try:
                outcome = self.run(job)
                log.info("background build finished", extra={"stage": "done", "http_status": outcome.http_status})
            except PipelineError as exc:
                log.warning("background build failed", extra={"stage": exc.stage, "http_status": exc.status,
                                                              "error": exc.message})
            except Exception:
                log.exception("background build failed unexpectedly", extra={"stage": "internal"})
            finally:
                self.slots.release()
                self.wake()

        thread = threading.Thread(target=context.run, args=(target,), name=f"build-{job.request_id}", daemon=False)
        try:
            thread.start()
        except BaseException:
            self.slots.release()
            raise

    def resume_once(self) -> int:
        """Expire overdue builds, then start queued or abandoned ones while slots are free; return how many."""
        if self.queue.config.missing_for_serving():
            return 0  # not configured: leave stored builds to an instance that can build them
        self.queue.expire_overdue()
        started = 0
        while not self.stopping.is_set() and self.slots.try_acquire():
            try:
                row = self.queue.take_next()
            except BaseException:  # a database hiccup must not keep the slot
                self.slots.release()
                raise
            if row is None:
                self.slots.release()
                break
            self._start(row)
            started += 1
        return started

    def _start(self, row: BuildRow) -> None:
        """Run a build taken from the queue in the background (the slot is already taken; given back on failure)."""
        took_over = row.status == "running"
        metrics.record_build("resumed", "takeover" if took_over else "queued")
        log.warning("resuming a build" if took_over else "starting a queued build",
                    extra={"nonce": row.nonce, "stage": row.milestone,
                           "seconds_left": round((row.deadline_at or 0) - time.time(), 1)})
        try:
            attachments = self.queue.store().attachments(row.nonce)
        except BaseException:  # the row's lease lapses and the build is taken again; the slot must not leak
            self.slots.release()
            raise
        job = BuildJob(row.task_request(), attachments, Deadline(max(0.0, (row.deadline_at or 0) - time.time())),
                       row.request_id, public_url=row.public_url or self.default_url, claim=Claim("new", row))
        self.start_in_background(job)

    def tick(self) -> bool:
        """One round of the loop: renew held leases; unless stopping, expire and resume builds.

        Returns False once the store is gone (its DATA_DIR was removed): the loop then ends.
        """
        try:
            self._renew_held()
            if not self.stopping.is_set():
                self.resume_once()
        except StoreGone as gone:
            log.info("the build store is gone; this app's build-queue thread stops", extra={"error": str(gone)})
            return False
        except Exception:  # a database hiccup must not end the loop
            log.warning("could not look at the build queue", exc_info=True)
        return True

    def _renew_held(self) -> None:
        """Extend the lease of every build this process runs."""
        with self._lock:
            held = list(self._held)
        for nonce in held:
            try:
                if not self.queue.renew(nonce):
                    log.debug("lease not renewed (not held yet, or taken over)", extra={"nonce": nonce})
            except StoreGone:
                raise
            except Exception:
                log.warning("could not renew a build's lease", exc_info=True, extra={"nonce": nonce})


def _run_loop(worker_ref: weakref.ref[Worker], wake: threading.Event, interval: float) -> None:
    """Tick the worker every ``interval`` seconds (or when woken) for as long as its app and its store exist."""
    while (worker := worker_ref()) is not None:
        if not worker.tick():
            return
        del worker  # hold no reference while waiting, so a discarded app (tests) ends its loop
        wake.wait(interval)
        wake.clear()
