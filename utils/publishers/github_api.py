"""The GitHub transport: one REST call under the retry, spacing, rate-limit and deadline policy.

The seam between whoever says what to do on GitHub (the publisher, the
preflight in ``check_config.py``) and the network, after httpx's transports:
``GitHubTransport.request`` sends one call to ``api_url`` through PyGithub's
requester (authentication, base URL and connections; PyGithub is imported on
first use, so ``import main`` stays quick, and its own retries and throttling
are off: the policy below replaces them) and returns the parsed JSON and the
headers as a ``GitHubAnswer``, or raises
``GitHubCallFailed`` (502, stage ``publish``) with GitHub's status and message.
Tests point it at the fake GitHub by URL; nothing here names github.com.

The policy, in one place with an injectable ``sleep``: 403/429 rate limits wait
for ``Retry-After`` or ``X-RateLimit-Reset`` (any method: a rate-limited request
was not processed), unless that is longer than ``max_rate_wait``; 5xx and
network errors are retried only for repeatable calls (GET, PUT and PATCH, and
the POSTs a caller marks repeatable, such as Git object creation, which is
content-addressed); a call with an unknown outcome and a state check
(``verify``) is checked before it is sent again, a POST without one is never
re-sent blindly. The Git Data API's 409 on a repository still empty is retried
briefly. A 2xx answer that is not JSON or lacks the fields the caller reads
counts as an unknown outcome (retried or state-checked like a 5xx). Mutating
calls are spaced ``write_interval`` apart as GitHub's guidance asks, those of
concurrent builds too. One transport serves every build of a process: each
thread gets its own PyGithub requester, whose connection object is not safe
to share.

The deadline set with ``bounded_by`` bounds every call made inside it: no wait
or retry starts that would end past it, and each attempt's timeout is capped by
the time left.

Never: put the token in a message, a log line or a URL (it travels only in the
Authorization header, only to ``api_url``); re-send a call whose outcome is
unknown when it may not be repeated.
"""

from __future__ import annotations

import contextvars
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import requests
from requests.structures import CaseInsensitiveDict

from utils import metrics
from utils.config import DEFAULT_GITHUB_API_URL
from utils.deadline import Deadline, retry_after_seconds
from utils.errors import GitHubCallFailed

if TYPE_CHECKING:
    from github.Requester import Requester

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 1.0
SECONDARY_LIMIT_WAIT = 60.0
API_VERSION = "2022-11-28"
USER_AGENT = "llm-code-deployment"
REPEATABLE_METHODS = ("GET", "PUT", "PATCH")
UNREADABLE = "an unreadable answer (not the JSON GitHub describes)"
REDIRECTED = "moved to another host or protocol; set GITHUB_API_URL to the API's own address"
TOKEN_HINT = ("the token needs Administration, Contents and Pages (read and write) and Metadata (read) "
              "permissions on all repositories, or the classic `repo` scope")

_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("github_deadline", default=None)


@dataclass(frozen=True)
class GitHubAnswer:
    """A call that succeeded: its parsed JSON (None for an empty body) and its headers."""

    data: Any
    headers: Mapping[str, str]


@dataclass(frozen=True)
class _Failure:
    """What went wrong with one attempt of a call."""

    status: int | None
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def unknown_outcome(self) -> bool:
        """True when the call may or may not have taken effect (5xx, no answer, an unreadable one)."""
        return self.status is None or self.status >= 500

    @property
    def empty_repository(self) -> bool:
        """True for the Git Data API's 409 on a repository without commits."""
        return self.status == 409 and "empty" in self.message.lower()

    def rate_limit_wait(self) -> float | None:
        """Seconds GitHub asks us to wait on a 403/429 rate limit, or None if this is not one."""
        if self.status not in (403, 429):
            return None
        if "retry-after" in self.headers:
            wait = retry_after_seconds(self.headers["retry-after"])
            return SECONDARY_LIMIT_WAIT if wait is None else wait
        reset = self.headers.get("x-ratelimit-reset", "")
        if self.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
            return max(0.0, int(reset) - time.time()) + 1.0
        if self.status == 429 or "rate limit" in self.message.lower():
            return SECONDARY_LIMIT_WAIT
        return None


class Transport(Protocol):
    """The seam the GitHub publisher and its watchers call through: one method, as httpx's transports.

    ``GitHubTransport`` is the real one; a test of the publisher's own logic can pass a recording one.
    """

    api_url: str

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *, what: str,
                params: dict[str, str] | None = None, expect: tuple[str, ...] | None = None,
                repeatable: bool | None = None, verify: Callable[[], Any] | None = None) -> GitHubAnswer:
        """Send ``method path`` and return the answer, or raise ``GitHubCallFailed``."""
        ...


class GitHubTransport:
    """Sends REST calls to one GitHub API with one token, under the policy of the module docstring."""

    def __init__(self, token: str, api_url: str = DEFAULT_GITHUB_API_URL, *, timeout: float = 30,
                 sleep: Callable[[float], None] = time.sleep, write_interval: float = 1.0,
                 max_rate_wait: float = 90.0, attempts: int = MAX_ATTEMPTS, user_agent: str = USER_AGENT):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._sleep = sleep
        self._write_interval = write_interval
        self._max_rate_wait = max_rate_wait
        self._attempts = attempts
        self._user_agent = user_agent
        self._local = threading.local()  # this thread's requesters, by timeout (see _requester)
        self._last_write = float("-inf")  # when the last mutating call started or, once it is over, ended
        self._write_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GitHubTransport(api_url={self.api_url!r})"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *, what: str,
                params: dict[str, str] | None = None, expect: tuple[str, ...] | None = None,
                repeatable: bool | None = None, verify: Callable[[], Any] | None = None) -> GitHubAnswer:
        """Send ``method path`` (``what`` names it in errors and metrics) until it succeeds or must stop.

        ``expect``: dotted fields the answer must hold (any value but null: ``[]`` and ``0`` count), else it is
        unreadable.
        ``repeatable``: whether a 5xx or lost answer may be re-sent (default: GET, PUT, PATCH).
        ``verify``: after an unknown outcome, reads back whether the call took
        effect; what it returns (not None) stands in for the lost answer.
        """
        write = method != "GET"
        may_repeat = (method in REPEATABLE_METHODS if repeatable is None else repeatable) or verify is not None
        deadline = _DEADLINE.get()
        failure = _Failure(None, "no attempt made")
        for attempt in range(self._attempts):
            self._space(write)
            try:
                outcome = self._attempt(method, path, body, params, expect)
            finally:
                if write:  # not under the lock, which a thread waiting for its turn holds: now is later anyway
                    self._last_write = max(self._last_write, time.monotonic())
            if isinstance(outcome, GitHubAnswer):
                metrics.record_github_call(what.split()[0], "ok")
                return outcome
            failure = outcome
            metrics.record_github_call(what.split()[0], failure.status or "no_answer")
            wait = self._retry_wait(failure, attempt, may_repeat)
            if wait is None or attempt == self._attempts - 1 or (deadline and wait > deadline.remaining()):
                break
            self._sleep(wait)
            if verify is not None and failure.unknown_outcome and (done := verify()) is not None:
                return GitHubAnswer(done, {})
        raise self._fail(what, failure)

    def _attempt(self, method: str, path: str, body: dict[str, Any] | None, params: dict[str, str] | None,
                 expect: tuple[str, ...] | None) -> GitHubAnswer | _Failure:
        """One HTTP exchange: the answer, or what went wrong."""
        requester = self._requester(math.ceil(self._attempt_timeout()))
        try:
            status, raw_headers, text = requester.requestJson(method, path, parameters=params,
                                                          headers=dict(_HEADERS), input=body)
        except (requests.RequestException, OSError) as exc:
            return _Failure(None, f"no answer ({type(exc).__name__})")
        except RuntimeError:  # PyGithub refuses a 301 to another host, protocol or the same path
            return _Failure(301, REDIRECTED)
        data, headers = _json(text), CaseInsensitiveDict(raw_headers)
        if status >= 400:
            return _Failure(status, _github_message(data), headers)
        if expect is not None and not (isinstance(data, dict)
                                       and all(_field(data, name) is not None for name in expect)):
            return _Failure(None, UNREADABLE)
        return GitHubAnswer(data, headers)

    def _requester(self, timeout: int) -> Requester:
        """This thread's PyGithub requester for a whole-second ``timeout``, without PyGithub's own retries and
        throttling.

        Never shared between threads: a requester's one connection object holds each call's method, URL,
        headers and body in attributes between sending and reading, so concurrent builds sharing it would
        swap their calls and answers. Nor between timeouts, which are fixed when it is made.
        """
        requesters: dict[int, Requester] = self._local.__dict__.setdefault("requesters", {})
        if timeout not in requesters:
            from github import Auth, Github  # why: PyGithub is heavy and needed only with GITHUB_TOKEN

            client = Github(auth=Auth.Token(self._token), base_url=self.api_url, timeout=timeout, retry=None,
                            user_agent=self._user_agent, seconds_between_requests=None, seconds_between_writes=None)
            requesters[timeout] = client.requester
        return requesters[timeout]

    def _attempt_timeout(self) -> float:
        """The timeout of one attempt: ``timeout``, capped by the deadline's time left (at least 1 s)."""
        deadline = _DEADLINE.get()
        return self._timeout if deadline is None else min(self._timeout, max(1.0, deadline.remaining()))

    def _retry_wait(self, failure: _Failure, attempt: int, may_repeat: bool) -> float | None:
        """Seconds to wait before the next attempt, or None when retrying would be wrong."""
        if (limit := failure.rate_limit_wait()) is not None:
            return limit if limit <= self._max_rate_wait else None
        if failure.empty_repository:
            return BACKOFF_SECONDS * 2.0 ** attempt / 2
        if failure.unknown_outcome and may_repeat:
            return BACKOFF_SECONDS * 2.0 ** attempt
        return None

    def _space(self, write: bool) -> None:
        """Keep mutating calls ``write_interval`` apart (from the previous one's start and end), across threads."""
        if not write:
            return
        with self._write_lock:  # held while waiting, so threads take their turns one interval apart
            gap = self._last_write + self._write_interval - time.monotonic()
            if gap > 0:
                self._sleep(gap)
            self._last_write = time.monotonic()

    def _fail(self, what: str, failure: _Failure) -> GitHubCallFailed:
        """The error for a call that failed for good, with GitHub's message and a hint."""
        status, message, wait = failure.status, failure.message, failure.rate_limit_wait()
        if status == 401:
            text = f"GitHub rejected the token (HTTP 401: {message}); set GITHUB_TOKEN to a valid token"
        elif wait is not None:
            text = f"GitHub rate limit while trying to {what} (HTTP {status}: {message}); retry in {wait:.0f} s"
        elif status == 403:
            text = f"GitHub refused to {what} (HTTP 403: {message}); {TOKEN_HINT}"
        elif status is None and message.startswith("no answer"):
            text = f"could not reach GitHub to {what}: {message}"
        elif status is None:
            text = f"GitHub gave {message} when asked to {what}"
        else:
            text = f"GitHub could not {what} (HTTP {status}: {message})"
        return GitHubCallFailed(self._redact(text), github_status=status, github_message=self._redact(message),
                                rate_limited=wait is not None)

    def _redact(self, text: str) -> str:
        """``text`` without the token, whatever put it there."""
        return text.replace(self._token, "[token]") if self._token else text


@contextmanager
def bounded_by(deadline: Deadline | None) -> Iterator[None]:
    """Bound this thread's GitHub calls by ``deadline`` (None: keep the caller's, if any)."""
    token = _DEADLINE.set(deadline or _DEADLINE.get())
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _json(text: str) -> Any:
    """The answer's JSON, or None when it is empty or not JSON."""
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def _field(data: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path of nested objects, or None."""
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _github_message(data: Any) -> str:
    """GitHub's error message with its field errors, e.g. ``Repository creation failed. (name already exists...)``."""
    if not isinstance(data, dict):
        return str(data or "")[:300]
    details = [str(e.get("message") or e.get("code")) for e in data.get("errors") or [] if isinstance(e, dict)]
    message = str(data.get("message") or "")
    return f"{message} ({'; '.join(details)})" if details else message
