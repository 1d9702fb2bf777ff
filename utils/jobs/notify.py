"""Notify the request's evaluation_url with exactly the seven keys of DESIGN.md.

Retries any non-2xx answer or network error with 1, 2, 4, 8... second delays
until the deadline, always making at least one attempt. A ``Retry-After`` on the
answer (429, 503) stretches the next delay to it; when that wait does not fit the
deadline, gives up at once instead of knocking early. Each attempt's timeout is
capped by the time left (at least MIN_ATTEMPT_TIMEOUT, for the one attempt made
after Pages used up the deadline). Never sends the secret, and never follows a
redirect: a 3xx answer is a failed notification, not retried (webhook senders
such as GitHub do the same), so a receiver cannot bounce the body to another
host or back at this service. Ignores the environment (``trust_env=False``): no
proxy from ``HTTP_PROXY`` sees the notification, no ``.netrc`` password is sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import requests

from utils import metrics
from utils.deadline import Deadline, retry_after_seconds

log = logging.getLogger(__name__)

NOTIFICATION_KEYS = ("email", "task", "round", "nonce", "repo_url", "commit_sha", "pages_url")
ATTEMPT_TIMEOUT = 15.0
MIN_ATTEMPT_TIMEOUT = 1.0
MAX_DELAY = 120.0
REDIRECT_REFUSED = "redirect not followed"


@dataclass(frozen=True)
class NotifyResult:
    """Whether the evaluation URL accepted the notification, after how many attempts."""

    ok: bool
    attempts: int
    last_error: str = ""


def notification_payload(values: dict[str, Any]) -> dict[str, Any]:
    """Exactly the seven notification keys, in the documented order."""
    return {key: values[key] for key in NOTIFICATION_KEYS}


def notify(url: str, payload: dict[str, Any], deadline: Deadline, *, session: requests.Session | None = None,
           first_delay: float = 1.0) -> NotifyResult:
    """POST ``payload`` as JSON to ``url`` until a 2xx answer or the deadline."""
    http = session or _direct_session()
    delay, attempts = first_delay, 0
    while True:
        attempts += 1
        started = time.monotonic()
        error, retry_after = _attempt(http, url, payload, deadline, attempts)
        if not error:
            return NotifyResult(True, attempts)
        if error.startswith(REDIRECT_REFUSED):
            metrics.record_notification_attempt("redirect")
            log.warning("notification answered with a redirect, which is not followed",
                        extra={"stage": "notify", "attempt": attempts, "error": error})
            return NotifyResult(False, attempts, error)
        wait = max(delay, retry_after or 0.0)
        metrics.record_notification_attempt(error)
        log.warning("notification attempt failed", extra={
            "stage": "notify", "attempt": attempts, "error": error,
            "seconds": round(time.monotonic() - started, 3), "retry_in": wait})
        if deadline.remaining() < wait or not deadline.sleep(wait):
            return NotifyResult(False, attempts, error)
        delay = min(delay * 2, MAX_DELAY)


def _direct_session() -> requests.Session:
    """A session that ignores the environment: no proxy would see the notification, no ``.netrc`` password is sent."""
    session = requests.Session()
    session.trust_env = False
    return session


def _attempt(http: requests.Session, url: str, payload: dict[str, Any], deadline: Deadline,
             number: int) -> tuple[str, float | None]:
    """One POST: ("", None) when accepted, else the error and the Retry-After the receiver asked for."""
    timeout = max(MIN_ATTEMPT_TIMEOUT, deadline.budget(ATTEMPT_TIMEOUT))
    try:
        response = http.post(url, json=payload, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return type(exc).__name__, None
    if response.is_redirect:
        return f"{REDIRECT_REFUSED} (HTTP {response.status_code})", None
    if 200 <= response.status_code < 300:
        metrics.record_notification_attempt("accepted")
        log.info("notification accepted", extra={"stage": "notify", "attempt": number,
                                                  "http_status": response.status_code})
        return "", None
    return f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("Retry-After"))
