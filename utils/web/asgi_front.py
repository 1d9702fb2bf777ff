"""The asynchronous front gunicorn serves: whole requests are read on the event loop before a thread takes them.

With gunicorn's threaded (gthread) workers a thread is bound to a connection
as soon as its first byte arrives, so `WEB_THREADS` clients sending their
headers or body one byte a second stop `/health` and every build. Here
gunicorn's own `asgi` worker parses connections on its asyncio loop (a slow
client costs a coroutine and a buffer, not a thread), ``BufferedWSGIFront``
reads each request's body completely (bounded by MAX_REQUEST_BYTES and
BODY_READ_SECONDS), and only then hands the request to the Flask app on one of
`WEB_THREADS` threads through a2wsgi's WSGI bridge. The Flask app stays
synchronous and unchanged.

Never buffers more than ``max_body_bytes`` of one request, and never logs bodies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2wsgi import WSGIMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY_READ_SECONDS = 120.0  # a body still arriving after this is answered 408: a client, not a thread, waits


class BufferedWSGIFront:
    """An ASGI app that buffers each request body, then runs ``wsgi_app`` on a pool of ``threads`` threads."""

    def __init__(self, wsgi_app: Callable[..., Any], *, threads: int, max_body_bytes: int,
                 body_read_seconds: float = BODY_READ_SECONDS):
        # Any: a2wsgi types scopes and events as TypedDicts; this front hands the server's own mappings through
        self.bridge: Any = WSGIMiddleware(wsgi_app, workers=threads)
        self.max_body_bytes = max_body_bytes
        self.body_read_seconds = body_read_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (http; lifespan is acknowledged; websockets are refused)."""
        if scope["type"] != "http":
            await self.bridge(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _error(send, 413, f"request body is larger than the limit of {self.max_body_bytes} bytes")
            return
        try:
            body = await asyncio.wait_for(self._read_body(receive), timeout=self.body_read_seconds)
        except TimeoutError:
            await _error(send, 408, f"the request body did not arrive within {self.body_read_seconds:g} s")
            return
        except _TooLarge:
            await _error(send, 413, f"request body is larger than the limit of {self.max_body_bytes} bytes")
            return
        if body is None:
            return  # the client went away
        await self.bridge(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None if the client disconnected first."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _TooLarge(Exception):
    """The body grew past the limit while it was read."""


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive callable that yields the buffered body once, then defers to the connection's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _content_length(scope: Scope) -> int | None:
    """The declared Content-Length, or None when absent or malformed."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _error(send: Send, status: int, message: str) -> None:
    """Answer with the service's JSON error body (stage ``http``) and close."""
    body = json.dumps({"status": "error", "error": {"stage": "http", "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
