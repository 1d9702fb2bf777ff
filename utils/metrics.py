"""Prometheus metrics for /metrics: the metric objects, small ``record_*`` functions, the exposition.

prometheus_client is imported on first use, never at import time, for two
reasons: ``import main`` must stay quick, and in multiprocess mode (gunicorn
workers) prometheus_client must see ``PROMETHEUS_MULTIPROC_DIR`` before it is
imported, which ``utils.web.serving`` arranges. With that variable set every worker
writes its values there and /metrics sums them, whichever worker answers.

Labels are bounded (endpoint, stage, outcome, provider, operation names and
status codes), never task names, nonces, URLs, emails or secrets. Recording a
metric never raises into a request.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "llm_deploy"
LABEL_LIMIT = 48
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300, 450, 600, 900)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
CALL_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300)

_F = TypeVar("_F", bound=Callable[..., Any])


class _Metrics:
    """Every metric object, created once per process on first use."""

    def __init__(self) -> None:
        from prometheus_client import (  # why: prometheus_client must load after serving sets its multiprocess folder
            Counter,
            Gauge,
            Histogram,
        )

        self.multiprocess_dir = os.environ.get(MULTIPROC_VARIABLE, "")
        self.requests = Counter(f"{PREFIX}_http_requests", "HTTP requests answered, by endpoint and status.",
                                ["endpoint", "method", "status"])
        self.request_seconds = Histogram(f"{PREFIX}_http_request_seconds", "Time to answer an HTTP request.",
                                         ["endpoint"], buckets=REQUEST_BUCKETS)
        self.builds = Counter(f"{PREFIX}_builds", "Build requests by outcome (success, replayed, error, rejected, "
                                                  "accepted, resumed, expired) and stage (the failing stage, "
                                                  "else 'complete').",
                              ["outcome", "stage"])
        self.stage_seconds = Histogram(f"{PREFIX}_stage_seconds", "Seconds a pipeline stage took in one build.",
                                       ["stage"], buckets=STAGE_BUCKETS)
        self.running = Gauge(f"{PREFIX}_builds_running", "Builds running now.", multiprocess_mode="livesum")
        self.waiting = Gauge(f"{PREFIX}_builds_waiting", "Requests waiting for a build slot now.",
                             multiprocess_mode="livesum")
        self.provider_calls = Counter(f"{PREFIX}_provider_calls", "Model provider calls by provider and outcome "
                                                                  "('ok' or the failure kind).",
                                      ["provider", "outcome"])
        self.provider_seconds = Histogram(f"{PREFIX}_provider_call_seconds", "Duration of one model provider call.",
                                          ["provider"], buckets=CALL_BUCKETS)
        self.provider_tokens = Counter(f"{PREFIX}_provider_tokens", "Model tokens used, by provider and kind "
                                                                    "(prompt or completion).", ["provider", "kind"])
        self.github_calls = Counter(f"{PREFIX}_github_calls", "GitHub API calls by operation and HTTP status.",
                                    ["operation", "status"])
        self.unmet_checks = Counter(f"{PREFIX}_unmet_checks", "Checks still failing when a build was published, "
                                                              "by kind.", ["kind"])
        self.builds_with_unmet_checks = Counter(f"{PREFIX}_builds_with_unmet_checks", "Successful builds published "
                                                                                      "with at least one check "
                                                                                      "still failing.")
        self.notifications = Counter(f"{PREFIX}_notifications", "Builds' notification results "
                                                                "(accepted, failed, none when no evaluation_url).",
                                     ["result"])
        self.notification_attempts = Counter(f"{PREFIX}_notification_attempts", "Single POSTs to evaluation_url by "
                                                                                "outcome.", ["outcome"])


_metrics: _Metrics | None = None
_lock = threading.Lock()


def _get() -> _Metrics:
    """The process's metric objects, created on first use."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _Metrics()
        return _metrics


def _never_raises(function: _F) -> _F:
    """Log and swallow a failure to record: metrics must never break a build."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception:  # a broken metric is not worth a failed request
            log.warning("could not record a metric", exc_info=True, extra={"metric": function.__name__})
            return None

    return cast(_F, wrapper)  # the same signature: ``wraps`` keeps it


def _label(value: object) -> str:
    """A bounded label value."""
    text = str(value) if value not in (None, "") else "none"
    return text[:LABEL_LIMIT]


# Request methods counted under their own label; any other (made-up) method is counted as "other",
# so a client cannot grow /metrics without bound by inventing method names.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"})


def method_label(method: str) -> str:
    """``method`` when it is a standard HTTP method, else "other"."""
    return method if method in KNOWN_METHODS else "other"


@_never_raises
def record_request(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request."""
    metrics = _get()
    metrics.requests.labels(_label(endpoint or "unmatched"), method_label(method), str(status)).inc()
    metrics.request_seconds.labels(_label(endpoint or "unmatched")).observe(seconds)


@_never_raises
def record_build(outcome: str, stage: str = "complete") -> None:
    """One build request's outcome; ``stage`` is the failing stage for errors and rejections."""
    _get().builds.labels(_label(outcome), _label(stage)).inc()


@_never_raises
def record_unmet_checks(unmet: list[Mapping[str, Any]]) -> None:
    """Checks a successful build published while they still failed (the body's ``unmet_checks``), by kind."""
    if not unmet:
        return
    metrics = _get()
    metrics.builds_with_unmet_checks.inc()
    for entry in unmet:
        metrics.unmet_checks.labels(_label(str(entry.get("kind") or "unknown"))).inc()


@_never_raises
def record_stage_timings(timings: Mapping[str, float]) -> None:
    """Every stage duration of one build (the response body's ``timings``)."""
    histogram = _get().stage_seconds
    for stage, seconds in timings.items():
        if isinstance(seconds, (int, float)):
            histogram.labels(_label(stage)).observe(float(seconds))


@_never_raises
def record_tokens(provider: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Tokens one build used at ``provider``."""
    counter = _get().provider_tokens
    if prompt_tokens > 0:
        counter.labels(_label(provider), "prompt").inc(prompt_tokens)
    if completion_tokens > 0:
        counter.labels(_label(provider), "completion").inc(completion_tokens)


@_never_raises
def record_provider_call(provider: str, outcome: str, seconds: float) -> None:
    """One call to a model provider: ``outcome`` is 'ok' or the failure kind (e.g. 'http_429', 'timeout')."""
    metrics = _get()
    metrics.provider_calls.labels(_label(provider), _label(outcome)).inc()
    metrics.provider_seconds.labels(_label(provider)).observe(seconds)


@_never_raises
def record_github_call(operation: str, status: int | str) -> None:
    """One GitHub API call: ``operation`` a fixed name such as 'create_repo', ``status`` the HTTP status."""
    _get().github_calls.labels(_label(operation), _label(status)).inc()


@_never_raises
def record_notification(result: str) -> None:
    """A build's notification result: 'accepted', 'failed' or 'none'."""
    _get().notifications.labels(_label(result)).inc()


@_never_raises
def record_notification_attempt(outcome: str) -> None:
    """One POST to an evaluation_url: 'accepted', 'http_<status>' or the network error's kind."""
    _get().notification_attempts.labels(_label(outcome)).inc()


@_never_raises
def record_response(http_status: int, body: Mapping[str, Any]) -> None:
    """Everything a pipeline answer tells: outcome, stage timings, tokens and the notification."""
    if http_status != 200 or body.get("status") != "success":
        error = body.get("error") or {}
        record_build("error", str(error.get("stage") or "internal"))
        return
    if body.get("replayed"):
        record_build("replayed")
        return
    record_build("success")
    record_unmet_checks(body.get("unmet_checks") or [])
    record_stage_timings(body.get("timings") or {})
    model = body.get("model") or {}
    if model.get("provider"):
        record_tokens(model["provider"], int(model.get("prompt_tokens") or 0),
                      int(model.get("completion_tokens") or 0))
    notified = body.get("notified")
    record_notification("accepted" if notified else ("failed" if "notify" in (body.get("timings") or {}) else "none"))


@contextmanager
def track_running() -> Iterator[None]:
    """Count a build as running while the block runs."""
    with _tracking("running"):
        yield


@contextmanager
def track_waiting() -> Iterator[None]:
    """Count a request as waiting for a build slot while the block runs."""
    with _tracking("waiting"):
        yield


@contextmanager
def _tracking(gauge_name: str) -> Iterator[None]:
    """Raise a gauge for the block; a broken metric only skips the counting."""
    try:
        gauge = getattr(_get(), gauge_name)
        gauge.inc()
    except Exception:
        log.warning("could not record a metric", exc_info=True, extra={"metric": gauge_name})
        gauge = None
    try:
        yield
    finally:
        if gauge is not None:
            gauge.dec()


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process, or of every worker in multiprocess mode."""
    from prometheus_client import (  # why: prometheus_client must load after serving sets its multiprocess folder
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )

    metrics = _get()
    if not metrics.multiprocess_dir:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess  # why: as above, and only in multiprocess mode

    registry = CollectorRegistry()
    # no-untyped-call: prometheus_client's multiprocess module is unannotated
    multiprocess.MultiProcessCollector(registry, path=metrics.multiprocess_dir)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def prepare_multiprocess_dir(path: Path) -> Path:
    """Create ``path`` for multiprocess values and remove a previous run's files, as prometheus_client requires."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn's child_exit hook)."""
    if os.environ.get(MULTIPROC_VARIABLE):
        from prometheus_client import multiprocess  # why: as above, and only in multiprocess mode

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
