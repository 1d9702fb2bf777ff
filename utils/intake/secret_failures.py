"""Count wrong secrets per client address and refuse an address that sent too many (429).

Guessing the shared secret is the one attack an open endpoint invites; past
``SECRET_FAILURES_LIMIT`` wrong secrets within ``SECRET_FAILURES_WINDOW_SECONDS``
an address's requests are refused before their body is read.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from utils.errors import SecretGuessingLimited


class SecretFailures:
    """Wrong secrets per client address: past ``limit`` within ``window_seconds`` the address gets 429.

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

    def refuse_if_limited(self, address: str) -> None:
        """Raise SecretGuessingLimited, with the seconds until the oldest failure expires, if ``address`` is over."""
        if self._limiter is None or self._limiter.test(self._item, address):
            return  # no wrong secret yet in this process, or this address is under the limit
        reset_at = self._limiter.get_window_stats(self._item, address).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise SecretGuessingLimited(f"too many wrong secrets from this address ({self.limit} within "
                                    f"{self.window_seconds} s); requests are refused unread for {retry_after} s",
                                    retry_after=retry_after)

    def record(self, address: str) -> None:
        """Count one wrong secret from ``address``."""
        if self.limit:
            self._moving_window().hit(self._item, address)

    def _moving_window(self) -> Any:
        with self._lock:
            if self._limiter is None:
                from limits import RateLimitItemPerSecond
                from limits.storage import MemoryStorage
                from limits.strategies import MovingWindowRateLimiter

                self._item = RateLimitItemPerSecond(self.limit, self.window_seconds)
                self._limiter = MovingWindowRateLimiter(MemoryStorage())
            return self._limiter
