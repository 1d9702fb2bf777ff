"""A fake evaluation receiver: records every notification, answering its first attempts with scripted faults.

Runs as a real HTTP server on loopback (see tests/fakes/server.py). Attempt N
is answered with ``faults[N-1]`` (from tests/fakes/faults.py), later attempts are
accepted. ``Disconnect`` and ``Fail`` refuse the notification; ``Delay`` waits
(outside the lock, so other attempts are not blocked) and then answers its
``then`` or accepts; ``Malformed`` and ``WrongShape`` accept the notification
but garble the answer. A ``Fail`` with ``retry_after`` acts like a real rate
limiter: any attempt before that many seconds have passed is refused with 429
and counted in ``early_attempts``.

Never reaches the internet; never blocks one attempt on another's delay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask, Response, request

from tests.fakes.faults import Delay, Fail, Fault, Malformed, WrongShape, fault_response, json_response
from tests.fakes.server import LocalServer


class EvaluationReceiver(LocalServer):
    """Records JSON payloads POSTed to /notify; answers the first ``len(faults)`` attempts with ``faults``."""

    def __init__(self, faults: Sequence[Fault] = (), on_receive: Callable[[dict], None] | None = None):
        self.faults = list(faults)
        self.on_receive = on_receive
        self.payloads: list[dict] = []
        self.attempts = 0
        self.early_attempts = 0
        self._blocked_until = 0.0
        self._retry_after: float | None = None
        self._lock = threading.Lock()
        super().__init__(self._app())
        self.notify_url = f"{self.url}/notify"

    def _next(self) -> Fault | None:
        """Count this attempt and pick its fault: a rate-limit refusal, the scripted fault, or None (accept)."""
        with self._lock:
            self.attempts += 1
            if time.monotonic() < self._blocked_until:
                self.early_attempts += 1
                return Fail(429, retry_after=self._retry_after)
            fault = self.faults[self.attempts - 1] if self.attempts <= len(self.faults) else None
            if isinstance(fault, Fail) and fault.retry_after is not None:
                self._blocked_until = time.monotonic() + fault.retry_after
                self._retry_after = fault.retry_after
            return fault

    def _app(self) -> Flask:
        app = Flask("evaluation_receiver")

        @app.post("/notify")
        def receive() -> Response:
            fault = self._next()
            if isinstance(fault, Delay):
                time.sleep(fault.seconds)
                fault = fault.then
            if fault is not None and not isinstance(fault, (Malformed, WrongShape)):
                return fault_response(fault, request.environ, _error_body)
            payload = request.get_json(force=True)
            with self._lock:
                self.payloads.append(payload)  # received, whatever ``on_receive`` then does to the sender
            if self.on_receive:
                self.on_receive(payload)
            if fault is not None:
                return fault_response(fault, request.environ, _error_body)
            return json_response({"status": "received"})

        return app


def _error_body(status: int, message: str | None) -> dict[str, Any]:
    """The receiver's error body."""
    return {"error": message or "scripted failure"}
