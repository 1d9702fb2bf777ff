"""A fake evaluation receiver: records every notification and can fail, rate-limit, stall or drop the first N.

Runs as a real HTTP server on loopback (see tests/fakes/server.py). Faults apply
to attempts in this order: ``drop_first`` (connection closed, no answer), then
``delay_first`` (answer only after ``delay_seconds``, outside the lock so other
attempts are not blocked), then ``fail_first`` (``fail_status``; with
``retry_after`` the answer carries ``Retry-After`` and, like a real rate limiter,
any attempt before that many seconds have passed is refused with 429 too).
Successful answers carry ``reply`` as their body (default: a small JSON object).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flask import Flask, Response, jsonify, request

from tests.fakes.server import LocalServer, shut_connection


class EvaluationReceiver(LocalServer):
    """Records JSON payloads POSTed to /notify; answers ``fail_status`` to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500,
                 on_receive: Callable[[dict], None] | None = None, *, retry_after: float | None = None,
                 delay_first: int = 0, delay_seconds: float = 0.0, drop_first: int = 0,
                 reply: str | None = None):
        self.on_receive = on_receive
        self.payloads: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.delay_first = delay_first
        self.delay_seconds = delay_seconds
        self.drop_first = drop_first
        self.reply = reply
        self.early_attempts = 0
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        super().__init__(self._app())
        self.notify_url = f"{self.url}/notify"

    def _plan(self) -> str:
        """Count this attempt and decide what to do with it: drop, delay, limit, fail or accept."""
        with self._lock:
            self.attempts += 1
            n = self.attempts
            if n <= self.drop_first:
                return "drop"
            n -= self.drop_first
            if n <= self.delay_first:
                return "delay"
            if time.monotonic() < self._blocked_until:
                self.early_attempts += 1
                return "limit"
            if n - self.delay_first <= self.fail_first:
                if self.retry_after is not None:
                    self._blocked_until = time.monotonic() + self.retry_after
                return "fail"
            return "accept"

    def _app(self) -> Flask:
        app = Flask("evaluation_receiver")

        @app.post("/notify")
        def receive():
            plan = self._plan()
            if plan == "drop":
                return _drop()
            if plan == "delay":
                time.sleep(self.delay_seconds)
            if plan in ("fail", "limit"):
                status = 429 if plan == "limit" else self.fail_status
                headers = {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
                return jsonify(error="scripted failure"), status, headers
            payload = request.get_json(force=True)
            with self._lock:
                self.payloads.append(payload)  # received, whatever ``on_receive`` then does to the sender
            if self.on_receive:
                self.on_receive(payload)
            if self.reply is not None:
                return Response(self.reply, 200, mimetype="text/html")
            return jsonify(status="received")

        return app


def _drop() -> Response:
    """Close the connection without an answer."""
    shut_connection(request.environ)
    return Response(b"", status=500)
