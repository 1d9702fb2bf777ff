"""A scripted OpenAI-compatible model server for tests (a real HTTP server on loopback).

Serves ``POST /v1/chat/completions`` (JSON, or SSE when ``stream`` is true) and
``GET /v1/models``. Replies come from a queue of scripted items (reply strings,
``Truncated`` replies or faults from ``tests/fakes/faults.py``), then from
``default_reply``. Every chat request is recorded in
``history``.

Lanes (``add_lane``) answer the requests a predicate picks (say, the
service's check-writing or judging calls) from their own queue and default
reply, and record them in their own ``history``, so the main script and
history see only the other requests. ``timeline`` records, in order, when
each request was received and answered (lane name or "main"), so tests can
assert that calls overlapped without measuring time.

Never stores the API key a client sent: a recorded request keeps its headers
without ``Authorization`` and only whether the bearer token matched. Never
reaches the internet (binds to 127.0.0.1 through ``LocalServer``).

Token accounting is deterministic: one token per whitespace-separated word
(``count_tokens``), so tests can compute the expected usage.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from tests.fakes.faults import Delay, Fault, Malformed, fault_response, json_response
from tests.fakes.server import LocalServer

DEFAULT_MODEL = "scripted-model"
STREAM_CHUNK_CHARS = 8


@dataclass(frozen=True)
class Truncated:
    """Answer with ``text`` and finish_reason "length", as when max_tokens ran out."""

    text: str


Item = str | Truncated | Fault


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it: never the API key, only whether it matched."""

    method: str
    path: str
    json: Any
    headers: dict[str, str] = field(default_factory=dict)
    authorized: bool = True


def count_tokens(text: str) -> int:
    """The fake's token count: whitespace-separated words."""
    return len(text.split())


def prompt_tokens(body: dict) -> int:
    """Tokens in every message's text content (string or list of text parts)."""
    total = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += count_tokens(content)
        elif isinstance(content, list):
            total += sum(count_tokens(p.get("text", "")) for p in content if isinstance(p, dict))
    return total


def _fixed_reply(body: dict) -> str:
    """The default reply: a fixed sentence."""
    return "Hello from the scripted model."


def _error_body(status: int, message: str | None = None) -> dict:
    """An error body shaped like OpenAI's."""
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_denied",
             404: "invalid_request_error", 429: "rate_limit_exceeded"}
    codes = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
    return {"error": {"message": message or f"Scripted failure with status {status}.",
                      "type": kinds.get(status, "server_error"), "param": None,
                      "code": codes.get(status)}}


@dataclass
class Lane:
    """Requests picked by ``match``: answered from ``queue`` then ``default_reply``, recorded in ``history``."""

    name: str
    match: Callable[[dict], bool]
    default_reply: Callable[[dict], Item]
    queue: deque = field(default_factory=deque)
    history: list[RecordedRequest] = field(default_factory=list)

    def enqueue(self, *items: Item) -> None:
        """Add replies or faults for this lane's next requests."""
        self.queue.extend(items)


class ScriptedModel:
    """An OpenAI-compatible server that answers from a script; use as a context manager."""

    def __init__(self, *, api_key: str | None = None, models: tuple[str, ...] | None = None):
        self._api_key = api_key
        self._models = models
        self._queue: deque[Item] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.history: list[RecordedRequest] = []
        self.default_reply: Callable[[dict], Item] = _fixed_reply
        self.lanes: list[Lane] = []
        self.timeline: list[tuple[str, str]] = []  # ("received" | "answered", lane name or "main")
        self._server = LocalServer(self._build_app())
        self.base_url = f"{self._server.url}/v1"

    def __enter__(self) -> ScriptedModel:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.stop()

    def enqueue(self, *items: Item) -> None:
        """Add replies or faults, answered in order before falling back to ``default_reply``."""
        with self._lock:
            self._queue.extend(items)

    def add_lane(self, name: str, match: Callable[[dict], bool], default_reply: Callable[[dict], Item]) -> Lane:
        """Answer requests that ``match`` picks from a lane of their own (see the module docstring)."""
        lane = Lane(name, match, default_reply)
        with self._lock:
            self.lanes.append(lane)
        return lane

    def lane(self, name: str) -> Lane:
        """The lane called ``name``."""
        return next(lane for lane in self.lanes if lane.name == name)

    def _lane_for(self, body: dict) -> Lane | None:
        """The first lane whose predicate picks ``body``."""
        return next((lane for lane in self.lanes if lane.match(body)), None)

    def reset(self) -> None:
        """Forget the script, the history and the default reply; wake any pending Delay."""
        with self._lock:
            self._queue.clear()
            self.history.clear()
            self.timeline.clear()
            for lane in self.lanes:
                lane.queue.clear()
                lane.history.clear()
            self.default_reply = _fixed_reply
            self._closing.set()
            self._closing = threading.Event()

    def _next_item(self, body: dict) -> Item:
        """The next scripted item, else the default reply for this request."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.default_reply(body)

    def _build_app(self) -> Flask:
        """The Flask app with the two OpenAI routes."""
        app = Flask(__name__)
        app.add_url_rule("/v1/models", "models", self._list_models, methods=["GET"])
        app.add_url_rule("/v1/chat/completions", "chat", self._chat, methods=["POST"])
        return app

    def _authorized(self) -> bool:
        """True when no key is required or the bearer token matches it."""
        if self._api_key is None:
            return True
        return request.headers.get("Authorization", "") == f"Bearer {self._api_key}"

    def _list_models(self) -> Response:
        """GET /v1/models."""
        if not self._authorized():
            return json_response(_error_body(401, "Incorrect API key provided."), 401)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"}
                for m in (self._models or (DEFAULT_MODEL,))]
        return json_response({"object": "list", "data": data})

    def _chat(self) -> Response:
        """POST /v1/chat/completions: record the request, then answer from the script."""
        body = request.get_json(silent=True) or {}
        authorized = self._authorized()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        lane = self._lane_for(body)
        with self._lock:
            (lane.history if lane else self.history).append(
                RecordedRequest("POST", request.path, body, headers, authorized))
            self.timeline.append(("received", lane.name if lane else "main"))
        if not authorized:
            return json_response(_error_body(401, "Incorrect API key provided."), 401)
        model = str(body.get("model") or DEFAULT_MODEL)
        if self._models is not None and model not in self._models:
            return json_response(_error_body(404, f"The model `{model}` does not exist."), 404)
        if lane is None:
            response = self._answer(self._next_item(body), body, model)
        else:
            with self._lock:
                item = lane.queue.popleft() if lane.queue else None
            response = self._answer(item if item is not None else lane.default_reply(body), body, model)
        with self._lock:
            self.timeline.append(("answered", lane.name if lane else "main"))
        return response

    def _answer(self, item: Item, body: dict, model: str) -> Response:
        """Turn one scripted item into an HTTP response."""
        if isinstance(item, Delay):
            with self._lock:
                closing = self._closing
            if closing.wait(item.seconds):
                return json_response(_error_body(503, "Server shutting down."), 503)
            then = item.then if item.then is not None else self.default_reply(body)
            return self._answer(then, body, model)
        streaming = bool(body.get("stream"))
        if isinstance(item, Malformed) and streaming:
            return Response(f"data: {item.body}\n\n", status=200, mimetype="text/event-stream")
        if isinstance(item, Fault):
            return fault_response(item, request.environ, _error_body)
        text, finish = (item.text, "length") if isinstance(item, Truncated) else (str(item), "stop")
        usage = _usage(body, text)
        if streaming:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _stream_events(model, text, finish, usage if include_usage else None)
            return Response(events, status=200, mimetype="text/event-stream")
        return json_response(_completion(model, text, finish, usage))


def _usage(body: dict, text: str) -> dict:
    """The usage object for a reply."""
    prompt, completion = prompt_tokens(body), count_tokens(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(model: str, text: str, finish: str, usage: dict) -> dict:
    """A non-streaming chat.completion object."""
    return {
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }


def _chunk(model: str, choices: list[dict], usage: dict | None = None) -> str:
    """One SSE ``data:`` line holding a chat.completion.chunk."""
    data = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": choices, "usage": usage}
    return f"data: {json.dumps(data)}\n\n"


def _stream_events(model: str, text: str, finish: str, usage: dict | None) -> Iterator[str]:
    """The SSE stream: role, content pieces, finish reason, optional usage chunk, [DONE]."""
    yield _chunk(model, [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for start in range(0, len(text), STREAM_CHUNK_CHARS):
        piece = text[start:start + STREAM_CHUNK_CHARS]
        yield _chunk(model, [{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield _chunk(model, [{"index": 0, "delta": {}, "finish_reason": finish}])
    if usage is not None:
        yield _chunk(model, [], usage)
    yield "data: [DONE]\n\n"
