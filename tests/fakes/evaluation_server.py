"""A fake evaluation receiver: records every notification and can fail the first N.

Runs as a real HTTP server on loopback (see tests/fakes/server.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Flask, jsonify, request

from tests.fakes.server import LocalServer


class EvaluationReceiver(LocalServer):
    """Records JSON payloads POSTed to /notify; answers ``fail_status`` to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500,
                 on_receive: Callable[[dict], None] | None = None):
        self.on_receive = on_receive
        self.payloads: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.fail_status = fail_status
        self._lock = threading.Lock()
        super().__init__(self._app())
        self.notify_url = f"{self.url}/notify"

    def _app(self) -> Flask:
        app = Flask("evaluation_receiver")

        @app.post("/notify")
        def receive():
            with self._lock:
                self.attempts += 1
                if self.attempts <= self.fail_first:
                    return jsonify(error="scripted failure"), self.fail_status
                payload = request.get_json(force=True)
                if self.on_receive:
                    self.on_receive(payload)
                self.payloads.append(payload)
            return jsonify(status="received")

        return app
