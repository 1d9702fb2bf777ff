"""Count wrong secrets per client address; past the limit, wrong secrets get 429 instead of 403.

Guessing the shared secret is the one attack an open endpoint invites. Past
``SECRET_FAILURES_LIMIT`` wrong secrets within ``SECRET_FAILURES_WINDOW_SECONDS``
an address's wrong secrets are answered ``429`` with ``Retry-After``. The right
secret is always served, whatever the address's count: behind a proxy or NAT
one address can be many people, and a guesser must never be able to lock the
grader out. Counting and the limit decision are one atomic step, so parallel
guesses cannot slip past the limit.

Never stores or logs a secret; only addresses and counts.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from utils.errors import SecretGuessingLimited


class SecretFailures:
    """Wrong secrets per client address: past ``limit`` within ``window_seconds`` a wrong secret gets 429.

    A moving window from the ``limits`` package, kept in this process's memory:
    with WEB_CONCURRENCY > 1 every gunicorn worker counts on its own. ``limit`` 0
    turns the guard off. The limiter is built on first use (``limits`` is slow to import).
    """

    def __init__(self, limit: int, window_seconds: int):
        self.limit = limit
        self.window_seconds = window_seconds
        self._lock = threading.Lock()
        self._limiter: Any = None
        self._item: Any = None

    def record(self, address: str) -> None:
        """Count one wrong secret from ``address``; raise SecretGuessingLimited when it is past the limit."""
        if not self.limit:
            return
        limiter = self._moving_window()
        with self._lock:  # one step: parallel wrong secrets cannot all see "under the limit"
            allowed = limiter.hit(self._item, address)
        if allowed:
            return
        reset_at = limiter.get_window_stats(self._item, address).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise SecretGuessingLimited(f"too many wrong secrets from this address ({self.limit} within "
                                    f"{self.window_seconds} s); wrong secrets are refused for {retry_after} s",
                                    retry_after=retry_after)

    def _moving_window(self) -> Any:
        with self._lock:
            if self._limiter is None:
                from limits import RateLimitItemPerSecond  # why: loaded on the first wrong secret
                from limits.storage import MemoryStorage  # why: as above
                from limits.strategies import MovingWindowRateLimiter  # why: as above

                self._item = RateLimitItemPerSecond(self.limit, self.window_seconds)
                self._limiter = MovingWindowRateLimiter(MemoryStorage())
            return self._limiter
