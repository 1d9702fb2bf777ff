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

What may be buffered is bounded twice, before routing or the secret check: per
request, only ``POST /api-endpoint`` may send up to ``max_body_bytes``; every
other method and path gets ``SMALL_BODY_BYTES`` (the sign-in form); and across
every connection of the worker at most ``BufferBudget.total`` bytes are held
at once (``BUFFER_BUDGET_FACTOR`` times ``max_body_bytes``): a request whose
declared or arriving body does not fit is answered 503 with ``Retry-After``
instead of waiting (16 held POSTs to ``/health`` once took a worker from 34 to
420 MB).

Never buffers more than the budget, and never logs bodies.
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
SMALL_BODY_BYTES = 64 * 1024  # any request but POST /api-endpoint
LARGE_BODY_ROUTE = ("POST", "/api-endpoint")
BUFFER_BUDGET_FACTOR = 4  # bytes buffered at once by one worker, in units of the largest body
BUSY_RETRY_SECONDS = 5


class BufferBudget:
    """Bytes held in request buffers by every connection of this worker (the asyncio loop's thread only)."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) when they do not fit."""
        if self.used + size > self.total:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        """Release bytes reserved by ``take``."""
        self.used -= size


class BufferedWSGIFront:
    """An ASGI app that buffers each request body, then runs ``wsgi_app`` on a pool of ``threads`` threads."""

    def __init__(self, wsgi_app: Callable[..., Any], *, threads: int, max_body_bytes: int,
                 body_read_seconds: float = BODY_READ_SECONDS):
        # Any: a2wsgi types scopes and events as TypedDicts; this front hands the server's own mappings through
        self.bridge: Any = WSGIMiddleware(wsgi_app, workers=threads)
        self.max_body_bytes = max_body_bytes
        self.body_read_seconds = body_read_seconds
        self.budget = BufferBudget(BUFFER_BUDGET_FACTOR * max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (http; lifespan is acknowledged; websockets are refused)."""
        if scope["type"] != "http":
            await self.bridge(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _error(send, 413, _too_large(scope, limit))
            return
        reading = _Reading(self.budget, limit)
        try:  # the reservation lasts until the app has answered: a body waiting for a thread is still held
            await self._serve(scope, receive, send, reading, declared)
        finally:
            reading.release()

    async def _serve(self, scope: Scope, receive: Receive, send: Send, reading: _Reading,
                     declared: int | None) -> None:
        """Read the body within the budget and hand the request on, or answer the error."""
        try:
            if declared and not reading.take(declared):
                raise _Busy
            body = await asyncio.wait_for(reading.body(receive), timeout=self.body_read_seconds)
        except TimeoutError:
            await _error(send, 408, f"the request body did not arrive within {self.body_read_seconds:g} s")
            return
        except _TooLarge:
            await _error(send, 413, _too_large(scope, reading.limit))
            return
        except _Busy:
            await _error(send, 503, "the service is holding too many request bodies; retry shortly",
                         retry_after=BUSY_RETRY_SECONDS)
            return
        if body is None:
            return  # the client went away
        await self.bridge(scope, _replay(body, receive), send)

    def _limit(self, scope: Scope) -> int:
        """The largest body this method and path may send."""
        route = (scope.get("method", ""), scope.get("path", ""))
        return self.max_body_bytes if route == LARGE_BODY_ROUTE else min(SMALL_BODY_BYTES, self.max_body_bytes)


class _Reading:
    """One request's body as it arrives, its bytes reserved in the worker's budget until released."""

    def __init__(self, budget: BufferBudget, limit: int):
        self.budget = budget
        self.limit = limit
        self.reserved = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` more bytes of the budget."""
        if not self.budget.take(size):
            return False
        self.reserved += size
        return True

    def release(self) -> None:
        """Give every reserved byte back (the body is handed on or dropped)."""
        self.budget.give_back(self.reserved)
        self.reserved = 0

    async def body(self, receive: Receive) -> bytes | None:
        """The whole body, or None if the client disconnected first."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _TooLarge
            if size > self.reserved and not self.take(size - self.reserved):
                raise _Busy
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _Busy(Exception):
    """The worker's buffer budget has no room for this body now."""


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


def _too_large(scope: Scope, limit: int) -> str:
    """The 413 message: the limit and which requests it applies to."""
    route = (scope.get("method", ""), scope.get("path", ""))
    applies = "POST /api-endpoint" if route == LARGE_BODY_ROUTE else "requests other than POST /api-endpoint"
    return f"request body is larger than the limit of {limit} bytes for {applies}"


def _content_length(scope: Scope) -> int | None:
    """The declared Content-Length, or None when absent or malformed."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
            return length if length >= 0 else None
    return None


async def _error(send: Send, status: int, message: str, retry_after: int | None = None) -> None:
    """Answer with the service's JSON error body (stage ``http``) and close."""
    body = json.dumps({"status": "error", "error": {"stage": "http", "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
