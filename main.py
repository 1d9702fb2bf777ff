"""The HTTP service: app factory, routes, one JSON error handler, and ``serve()``.

``import main`` must work with no environment at all and stay quick (Vercel and
gunicorn import it): heavy clients are created on first use. ``python main.py``
runs ``serve()`` (``utils.web.serving``: gunicorn's asyncio worker in front of
WEB_THREADS threads, waitress on Windows).

The routes validate requests and hand builds to ``utils.jobs.runtime`` (build
slots, inline or background builds); the dashboard's view is ``utils.web.dashboard``.

Never logs request bodies, secrets or attachment contents.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from flask import Flask, Response, g, jsonify, render_template_string, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from utils import logs, metrics
from utils.config import Config, load_config
from utils.deadline import Deadline
from utils.errors import NotConfigured, PipelineError, SecretMismatch
from utils.jobs.job import BuildJob
from utils.jobs.runtime import Runtime
from utils.web import build_page as build_view
from utils.web import dashboard as dashboard_view
from utils.web import security as web_security
from utils.web.local_pages import create_local_blueprint
from utils.web.sessions import configure_sessions, create_session_blueprint, signed_in

if TYPE_CHECKING:
    from utils.records import Attachments, TaskRequest

log = logging.getLogger("main")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask app for ``config`` (default: the environment and ``.env``, with platform defaults)."""
    if config is None:
        config = load_config()
    logs.configure_logging(config.secret_values(), config.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    if config.trusted_proxy_hops:  # remote_addr from X-Forwarded-For (Vercel's runtime already does this)
        # method-assign: wrapping wsgi_app is how Flask's docs apply ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxy_hops)  # type: ignore[method-assign]
    app.extensions["deploy"] = Runtime(config)

    app.register_blueprint(create_local_blueprint(config.data_dir / "repos"))
    configure_sessions(app, config.secret, config.public_url, framed=bool(config.frame_ancestor))
    app.register_blueprint(create_session_blueprint(app.extensions["deploy"]))
    _register_hooks(app)
    _register_routes(app)
    _register_error_handlers(app)
    _log_configuration(config)
    return app


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
        web_security.add_isolation_headers(response, generated_app=request.path.startswith("/pages/"),
                                           frame_ancestor=app.extensions["deploy"].config.frame_ancestor)
        metrics.record_request(request.endpoint, request.method, response.status_code,
                               time.monotonic() - g.get("started", time.monotonic()))
        return response

    @app.teardown_request
    def forget_request_id(_exc: BaseException | None) -> None:
        if "log_token" in g:
            logs.request_id.reset(g.log_token)


def _register_routes(app: Flask) -> None:
    runtime: Runtime = app.extensions["deploy"]

    @app.get("/health")
    def health():
        return jsonify(status="healthy")

    @app.get("/ready")
    def ready():
        missing = runtime.config.missing_for_serving()
        if missing:
            return jsonify(status="not ready", missing=missing), 503
        store, problem = runtime.store_status()
        if problem:
            return jsonify(status="not ready", missing=[], store=store), 503
        return jsonify(status="ready", publisher=runtime.config.publisher_name,
                       response_mode=runtime.config.response_mode, store=store)

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
        context = dashboard_view.context(runtime.config, runtime.slots, lambda: runtime.services().store,
                                    include_builds=signed_in())
        return render_template_string(dashboard_view.TEMPLATE, **context)

    @app.get("/builds/<path:nonce>")
    def build_page(nonce: str):
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return _build_status(runtime, nonce)
        if not signed_in():  # nonces, checks and screenshots are for those who know the secret (issue 16)
            return jsonify(status="error", error={"stage": "dashboard",
                                                  "message": "sign in on the dashboard (GET /) to see builds"}), 403
        if nonce.endswith("/screenshot.png"):
            png = runtime.services().store.screenshot(nonce.removesuffix("/screenshot.png"))
            if png is None:
                return jsonify(status="error", error={"stage": "dashboard", "message": "no screenshot"}), 404
            return Response(png, mimetype="image/png", headers={"Cache-Control": "no-cache"})
        context = build_view.build_context(runtime.services().store, nonce)
        if context is None:
            return jsonify(status="error", error={"stage": "dashboard", "message": "no build with this nonce"}), 404
        return render_template_string(build_view.TEMPLATE, **context, root=url_for("dashboard"),
                                      screenshot_url=url_for("build_page", nonce=nonce + "/screenshot.png"))


def _build_status(runtime: Runtime, nonce: str):
    """The build as JSON for ``Authorization: Bearer <SECRET>``; a wrong secret counts like one at /api-endpoint."""
    from utils.intake.validation import check_secret  # why: import time, as in _validated_request

    if not runtime.config.secret:
        raise NotConfigured("the service is not configured: set SECRET", field="SECRET")
    try:
        check_secret({"secret": request.headers["Authorization"].removeprefix("Bearer ")}, runtime.config.secret)
    except SecretMismatch:
        runtime.secret_failures.record(request.remote_addr or "unknown")
        raise
    status = build_view.build_status(runtime.services().store, nonce)
    if status is None:
        return jsonify(status="error", error={"stage": "builds", "message": "no build with this nonce"}), 404
    return jsonify(status)


def _serve_build(runtime: Runtime, deadline: Deadline):
    """Validate the request, then let the runner build it inline or in the background."""
    try:
        task_request, attachments = _validated_request_from_client(runtime)
    except PipelineError as exc:
        metrics.record_build("rejected", exc.stage)
        raise
    job = BuildJob(task_request, attachments, deadline, g.request_id,
                   public_url=runtime.config.public_url or _own_base_url())
    outcome = runtime.submit(job, early=_wants_early(runtime.config))
    response = jsonify(outcome.body)
    if outcome.body.get("status") == "accepted" and _prefers_async():
        response.headers["Preference-Applied"] = "respond-async"
    return response, outcome.http_status


def _own_base_url() -> str:
    """This server's own address, for links when PUBLIC_URL is unset: never the client-chosen Host header."""
    host = request.environ.get("SERVER_NAME") or "localhost"
    if host in ("0.0.0.0", "::", "[::]"):  # bound to every interface: name this machine as its users do locally
        host = "localhost"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = str(request.environ.get("SERVER_PORT") or "")
    default_port = {"http": "80", "https": "443"}.get(request.scheme, "")
    return f"{request.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


def _validated_request_from_client(runtime: Runtime) -> tuple[TaskRequest, Attachments]:
    """The validated request; a wrong secret is counted for its client address (429 past the limit)."""
    try:
        return _validated_request(runtime.config)
    except SecretMismatch:
        runtime.secret_failures.record(request.remote_addr or "unknown")
        raise


def _validated_request(config: Config) -> tuple[TaskRequest, Attachments]:
    """The validated request and its decoded attachments; raises a 4xx/503 PipelineError."""
    from utils.intake.attachments import decode_attachments  # why: import time (filetype, mimetypes' tables)
    from utils.intake.validation import parse_body, validate_request  # why: as above, on the first build request

    missing = config.missing_for_serving()
    if missing:
        raise NotConfigured("the service is not configured: set " + " and ".join(missing), field=missing[0])
    body = parse_body(request.get_data(cache=False), config.max_request_bytes)  # bounded: utils/intake/json_limits
    task_request = validate_request(body, config.secret)  # the secret first, then the fields
    attachments = decode_attachments(task_request.attachments, max_count=config.max_attachments,
                                     max_total_bytes=config.max_attachment_bytes)
    log.info("request accepted", extra={"stage": "validate", "task": task_request.task,
                                        "round": task_request.round, "attachments": len(attachments.files)})
    return task_request, attachments


def _wants_early(config: Config) -> bool:
    """True for RESPONSE_MODE=early or a ``Prefer: respond-async`` request header (RFC 7240)."""
    return config.response_mode == "early" or _prefers_async()


def _prefers_async() -> bool:
    """True when the request carries ``Prefer: respond-async``."""
    preferences = {token.strip().lower() for part in request.headers.getlist("Prefer")
                   for token in re.split(r"[,;]", part)}
    return "respond-async" in preferences


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(PipelineError)
    def pipeline_error(error: PipelineError):
        log.warning("request failed", extra={"stage": error.stage, "http_status": error.status,
                                             "error": error.message})
        response = jsonify(error.to_body())
        response.status_code = error.status
        if retry_after := getattr(error, "retry_after", None):
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        message = error.description or error.name
        if error.code == 413:
            message = f"request body is larger than the limit of {request.max_content_length} bytes"
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
    # what is missing is a problem too, so the line never says "incomplete" next to "problems": []
    problems = [f"{name} is not set" for name in missing] + list(config.problems)
    extra = {"publisher": config.publisher_name, "providers": [p.name for p in config.providers],
             "data_dir": str(config.data_dir), "response_mode": config.response_mode,
             "max_concurrent_builds": config.max_concurrent_builds, "missing": missing, "problems": problems}
    if missing:
        log.warning("configuration incomplete: set " + " and ".join(missing)
                    + " (`uv run check_config.py` says how)", extra=extra)
    else:
        log.info("configuration ready", extra=extra)
    if slots_warning := config.slots_warning():
        log.warning(slots_warning, extra={"web_threads": config.web_threads})


app = create_app()


def serve(config: Config | None = None) -> None:
    """Run the app under gunicorn (waitress on Windows) on HOST:PORT."""
    from utils.web.serving import serve_app  # why: import time (the serving front loads asyncio and a2wsgi)

    serve_app(app, config or app.extensions["deploy"].config)


if __name__ == "__main__":
    serve()
