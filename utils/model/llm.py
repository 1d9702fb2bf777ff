"""The model layer's provider seam: one chat completion through a chain of OpenAI-compatible providers.

``ModelClient.complete`` tries each configured provider in order (those that
failed within ``cooldown_seconds`` go last) and returns the first usable reply
as a ``Completion``, or raises ``ProvidersFailed`` (a ``GenerationFailed``, 502)
listing every attempt as provider, model, endpoint (never a key or credentials),
status and seconds, noting a provider tried last because of its cool-down.
``ModelClient.probe`` is the preflight's cheap check of one provider: its
models list, else one completion, reported as a ``Probe``.

    429 with a Retry-After that fits the deadline  -> wait, retry the same provider once
    400 "use max_completion_tokens instead"         -> retry the same provider once with it
    429 otherwise, 5xx, timeout, connection error,
    malformed or empty reply, 401/403/404, other 4xx -> next provider

Never rules:
- never logs, raises, returns or stores an API key, and never repeats an
  upstream error body (OpenAI's 401 message echoes part of the key): only
  status codes and our own words reach messages and logs;
- never chains an upstream exception into ours (its text may hold such a body);
- never lets the openai package retry on its own (``max_retries=0``): this
  module decides, within the request's ``Deadline``;
- never waits or lets a call run past the deadline.

``import utils.model.llm`` is cheap: the openai package is imported on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from utils import metrics
from utils.config import Config, ProviderSpec
from utils.deadline import Deadline, retry_after_seconds
from utils.errors import ProvidersFailed
from utils.model.base import Completion
from utils.records import Attempt

if TYPE_CHECKING:
    import openai  # why: openai is heavy and needed only for a model call

_log = logging.getLogger(__name__)

OK = "ok"
MAX_TOKENS = "max_tokens"
MAX_COMPLETION_TOKENS = "max_completion_tokens"
_KEY_STATUSES = ("401", "403")
_UNREACHABLE = ("timeout", "connection error")
PROBE_MESSAGE = {"role": "user", "content": "Reply with OK."}


@dataclass(frozen=True)
class Probe:
    """One provider's answer to ``ModelClient.probe``: "ok" or a failure status, and the models it listed."""

    provider: str
    model: str
    status: str
    seconds: float
    listed: tuple[str, ...] | None = None  # None: it serves no models list, so a completion was made


class _CallFailed(Exception):
    """Internal: one call failed with ``status``; never carries upstream text."""

    def __init__(self, status: str, *, retry_after: float | None = None, token_param: str | None = None):
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after
        self.token_param = token_param


class ModelClient:
    """Chat completions through an ordered chain of providers with per-instance cool-down."""

    def __init__(self, providers: Sequence[ProviderSpec], *, timeout: float, max_tokens: int,
                 cooldown_seconds: float = 120.0, stream: bool = False, max_retry_wait: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.providers = tuple(providers)
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.cooldown_seconds = cooldown_seconds
        self.stream = stream
        self.max_retry_wait = max_retry_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_at: dict[str, float] = {}
        self._clients: dict[str, openai.OpenAI] = {}
        self._token_params: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> ModelClient:
        """A client for ``config.providers`` with its timeout and max_tokens."""
        return cls(config.providers, timeout=config.llm_timeout_seconds,
                   max_tokens=config.llm_max_tokens, **options)

    def complete(self, messages: list[dict[str, Any]], deadline: Deadline) -> Completion:
        """The first usable reply from the chain; raises ``ProvidersFailed`` when none came."""
        attempts: list[Attempt] = []
        for spec in self.ordered_providers():
            failed_ago = self._failed_ago(spec)
            if deadline.expired():
                attempts.append(Attempt(spec.name, spec.model, "skipped: deadline reached", 0.0,
                                        public_endpoint(spec.base_url), failed_ago))
                continue
            first = len(attempts)
            completion = self._try_provider(spec, messages, deadline, attempts)
            if failed_ago is not None:
                attempts[first:] = [replace(a, failed_ago=failed_ago) for a in attempts[first:]]
            self._remember(spec, healthy=completion is not None)
            if completion is not None:
                return replace(completion, attempts=tuple(attempts))
        raise ProvidersFailed(_failure_message(attempts, self.providers), attempts)

    def ordered_providers(self) -> list[ProviderSpec]:
        """Providers in configured order, those that failed within the cool-down last."""
        now = self._clock()
        with self._lock:
            cooling = {name for name, at in self._failed_at.items() if now - at < self.cooldown_seconds}
        healthy = [p for p in self.providers if p.name not in cooling]
        return healthy + [p for p in self.providers if p.name in cooling]

    def _failed_ago(self, spec: ProviderSpec) -> float | None:
        """Seconds since ``spec`` last failed when that is within the cool-down, else None."""
        with self._lock:
            at = self._failed_at.get(spec.name)
        ago = None if at is None else self._clock() - at
        return ago if ago is not None and ago < self.cooldown_seconds else None

    def _remember(self, spec: ProviderSpec, *, healthy: bool) -> None:
        """Start or clear the provider's cool-down."""
        with self._lock:
            if healthy:
                self._failed_at.pop(spec.name, None)
            else:
                self._failed_at[spec.name] = self._clock()

    def _try_provider(self, spec: ProviderSpec, messages: list[dict[str, Any]], deadline: Deadline,
                      attempts: list[Attempt]) -> Completion | None:
        """One provider: a call, and at most one retry (fitting Retry-After, or the token parameter)."""
        for try_number in range(2):
            started = time.monotonic()
            try:
                completion = self._call(spec, messages, deadline)
            except _CallFailed as failure:
                attempts.append(self._record(spec, failure.status, started))
                if try_number or not self._prepare_retry(spec, failure, deadline):
                    return None
                continue
            attempts.append(self._record(spec, OK, started))
            return completion
        return None

    def _record(self, spec: ProviderSpec, status: str, started: float) -> Attempt:
        """An Attempt from ``started`` to now, logged without any key."""
        attempt = Attempt(spec.name, spec.model, status, _seconds_since(started), public_endpoint(spec.base_url))
        _log.info("model attempt", extra={"provider": attempt.provider, "model": attempt.model,
                                          "endpoint": attempt.endpoint, "status": attempt.status,
                                          "seconds": attempt.seconds})
        metrics.record_provider_call(spec.name, status, attempt.seconds)
        return attempt

    def _prepare_retry(self, spec: ProviderSpec, failure: _CallFailed, deadline: Deadline) -> bool:
        """Get ready to retry the same provider, or return False to move on."""
        if failure.token_param is not None:
            with self._lock:
                self._token_params[spec.name] = failure.token_param
            return True
        wait = failure.retry_after
        if wait is None or wait > self.max_retry_wait or wait >= deadline.remaining():
            return False
        return deadline.sleep(wait) and not deadline.expired()

    def probe(self, spec: ProviderSpec) -> Probe:
        """A cheap check of ``spec``: its models list, else one completion of ``max_tokens``; never retries."""
        started = time.monotonic()
        try:
            listed = self._listed_models(spec)
        except _CallFailed as failure:
            if failure.status in _UNREACHABLE:
                return Probe(spec.name, spec.model, failure.status, _seconds_since(started))
            listed = None
        if listed is not None:
            return Probe(spec.name, spec.model, OK, _seconds_since(started), listed)
        started = time.monotonic()
        try:
            self._call(spec, [PROBE_MESSAGE], Deadline(self.timeout))
        except _CallFailed as failure:
            return Probe(spec.name, spec.model, failure.status, _seconds_since(started))
        return Probe(spec.name, spec.model, OK, _seconds_since(started))

    def _listed_models(self, spec: ProviderSpec) -> tuple[str, ...] | None:
        """The model ids ``GET {base_url}/models`` lists; None when its answer holds no list."""
        with _status_on_failure():
            try:
                data: object = self._client(spec).models.list(timeout=self.timeout).data
            except (AttributeError, TypeError):  # how the openai package fails on a 200 that is not JSON
                return None
        if not isinstance(data, list):
            return None
        return tuple(str(model.id) for model in data if getattr(model, "id", None))

    def _call(self, spec: ProviderSpec, messages: list[dict[str, Any]], deadline: Deadline) -> Completion:
        """One HTTP call; every failure becomes a ``_CallFailed`` holding only a status."""
        budget = deadline.budget(self.timeout)
        with _status_on_failure():
            if self.stream:
                return self._call_streaming(spec, messages, budget)
            return self._call_once(spec, messages, budget)

    def _request(self, spec: ProviderSpec, messages: list[dict[str, Any]], budget: float) -> dict[str, Any]:
        """Keyword arguments for ``chat.completions.create``."""
        with self._lock:
            token_param = self._token_params.get(spec.name, MAX_TOKENS)
        return {"model": spec.model, "messages": messages, token_param: self.max_tokens, "timeout": budget}

    def _call_once(self, spec: ProviderSpec, messages: list[dict[str, Any]], budget: float) -> Completion:
        """A non-streaming call."""
        response = self._client(spec).chat.completions.create(**self._request(spec, messages, budget))
        try:
            choice = response.choices[0]
            text, finish = choice.message.content or "", choice.finish_reason or ""
            prompt, completion = _token_counts(response.usage)
        except (AttributeError, IndexError, TypeError, KeyError):
            raise _CallFailed("malformed reply") from None
        return _checked(spec, text, finish, prompt, completion)

    def _call_streaming(self, spec: ProviderSpec, messages: list[dict[str, Any]], budget: float) -> Completion:
        """A streaming call, assembled into one reply; the whole stream must fit ``budget``."""
        started = time.monotonic()
        request = {**self._request(spec, messages, budget), "stream": True,
                   "stream_options": {"include_usage": True}}
        parts: list[str] = []
        finish, prompt, completion = "", 0, 0
        with self._client(spec).chat.completions.create(**request) as stream:
            for chunk in stream:
                if time.monotonic() - started > budget:
                    raise _CallFailed("timeout")
                try:
                    finish = _read_chunk(chunk, parts) or finish
                    if getattr(chunk, "usage", None) is not None:
                        prompt, completion = _token_counts(chunk.usage)
                except (AttributeError, TypeError, KeyError):
                    raise _CallFailed("malformed reply") from None
        if not finish:
            raise _CallFailed("malformed reply")
        return _checked(spec, "".join(parts), finish, prompt, completion)

    def _client(self, spec: ProviderSpec) -> openai.OpenAI:
        """The cached openai client for ``spec`` (one per provider, created on first use)."""
        with self._lock:
            client = self._clients.get(spec.name)
            if client is None:
                import openai  # why: openai is heavy and needed only for a model call

                client = openai.OpenAI(base_url=spec.base_url, api_key=spec.api_key,
                                       timeout=self.timeout, max_retries=0)
                self._clients[spec.name] = client
            return client


@contextmanager
def _status_on_failure() -> Iterator[None]:
    """Turn the openai package's exceptions into a ``_CallFailed`` holding only a status."""
    import openai  # why: openai is heavy and needed only for a model call

    try:
        yield
    except openai.APITimeoutError:
        raise _CallFailed("timeout") from None
    except openai.APIConnectionError:
        raise _CallFailed("connection error") from None
    except openai.APIStatusError as error:
        raise _status_failure(error.status_code, error.response.headers, error.body) from None
    except (openai.APIError, ValueError):
        raise _CallFailed("malformed reply") from None


def public_endpoint(base_url: str) -> str:
    """``base_url`` as it may be shown: scheme, host, port and path, never userinfo, query or fragment."""
    parts = urlsplit(base_url)
    if not parts.scheme or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _seconds_since(started: float) -> float:
    """Seconds from ``started`` (a ``time.monotonic()``) to now, to the millisecond."""
    return round(time.monotonic() - started, 3)


def _read_chunk(chunk: Any, parts: list[str]) -> str:
    """Append a stream chunk's text to ``parts``; return its finish reason ("" if none)."""
    finish = ""
    for choice in chunk.choices or ():
        if choice.delta is not None and choice.delta.content:
            parts.append(choice.delta.content)
        finish = choice.finish_reason or finish
    return finish


def _token_counts(usage: Any) -> tuple[int, int]:
    """(prompt, completion) tokens from a usage object; zeros when the provider sent none."""
    if usage is None:
        return 0, 0
    return int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)


def _checked(spec: ProviderSpec, text: str, finish: str, prompt: int, completion: int) -> Completion:
    """A Completion, unless the reply is empty."""
    if not text.strip():
        raise _CallFailed("empty reply")
    return Completion(text, str(finish), spec.name, spec.model, prompt, completion)


def _status_failure(code: int, headers: Mapping[str, str], body: object) -> _CallFailed:
    """The failure for an HTTP error status; the body is inspected, never repeated."""
    if code == 429:
        return _CallFailed("429", retry_after=_retry_after(headers))
    if code == 400 and _wants_max_completion_tokens(body):
        return _CallFailed("400 max_tokens unsupported", token_param=MAX_COMPLETION_TOKENS)
    labels = {401: "401 invalid key", 403: "403 forbidden",
              404: "404 not found (unknown model or wrong base URL)"}
    return _CallFailed(labels.get(code, str(code)))


def _wants_max_completion_tokens(body: object) -> bool:
    """True for OpenAI's "max_tokens is not supported, use max_completion_tokens" error."""
    error = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    return error.get("param") == MAX_TOKENS and MAX_COMPLETION_TOKENS in str(error.get("message", ""))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date); None if absent."""
    try:
        if milliseconds := headers.get("retry-after-ms"):
            return max(0.0, float(milliseconds) / 1000)
    except (ValueError, TypeError):
        pass
    return retry_after_seconds(headers.get("retry-after"))


def _failure_message(attempts: Sequence[Attempt], providers: Sequence[ProviderSpec]) -> str:
    """The client-facing message: each attempt, plus which variable to check after a 401/403."""
    if not attempts:
        return "No model provider is configured (set OPENAI_API_KEY or AIPIPE_TOKEN)."
    message = "Every model provider failed: " + "; ".join(a.describe() for a in attempts) + "."
    rejected = {a.provider for a in attempts if a.status.startswith(_KEY_STATUSES)}
    variables = [p.key_variable for p in providers if p.name in rejected]
    if variables:
        message += " Check " + ", ".join(variables) + "."
    return message
