"""The HTTP service: app factory, routes, one JSON error handler, and ``serve()``.

``import main`` must work with no environment at all and stay quick (Vercel and
gunicorn import it): heavy clients are created on first use. Never logs request
bodies, secrets or attachment contents.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import uuid
from pathlib import Path

from flask import Flask, Response, g, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

from utils import logs
from utils.config import Config, load_config
from utils.deadline import Deadline
from utils.errors import NotConfigured, PipelineError
from utils.publishers.local_web import create_local_blueprint

log = logging.getLogger("main")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask app for ``config`` (default: the environment and ``.env``)."""
    config = config or load_config()
    logs.configure_logging(config.secret_values())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.extensions["deploy"] = _Runtime(config)
    app.register_blueprint(create_local_blueprint(config.data_dir / "repos"))
    _register_routes(app)
    _register_error_handlers(app)
    _log_configuration(config)
    return app


class _Runtime:
    """The app's config and its lazily built pipeline services (ledger, model client, publisher)."""

    def __init__(self, config: Config):
        self.config = config
        self._services = None
        self._lock = threading.Lock()

    def services(self):
        """Build the pipeline's collaborators on first use."""
        with self._lock:
            if self._services is None:
                from utils.pipeline import build_services

                self._services = build_services(self.config)
            return self._services


def _register_routes(app: Flask) -> None:
    runtime: _Runtime = app.extensions["deploy"]

    @app.before_request
    def assign_request_id() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        g.log_token = logs.request_id.set(g.request_id)

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    @app.teardown_request
    def forget_request_id(_exc) -> None:
        if "log_token" in g:
            logs.request_id.reset(g.log_token)

    @app.get("/health")
    def health():
        return jsonify(status="healthy")

    @app.get("/ready")
    def ready():
        missing = runtime.config.missing_for_serving()
        if missing:
            return jsonify(status="not ready", missing=missing), 503
        return jsonify(status="ready", publisher=runtime.config.publisher_name)

    @app.post("/api-endpoint")
    def api_endpoint():
        deadline = Deadline(runtime.config.deadline_seconds)
        return _serve_build(runtime, deadline)

    @app.get("/")
    def dashboard():
        return render_template_string(_DASHBOARD, config=runtime.config, builds=_recent_builds(runtime),
                                      missing=runtime.config.missing_for_serving())


def _serve_build(runtime: _Runtime, deadline: Deadline):
    """Validate, decode and build one request; answer with the pipeline's outcome."""
    from utils import pipeline
    from utils.attachments import decode_attachments
    from utils.validation import parse_body, validate_request

    config = runtime.config
    missing = config.missing_for_serving()
    if missing:
        raise NotConfigured("the service is not configured: set " + " and ".join(missing), field=missing[0])
    body = parse_body(request.get_data(cache=False), config.max_request_bytes)
    task_request = validate_request(body, config.secret)
    attachments = decode_attachments(task_request.attachments, max_count=config.max_attachments,
                                     max_total_bytes=config.max_attachment_bytes)
    log.info("request accepted", extra={"stage": "validate", "task": task_request.task,
                                        "round": task_request.round, "attachments": len(attachments.files)})
    outcome = pipeline.run(task_request, attachments, runtime.services(),
                           public_url=config.public_url or request.host_url.rstrip("/"),
                           deadline=deadline, request_id=g.request_id)
    return jsonify(outcome.body), outcome.http_status


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


def _recent_builds(runtime: _Runtime) -> list:
    """Recent ledger rows for the dashboard; empty if the ledger does not exist yet."""
    if not (runtime.config.data_dir / "ledger.sqlite3").exists():
        return []
    return runtime.services().ledger.recent(20)


def _log_configuration(config: Config) -> None:
    """One log line saying what the service has and what it is missing."""
    missing = config.missing_for_serving()
    extra = {"publisher": config.publisher_name, "providers": [p.name for p in config.providers],
             "data_dir": str(config.data_dir), "problems": list(config.problems)}
    if missing:
        log.warning("configuration incomplete: set " + ", ".join(missing), extra=extra)
    else:
        log.info("configuration ready", extra=extra)


_DASHBOARD = (Path(__file__).parent / "utils" / "dashboard.html").read_text(encoding="utf-8")

app = create_app()


def serve(config: Config | None = None) -> None:
    """Run the app under gunicorn (waitress on Windows) with settings fit for long builds."""
    config = config or app.extensions["deploy"].config
    if sys.platform == "win32":
        import waitress

        waitress.serve(app, host=config.host, port=config.port, threads=8, channel_timeout=config.deadline_seconds + 60)
        return
    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            options = {"bind": f"{config.host}:{config.port}", "workers": 1, "threads": 8,
                       "worker_class": "gthread", "timeout": int(config.deadline_seconds) + 120,
                       "graceful_timeout": int(config.deadline_seconds), "accesslog": None}
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    _Gunicorn().run()


if __name__ == "__main__":
    serve()
