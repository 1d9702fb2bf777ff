"""Serving the app: gunicorn's asyncio worker in front of WEB_THREADS threads (``utils.web.asgi_front``),
waitress on Windows; the gunicorn hooks that resume stored builds and stop taking builds on SIGTERM.

Imported only by ``main.serve()``: never on ``import main`` (Vercel and tests import the app without serving it).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from utils import metrics
from utils.config import Config
from utils.web.asgi_front import BufferedWSGIFront

log = logging.getLogger("main")

WORKER_TIMEOUT_MARGIN = 120
WORKER_CONNECTIONS = 1000  # open connections per worker (slow ones included); each costs a coroutine, not a thread
GRACEFUL_MARGIN = 30


def gunicorn_options(app: Flask, config: Config) -> dict[str, Any]:
    """gunicorn settings fit for multi-minute builds and slow clients: asyncio workers, long timeouts, graceful stop."""
    deadline = int(config.deadline_seconds)
    return {
        "bind": [_bind_address(config.host, config.port)],
        "workers": config.web_workers,
        "worker_class": "asgi",  # gunicorn's asyncio worker reads requests; utils/web/asgi_front.py hands whole
        "worker_connections": WORKER_CONNECTIONS,  # ones to WEB_THREADS threads, so slow clients hold no thread
        "timeout": deadline + WORKER_TIMEOUT_MARGIN,  # never kill a worker for a build within its deadline
        "graceful_timeout": deadline + GRACEFUL_MARGIN,  # SIGTERM lets running builds finish
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": config.log_level.lower(),
        "control_socket_disable": True,  # no socket under $HOME (read-only or missing in containers)
        "worker_tmp_dir": "/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
        "child_exit": _child_exit,
        "post_worker_init": lambda _worker: _start_queue(app),
    }


def _bind_address(host: str, port: int) -> str:
    """``host:port``, bracketing an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _child_exit(_server: Any, worker: Any) -> None:
    """gunicorn hook: forget a dead worker's live gauges."""
    metrics.mark_process_dead(worker.pid)


def _start_queue(app: Flask) -> None:
    """gunicorn hook (post_worker_init): resume stored builds at once, and on SIGTERM stop taking builds first."""
    worker = app.extensions["deploy"].worker
    worker.ensure_started()
    gunicorn_handler = signal.getsignal(signal.SIGTERM)

    def stop_then_exit(signum: int, frame: Any) -> None:
        worker.stop()
        if callable(gunicorn_handler):
            gunicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, stop_then_exit)


def _use_multiprocess_metrics(config: Config) -> None:
    """With several workers, have every worker write metrics to one directory (before prometheus_client loads)."""
    directory = os.environ.get(metrics.MULTIPROC_VARIABLE)
    if not directory and config.web_workers == 1:
        return
    path = Path(directory) if directory else (config.data_dir / "prometheus").resolve()
    os.environ[metrics.MULTIPROC_VARIABLE] = str(metrics.prepare_multiprocess_dir(path))
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client was imported before multiprocess mode was set; /metrics shows one worker")


def serve_app(app: Flask, config: Config) -> None:
    """Run ``app`` under gunicorn (waitress on Windows) on HOST:PORT."""
    log.info("serving", extra={"bind": _bind_address(config.host, config.port), "workers": config.web_workers,
                               "threads": config.web_threads, "deadline_seconds": config.deadline_seconds})
    if sys.platform == "win32":
        import waitress  # why: waitress serves only on Windows

        app.extensions["deploy"].worker.ensure_started()
        waitress.serve(app, host=config.host, port=config.port, threads=config.web_threads,
                       channel_timeout=int(config.deadline_seconds) + WORKER_TIMEOUT_MARGIN)
        return
    _use_multiprocess_metrics(config)
    _gunicorn_application(app, gunicorn_options(app, config), config).run()


def _gunicorn_application(wsgi: Flask, options: Mapping[str, Any], config: Config) -> Any:
    """A gunicorn application serving ``wsgi`` behind the buffering ASGI front, configured from Python only."""
    from gunicorn.app.base import BaseApplication  # why: gunicorn is loaded only to serve, never on import main

    class Application(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type information
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> BufferedWSGIFront:  # in each worker, after the fork: its own thread pool
            return BufferedWSGIFront(wsgi, threads=config.web_threads, max_body_bytes=config.max_request_bytes)

    return Application()
