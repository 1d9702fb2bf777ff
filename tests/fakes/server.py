"""Run a WSGI app (a fake upstream service) on a real loopback port in a background thread.

Fakes are real HTTP servers so the service's own HTTP clients are exercised;
they bind to 127.0.0.1 only and never reach the internet.
"""

from __future__ import annotations

import threading
from typing import Self

from werkzeug.serving import make_server


class LocalServer:
    """A threaded werkzeug server on 127.0.0.1 with a free port; use as a context manager."""

    def __init__(self, wsgi_app):
        self._server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=lambda: self._server.serve_forever(poll_interval=0.05),
                                        daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

