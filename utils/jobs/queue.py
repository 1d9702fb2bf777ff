"""The durable build queue's worker side: resume, lease renewal, expiry and graceful stop, one thread per process.

Builds live in the build store (``utils.store``), written before the client
gets an answer. Every process that serves builds runs one daemon thread that,
every third of a lease:

- renews the lease of each build this process runs (so other instances know
  it is alive; a lease is a tenth of DEADLINE_SECONDS within 2..60 s, so a
  takeover leaves most of the deadline to finish);
- marks queued or abandoned builds whose deadline passed as ``expired`` (with
  the reason; never started);
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

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from utils import metrics
from utils.deadline import Deadline
from utils.errors import BuildsSaturated, ShuttingDown
from utils.store.base import BuildRow, Claim, StoreGone, lease_seconds

if TYPE_CHECKING:
    from utils.jobs.runner import BuildJob, Runtime

log = logging.getLogger(__name__)

QUEUED_PER_SLOT = 8  # at most this many queued builds per build slot before early requests get 503


class BuildQueue:
    """This process's side of the durable queue: what it holds, its resume loop and its stop switch."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.lease_seconds = lease_seconds(runtime.config.deadline_seconds)
        self.interval = self.lease_seconds / 3
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

    def enqueue(self, job: BuildJob) -> Claim:
        """Store ``job`` as queued (no slot free now): it runs here or elsewhere when a slot frees."""
        store = self.runtime.services().store
        limit = QUEUED_PER_SLOT * self.runtime.config.max_concurrent_builds
        if store.counts()["queued"] >= limit:
            raise BuildsSaturated(f"{limit} builds are already queued; retry in a minute")
        claim = store.claim(job.task_request, job.request_id, self.lease_seconds, queued=True, mode="early",
                            **durable_fields(job))
        self.ensure_started()
        return claim

    def claim(self, job: BuildJob, *, mode: str) -> Claim:
        """Claim ``job``'s nonce for this process and store everything a resume needs (before answering)."""
        return self.runtime.services().store.claim(job.task_request, job.request_id, self.lease_seconds,
                                                    mode=mode, **durable_fields(job))

    def resume_once(self) -> int:
        """Expire overdue builds, then start queued or abandoned ones while slots are free; return how many."""
        if self.runtime.config.missing_for_serving():
            return 0  # not configured: leave stored builds to an instance that can build them
        store = self.runtime.services().store
        for row in store.expire_overdue():
            metrics.record_build("expired", "deadline")
            log.warning("build expired before it could run", extra={"nonce": row.nonce, "error": row.reason})
        started = 0
        while not self.stopping.is_set() and self.runtime.slots.try_acquire():
            try:
                row = store.take_next(self.lease_seconds)
            except BaseException:  # a database hiccup must not keep the slot
                self.runtime.slots.release()
                raise
            if row is None:
                self.runtime.slots.release()
                break
            self._start(row)
            started += 1
        return started

    def _start(self, row: BuildRow) -> None:
        """Run a build taken from the queue in the background (the slot is already taken; given back on failure)."""
        from utils.jobs.runner import BuildJob, start_in_background

        took_over = row.status == "running"
        metrics.record_build("resumed", "takeover" if took_over else "queued")
        log.warning("resuming a build" if took_over else "starting a queued build",
                    extra={"nonce": row.nonce, "stage": row.milestone,
                           "seconds_left": round((row.deadline_at or 0) - time.time(), 1)})
        config = self.runtime.config
        try:
            attachments = self.runtime.services().store.attachments(row.nonce)
        except BaseException:  # the row's lease lapses and the build is taken again; the slot must not leak
            self.runtime.slots.release()
            raise
        job = BuildJob(self.runtime, row.task_request(), attachments,
                       Deadline(max(0.0, (row.deadline_at or 0) - time.time())), row.request_id,
                       public_url=row.public_url or config.public_url or f"http://127.0.0.1:{config.port}",
                       claim=Claim("new", row))
        start_in_background(job, release=self.runtime.slots.release)

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
        store = self.runtime.services().store if held else None
        for nonce in held:
            try:
                if not store.renew(nonce, self.lease_seconds):
                    log.debug("lease not renewed (not held yet, or taken over)", extra={"nonce": nonce})
            except StoreGone:
                raise
            except Exception:
                log.warning("could not renew a build's lease", exc_info=True, extra={"nonce": nonce})


def _run_loop(queue_ref: weakref.ref[BuildQueue], wake: threading.Event, interval: float) -> None:
    """Tick the queue every ``interval`` seconds (or when woken) for as long as its app and its store exist."""
    while (queue := queue_ref()) is not None:
        if not queue.tick():
            return
        del queue  # hold no reference while waiting, so a discarded app (tests) ends its loop
        wake.wait(interval)
        wake.clear()


def durable_fields(job: BuildJob) -> dict:
    """What the store keeps besides the request: attachments, wall-clock deadline and the base of local links."""
    return {"attachments": job.attachments, "deadline_at": time.time() + job.deadline.remaining(),
            "public_url": job.public_url}


def queue_status(runtime: Runtime) -> tuple[dict, str]:
    """For /ready (anonymous): the kind of store (never its location) and how many builds are queued, running and
    expired; and a problem, if any."""
    from utils.store.backends import store_backend

    status: dict = {"backend": store_backend(runtime.config), "stopping": runtime.queue.stopping.is_set()}
    try:
        counts = runtime.services().store.counts()
    except Exception as exc:  # an unreachable database: say so without its URL
        log.warning("the build store cannot be read", extra={"error": type(exc).__name__})
        return {**status, "error": f"the build store cannot be read ({type(exc).__name__})"}, "store"
    return {**status, **{name: counts[name] for name in ("queued", "running", "expired")}}, ""
