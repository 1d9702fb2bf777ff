"""Notify the request's evaluation_url with exactly the seven keys of DESIGN.md.

Retries any non-2xx answer or network error with 1, 2, 4, 8... second delays
until the deadline, always making at least one attempt. Never sends the secret.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests

from utils import metrics
from utils.deadline import Deadline

log = logging.getLogger(__name__)

NOTIFICATION_KEYS = ("email", "task", "round", "nonce", "repo_url", "commit_sha", "pages_url")
ATTEMPT_TIMEOUT = 15.0
MAX_DELAY = 120.0


@dataclass(frozen=True)
class NotifyResult:
    """Whether the evaluation URL accepted the notification, after how many attempts."""

    ok: bool
    attempts: int
    last_error: str = ""


def notification_payload(values: dict) -> dict:
    """Exactly the seven notification keys, in the documented order."""
    return {key: values[key] for key in NOTIFICATION_KEYS}


def notify(url: str, payload: dict, deadline: Deadline, *, session: requests.Session | None = None,
           first_delay: float = 1.0) -> NotifyResult:
    """POST ``payload`` as JSON to ``url`` until a 2xx answer or the deadline."""
    http = session or requests.Session()
    delay, attempts, last_error = first_delay, 0, ""
    while True:
        attempts += 1
        started = time.monotonic()
        try:
            timeout = max(1.0, deadline.budget(ATTEMPT_TIMEOUT))
            response = http.post(url, json=payload, timeout=timeout)
            if 200 <= response.status_code < 300:
                metrics.record_notification_attempt("accepted")
                log.info("notification accepted", extra={"stage": "notify", "attempt": attempts,
                                                          "http_status": response.status_code})
                return NotifyResult(True, attempts)
            last_error = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last_error = type(exc).__name__
        metrics.record_notification_attempt(last_error)
        log.warning("notification attempt failed", extra={
            "stage": "notify", "attempt": attempts, "error": last_error,
            "seconds": round(time.monotonic() - started, 3), "retry_in": delay})
        if deadline.remaining() < delay or not deadline.sleep(delay):
            return NotifyResult(False, attempts, last_error)
        delay = min(delay * 2, MAX_DELAY)
