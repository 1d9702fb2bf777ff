"""Send a task to a deployment and follow it to its end; receive its notification.

``send_and_follow`` POSTs the task to ``URL/api-endpoint``. A sync answer is
the end; an early one (``"accepted"``) is followed with ``GET /builds/<nonce>``
and ``Authorization: Bearer <SECRET>`` until the build is no longer queued or
running. ``Receiver`` is a tiny HTTP server on this machine that records the
notifications POSTed to it; it is only offered to a deployment that can reach
it (one on this machine).

Never logs or returns the secret; the only thing it sends it to is ``URL``.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from utils.store.base import UNFINISHED

POLL_SECONDS = 2.0
MAX_NOTIFICATION_BYTES = 1_000_000


@dataclass
class Outcome:
    """How the build ended: its status, the body it answered with (or that the store holds), and how we got it."""

    status: str  # success, error, expired, or "unreachable" when the deployment gave no usable answer
    body: dict[str, Any]
    detail: str  # what happened, for the report
    answered: str = ""  # "sync" or "early"


def send_and_follow(url: str, request_body: dict[str, Any], *, timeout: float,
                    poll_seconds: float = POLL_SECONDS) -> Outcome:
    """POST ``request_body`` to ``url``/api-endpoint; follow an early answer until the build ends or ``timeout``."""
    base = url.rstrip("/")
    try:
        answer = requests.post(f"{base}/api-endpoint", json=request_body, timeout=timeout)
    except requests.RequestException as exc:
        return Outcome("unreachable", {}, f"POST {base}/api-endpoint failed: {type(exc).__name__}")
    body = _json(answer)
    if answer.status_code != 200 or body.get("status") not in ("success", "accepted"):
        return Outcome(str(body.get("status") or "error"), body, f"POST /api-endpoint answered HTTP "
                       f"{answer.status_code}: {_error_text(body) or answer.text[:200]}", "sync")
    if body["status"] == "success":
        return Outcome("success", body, "answered success (sync)", "sync")
    return _follow(base, request_body["nonce"], request_body["secret"], time.monotonic() + timeout, poll_seconds)


def _follow(base: str, nonce: str, secret: str, deadline: float, poll_seconds: float) -> Outcome:
    """Poll ``GET /builds/<nonce>`` until the build is no longer queued or running."""
    last = "no answer yet"
    while True:
        try:
            answer = requests.get(f"{base}/builds/{nonce}", headers={"Authorization": f"Bearer {secret}"},
                                  timeout=30)
        except requests.RequestException as exc:
            answer, last = None, f"GET /builds/{nonce} failed: {type(exc).__name__}"
        if answer is not None:
            status = _json(answer)
            if answer.status_code in (401, 403, 429):
                return Outcome("unreachable", status, f"GET /builds/{nonce} answered HTTP {answer.status_code}: "
                               f"{_error_text(status)}", "early")
            if answer.status_code == 200 and status.get("status") not in UNFINISHED:
                result = dict(status.get("result") or {})
                result.setdefault("notified", bool(status.get("notified")))
                return Outcome(str(status.get("status")), result, f"answered early, then {status.get('status')}",
                               "early")
            last = f"HTTP {answer.status_code}, {status.get('status') or _error_text(status)}"
        if time.monotonic() + poll_seconds > deadline:
            return Outcome("unreachable", {}, f"the build did not end in time (last: {last})", "early")
        time.sleep(poll_seconds)


def _json(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object ({} when it is not one)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(body: dict[str, Any]) -> str:
    """The message of an error body ("" when there is none)."""
    error = body.get("error")
    return str(error.get("message") or "") if isinstance(error, dict) else ""


def reaches_this_machine(url: str) -> bool:
    """True when ``url``'s host is this machine (a loopback name or address), so it can reach our receiver."""
    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording the JSON notifications POSTed to ``/notify``."""

    payloads: list[Any] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Receiver:
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = min(int(self.headers.get("Content-Length") or 0), MAX_NOTIFICATION_BYTES)
                try:
                    received.append(json.loads(self.rfile.read(length) or b"null"))
                except ValueError:
                    received.append(None)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "received"}')

            def log_message(self, *_args: Any) -> None:  # quiet: the table says what arrived
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        """Where the deployment should POST its notification."""
        assert self._server is not None, "the receiver is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/notify"

