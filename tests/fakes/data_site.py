"""A fake public data site for build-time fetches, and a listener that only counts connections.

``DataSite`` serves named documents (JSON, CSV, anything) on loopback, like a
public API would: a document can require a User-Agent with a contact address
(as the SEC does: 403 without one), answer with a fault from
``tests/fakes/faults.py`` (``Fail``, ``Delay``, ``Disconnect``...), drip its body
slowly, or redirect elsewhere. Every request is recorded with its headers.

``ConnectionCounter`` accepts TCP connections and counts them, answering
nothing useful: a fetch refused by the SSRF policy must leave its count at 0.

Never reaches the internet (binds to 127.0.0.1).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask import Flask, Response, redirect, request

from tests.fakes.faults import Delay, Fault, fault_response
from tests.fakes.server import LocalServer

CONTACT = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


@dataclass
class Document:
    """What the site answers at one path."""

    body: bytes = b""
    content_type: str = "application/json"
    needs_contact: bool = False  # 403 unless the User-Agent carries an e-mail address
    fault: Fault | None = None
    drip_seconds: float = 0.0  # pause between 1 KB chunks of the body
    redirect_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Content-Encoding for a pre-compressed body


@dataclass
class Seen:
    """One request as the site saw it."""

    path: str
    headers: dict[str, str] = field(default_factory=dict)


class DataSite(LocalServer):
    """Serves ``documents`` by path; records every request in ``requests``."""

    def __init__(self, documents: dict[str, Document] | None = None):
        self.documents = dict(documents or {})
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        super().__init__(self._app())

    def _app(self) -> Flask:
        app = Flask(__name__)
        app.add_url_rule("/<path:path>", "document", self._answer)
        return app

    def _answer(self, path: str) -> Response:
        with self._lock:
            self.requests.append(Seen("/" + path, dict(request.headers)))
        document = self.documents.get("/" + path)
        if document is None:
            return Response("not found", 404, mimetype="text/plain")
        if document.needs_contact and not CONTACT.search(request.headers.get("User-Agent", "")):
            return Response("Undeclared automated tool: declare your User-Agent with a contact e-mail.", 403,
                            mimetype="text/html")
        if document.redirect_to:
            return redirect(document.redirect_to, 302)
        fault = document.fault
        if isinstance(fault, Delay):
            time.sleep(fault.seconds)
            fault = fault.then
        if fault is not None:
            return fault_response(fault, request.environ, lambda status, message: {"error": message or status})
        if document.drip_seconds:
            return Response(_drip(document.body, document.drip_seconds), 200, content_type=document.content_type,
                            headers=document.headers)
        return Response(document.body, 200, content_type=document.content_type, headers=document.headers)


def _drip(body: bytes, pause: float) -> Iterator[bytes]:
    """The body in 1 KB chunks with a pause before each."""
    for start in range(0, len(body), 1024):
        time.sleep(pause)
        yield body[start:start + 1024]


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 that counts the connections made to it; use as a context manager."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def __enter__(self) -> ConnectionCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()
