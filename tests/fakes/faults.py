"""The faults a fake upstream can be told to answer with, shared by the three fakes, and how one becomes a response.

One vocabulary for the fake GitHub, the scripted model and the evaluation
receiver: ``Fail`` (an error status, optionally with ``Retry-After``), ``Delay``
(answer late, e.g. past the client's timeout), ``Disconnect`` (close the
connection with no answer), ``Malformed`` (a 200 that is not JSON) and
``WrongShape`` (a 200 with JSON of the wrong shape). Each fake decides which
requests a fault hits, waits out a ``Delay`` its own way and supplies its
error body; ``fault_response`` decides what goes on the wire for the rest.

Never sleeps (waiting is the fake's job) and never reaches the internet.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Response

ErrorBody = Callable[[int, str | None], dict[str, Any]]


@dataclass(frozen=True)
class Fail:
    """Answer ``status`` with the fake's error body (carrying ``message``), or ``body`` when given.

    ``retry_after`` adds a ``Retry-After`` header; ``headers`` adds any other.
    """

    status: int
    message: str | None = None
    body: dict[str, Any] | str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds``, then answer ``then`` (default: the fake's normal answer)."""

    seconds: float
    then: Any = None


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without sending any response."""


@dataclass(frozen=True)
class Malformed:
    """Answer 200 with a body that is not JSON."""

    body: str = "<html><body>502 Bad Gateway</body></html>"


@dataclass(frozen=True)
class WrongShape:
    """Answer 200 with valid JSON that is not what the client expects."""

    body: Any = field(default_factory=lambda: {"unexpected": True})


Fault = Fail | Delay | Disconnect | Malformed | WrongShape


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(json.dumps(body), status, headers=dict(headers or {}), mimetype="application/json")


def fault_response(fault: Fail | Disconnect | Malformed | WrongShape, environ: dict[str, Any],
                   error_body: ErrorBody) -> Response:
    """The response ``fault`` calls for; ``error_body(status, message)`` shapes a Fail's body like the fake's API."""
    if isinstance(fault, Disconnect):
        _shut_connection(environ)
        return Response(b"", status=500)
    if isinstance(fault, Malformed):
        return Response(fault.body, 200, mimetype="text/html")
    if isinstance(fault, WrongShape):
        return json_response(fault.body)
    headers = dict(fault.headers)
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if isinstance(fault.body, str):
        return Response(fault.body, fault.status, headers=headers, mimetype="text/plain")
    body = fault.body if fault.body is not None else error_body(fault.status, fault.message)
    return json_response(body, fault.status, headers)


def _shut_connection(environ: dict[str, Any]) -> None:
    """Shut the request's socket so the client sees the connection close with no answer.

    Whatever the app then writes fails with a broken pipe, which werkzeug treats
    as a dropped connection.
    """
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
