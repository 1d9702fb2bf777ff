"""Build slots: at most MAX_CONCURRENT_BUILDS builds at once in this process, and a bounded wait for one.

Waiting requests hold a server thread, so the number waiting is bounded to
leave a thread free for /health. Knows nothing of HTTP, the store or the
pipeline; never blocks longer than BUILD_QUEUE_SECONDS.
"""

from __future__ import annotations

import threading

from utils import metrics
from utils.config import Config
from utils.errors import BuildsSaturated


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
