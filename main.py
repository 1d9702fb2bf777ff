"""The HTTP service: app factory, routes, one JSON error handler, build slots, and ``serve()``.

``import main`` must work with no environment at all and stay quick (Vercel and
gunicorn import it): heavy clients are created on first use. ``python main.py``
runs ``serve()``: gunicorn with threaded workers (waitress on Windows).

Builds run inline (the default) or, with ``RESPONSE_MODE=early`` or a
``Prefer: respond-async`` header, in a background thread of the same worker
after a 200 ``accepted`` answer. Either way at most ``MAX_CONCURRENT_BUILDS``
builds run at once per process; extra requests wait up to
``BUILD_QUEUE_SECONDS`` for a slot, then get 503 with ``Retry-After``.

Never logs request bodies, secrets or attachment contents.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from utils import logs, metrics
from utils.config import Config, load_config
from utils.deadline import Deadline
from utils.errors import BuildsSaturated, NotConfigured, PipelineError, SecretMismatch
from utils.intake.secret_failures import SecretFailures

if TYPE_CHECKING:
    from utils.models import Attachments, TaskRequest
    from utils.build.pipeline import Outcome

log = logging.getLogger("main")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
VERCEL_DATA_DIR = Path("/tmp/data")
VERCEL_DEADLINE_SECONDS = 280.0  # vercel.json's maxDuration (300 s) less a margin to answer
WORKER_TIMEOUT_MARGIN = 120
GRACEFUL_MARGIN = 30


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask app for ``config`` (default: the environment and ``.env``, with platform defaults)."""
    if config is None:
        config = platform_defaults(load_config(), os.environ)
    logs.configure_logging(config.secret_values(), config.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    if config.trusted_proxy_hops:  # remote_addr from X-Forwarded-For (Vercel's runtime already does this)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxy_hops)  # type: ignore[method-assign]
    app.extensions["deploy"] = _Runtime(config)
    from utils.publishers.local_web import create_local_blueprint

    app.register_blueprint(create_local_blueprint(config.data_dir / "repos"))
    _register_hooks(app)
    _register_routes(app)
    _register_error_handlers(app)
    _log_configuration(config)
    return app


def platform_defaults(config: Config, environ: Mapping[str, str]) -> Config:
    """On Vercel (``VERCEL`` set): DATA_DIR under /tmp and a deadline that fits maxDuration, unless set."""
    if not environ.get("VERCEL"):
        return config
    changes: dict[str, Any] = {}
    if not environ.get("DATA_DIR"):
        changes["data_dir"] = VERCEL_DATA_DIR
    if not environ.get("DEADLINE_SECONDS"):
        changes["deadline_seconds"] = VERCEL_DEADLINE_SECONDS
    return dataclasses.replace(config, **changes)


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


class _Runtime:
    """The app's config, its build slots, its wrong-secret counter and its lazily built pipeline services."""

    def __init__(self, config: Config):
        self.config = config
        self.slots = create_slots(config)
        self.secret_failures = SecretFailures(config.secret_failures_limit, config.secret_failures_window_seconds)
        self._services = None
        self._lock = threading.Lock()

    def services(self):
        """Build the pipeline's collaborators (ledger, model client, publisher) on first use."""
        with self._lock:
            if self._services is None:
                from utils.build.pipeline import build_services

                self._services = build_services(self.config)
            return self._services


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        g.log_token = logs.request_id.set(g.request_id)
        g.started = time.monotonic()

    @app.after_request
    def finish_response(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        metrics.record_request(request.endpoint, request.method, response.status_code,
                               time.monotonic() - g.get("started", time.monotonic()))
        return response

    @app.teardown_request
    def forget_request_id(_exc: BaseException | None) -> None:
        if "log_token" in g:
            logs.request_id.reset(g.log_token)


def _register_routes(app: Flask) -> None:
    runtime: _Runtime = app.extensions["deploy"]

    @app.get("/health")
    def health():
        return jsonify(status="healthy")

    @app.get("/ready")
    def ready():
        missing = runtime.config.missing_for_serving()
        if missing:
            return jsonify(status="not ready", missing=missing), 503
        return jsonify(status="ready", publisher=runtime.config.publisher_name,
                       response_mode=runtime.config.response_mode)

    @app.get("/metrics")
    def metrics_endpoint():
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    @app.post("/api-endpoint")
    def api_endpoint():
        deadline = Deadline(runtime.config.deadline_seconds)
        return _serve_build(runtime, deadline)

    @app.get("/")
    def dashboard():
        from utils import dashboard

        context = dashboard.context(runtime.config, runtime.slots, lambda: runtime.services().ledger)
        return render_template_string(dashboard.TEMPLATE, **context)


def _serve_build(runtime: _Runtime, deadline: Deadline):
    """Validate, take a build slot, then build inline or in the background."""
    config = runtime.config
    try:
        task_request, attachments = _validated_request_from_client(runtime)
        early = _wants_early(config)
        if early:
            _refuse_conflicting_nonce(runtime, task_request)
        runtime.slots.acquire()
    except PipelineError as exc:
        metrics.record_build("rejected", exc.stage)
        raise
    job = _BuildJob(runtime, task_request, attachments, deadline, g.request_id,
                    public_url=config.public_url or request.host_url.rstrip("/"))
    if early:
        _start_in_background(job, release=runtime.slots.release)
        return _accepted(task_request, g.request_id)
    try:
        outcome = job.run()
    finally:
        runtime.slots.release()
    return jsonify(outcome.body), outcome.http_status


def _validated_request_from_client(runtime: _Runtime) -> tuple[TaskRequest, Attachments]:
    """The validated request, unless its client address sent too many wrong secrets (429, body unread)."""
    address = request.remote_addr or "unknown"
    runtime.secret_failures.refuse_if_limited(address)
    try:
        return _validated_request(runtime.config)
    except SecretMismatch:
        runtime.secret_failures.record(address)
        raise


def _validated_request(config: Config) -> tuple[TaskRequest, Attachments]:
    """The validated request and its decoded attachments; raises a 4xx/503 PipelineError."""
    from utils.intake.attachments import decode_attachments
    from utils.intake.validation import parse_body, validate_request

    missing = config.missing_for_serving()
    if missing:
        raise NotConfigured("the service is not configured: set " + " and ".join(missing), field=missing[0])
    body = parse_body(request.get_data(cache=False), config.max_request_bytes)
    task_request = validate_request(body, config.secret)
    attachments = decode_attachments(task_request.attachments, max_count=config.max_attachments,
                                     max_total_bytes=config.max_attachment_bytes)
    log.info("request accepted", extra={"stage": "validate", "task": task_request.task,
                                        "round": task_request.round, "attachments": len(attachments.files)})
    return task_request, attachments


def _wants_early(config: Config) -> bool:
    """True for RESPONSE_MODE=early or a ``Prefer: respond-async`` request header (RFC 7240)."""
    preferences = {token.strip().lower() for part in request.headers.getlist("Prefer")
                   for token in re.split(r"[,;]", part)}
    return config.response_mode == "early" or "respond-async" in preferences


@dataclasses.dataclass
class _BuildJob:
    """One pipeline run with everything it needs from the request, so it can leave the request thread."""

    runtime: _Runtime
    task_request: TaskRequest
    attachments: Attachments
    deadline: Deadline
    request_id: str
    public_url: str

    def run(self) -> Outcome:
        """Run the pipeline and record its outcome in the metrics."""
        from utils.build import pipeline

        with metrics.track_running():
            try:
                outcome = pipeline.run(self.task_request, self.attachments, self.runtime.services(),
                                       public_url=self.public_url, deadline=self.deadline,
                                       request_id=self.request_id)
            except PipelineError as exc:
                metrics.record_build("error", exc.stage)
                raise
            except Exception:
                metrics.record_build("error", "internal")
                raise
        metrics.record_response(outcome.http_status, outcome.body)
        return outcome


def _refuse_conflicting_nonce(runtime: _Runtime, task_request: TaskRequest) -> None:
    """Raise NonceConflict (409) now, not in the background, if the nonce belongs to another request."""
    from utils.store.ledger import check_same_request

    row = runtime.services().ledger.get(task_request.nonce)
    if row is not None:
        check_same_request(row, task_request)


def _start_in_background(job: _BuildJob, release: Callable[[], None]) -> None:
    """Run ``job`` in a non-daemon thread (so a graceful shutdown waits for it); release the slot after."""
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome = job.run()
            log.info("background build finished", extra={"stage": "done", "http_status": outcome.http_status})
        except PipelineError as exc:
            log.warning("background build failed", extra={"stage": exc.stage, "http_status": exc.status,
                                                          "error": exc.message})
        except Exception:
            log.exception("background build failed unexpectedly", extra={"stage": "internal"})
        finally:
            release()

    thread = threading.Thread(target=context.run, args=(target,), name=f"build-{job.request_id}", daemon=False)
    try:
        thread.start()
    except BaseException:
        release()
        raise


def _accepted(task_request: TaskRequest, request_id: str) -> tuple[Response, int]:
    """The early answer: the build was validated and runs in the background."""
    metrics.record_build("accepted", "validate")
    response = jsonify(status="accepted", task=task_request.task, round=task_request.round,
                       nonce=task_request.nonce, request_id=request_id,
                       message="building in the background; the result goes to evaluation_url "
                               "and appears on the dashboard (GET /)")
    if "respond-async" in request.headers.get("Prefer", "").lower():
        response.headers["Preference-Applied"] = "respond-async"
    return response, 200


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(PipelineError)
    def pipeline_error(error: PipelineError):
        log.warning("request failed", extra={"stage": error.stage, "http_status": error.status,
                                             "error": error.message})
        response = jsonify(error.to_body())
        response.status_code = error.status
        if getattr(error, "retry_after", None):
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        message = error.description or error.name
        if error.code == 413:
            message = f"request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes"
        response = jsonify(status="error", error={"stage": "http", "message": message})
        response.status_code = error.code or 500
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("unexpected error", extra={"stage": "internal"})
        return jsonify(status="error", error={"stage": "internal",
                                              "message": "unexpected error; see the service log"}), 500


def _log_configuration(config: Config) -> None:
    """One log line saying what the service has and what it is missing."""
    missing = config.missing_for_serving()
    extra = {"publisher": config.publisher_name, "providers": [p.name for p in config.providers],
             "data_dir": str(config.data_dir), "response_mode": config.response_mode,
             "max_concurrent_builds": config.max_concurrent_builds, "problems": list(config.problems)}
    if missing:
        log.warning("configuration incomplete: set " + ", ".join(missing), extra=extra)
    else:
        log.info("configuration ready", extra=extra)
    if config.max_concurrent_builds >= config.web_threads:
        log.warning("MAX_CONCURRENT_BUILDS >= WEB_THREADS: running builds can take every thread and /health "
                    "will wait; raise WEB_THREADS", extra={"web_threads": config.web_threads})


app = create_app()


# --- serving -----------------------------------------------------------------------------------------------------


def gunicorn_options(config: Config) -> dict[str, Any]:
    """gunicorn settings fit for multi-minute builds: threaded workers, long timeouts, graceful stop."""
    deadline = int(config.deadline_seconds)
    return {
        "bind": [_bind_address(config.host, config.port)],
        "workers": config.web_workers,
        "threads": config.web_threads,
        "worker_class": "gthread",  # threads keep /health answering while builds block
        "timeout": deadline + WORKER_TIMEOUT_MARGIN,  # never kill a worker for a build within its deadline
        "graceful_timeout": deadline + GRACEFUL_MARGIN,  # SIGTERM lets running builds finish
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": config.log_level.lower(),
        "control_socket_disable": True,  # no socket under $HOME (read-only or missing in containers)
        "worker_tmp_dir": "/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
        "child_exit": _child_exit,
    }


def _bind_address(host: str, port: int) -> str:
    """``host:port``, bracketing an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _child_exit(_server: Any, worker: Any) -> None:
    """gunicorn hook: forget a dead worker's live gauges."""
    metrics.mark_process_dead(worker.pid)


def _use_multiprocess_metrics(config: Config) -> None:
    """With several workers, have every worker write metrics to one directory (before prometheus_client loads)."""
    directory = os.environ.get(metrics.MULTIPROC_VARIABLE)
    if not directory and config.web_workers == 1:
        return
    path = Path(directory) if directory else (config.data_dir / "prometheus").resolve()
    os.environ[metrics.MULTIPROC_VARIABLE] = str(metrics.prepare_multiprocess_dir(path))
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client was imported before multiprocess mode was set; /metrics shows one worker")


def serve(config: Config | None = None) -> None:
    """Run the app under gunicorn (waitress on Windows) on HOST:PORT."""
    config = config or app.extensions["deploy"].config
    log.info("serving", extra={"bind": _bind_address(config.host, config.port), "workers": config.web_workers,
                               "threads": config.web_threads, "deadline_seconds": config.deadline_seconds})
    if sys.platform == "win32":
        import waitress

        waitress.serve(app, host=config.host, port=config.port, threads=config.web_threads,
                       channel_timeout=int(config.deadline_seconds) + WORKER_TIMEOUT_MARGIN)
        return
    _use_multiprocess_metrics(config)
    _gunicorn_application(app, gunicorn_options(config)).run()


def _gunicorn_application(wsgi: Flask, options: Mapping[str, Any]):
    """A gunicorn application serving ``wsgi`` with ``options``, configured from Python only (no argv)."""
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Flask:
            return wsgi

    return Application()


if __name__ == "__main__":
    serve()
