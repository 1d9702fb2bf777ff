"""One deadline per request, from receipt; every stage takes its time budget from it.

Uses a monotonic clock, never wall time. Never sleeps past the deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

NOTIFY_RESERVE_FRACTION = 0.05
NOTIFY_RESERVE_MIN = 3.0
NOTIFY_RESERVE_MAX = 30.0


@dataclass
class Deadline:
    """A point in monotonic time that a request must finish by."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def at(self) -> float:
        """The monotonic time of the deadline."""
        return self.started + self.seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        """True once no time is left."""
        return self.remaining() <= 0.0

    def budget(self, cap: float) -> float:
        """The smaller of ``cap`` and the time left."""
        return min(cap, self.remaining())

    def ahead_by(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` earlier than this one (same start), e.g. to keep a reserve before it."""
        return Deadline(max(0.0, self.seconds - seconds), self.started)

    def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until the deadline; return False if the deadline cut it short."""
        wait = min(seconds, self.remaining())
        if wait > 0:
            time.sleep(wait)
        return wait >= seconds


def notify_reserve(seconds: float) -> float:
    """Seconds kept for the notification before a deadline of ``seconds``: 5 %, at least 3 s, at most 30 s,
    never more than a third of it."""
    return min(max(NOTIFY_RESERVE_MIN, seconds * NOTIFY_RESERVE_FRACTION), NOTIFY_RESERVE_MAX, seconds / 3)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
