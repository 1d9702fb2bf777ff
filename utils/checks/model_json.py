"""One model call whose reply must be a JSON object, retried once when it does not parse, with its accounting.

Used by the check writer and the judge (``utils.checks.writer``, ``utils.checks.judge``):
the reply may be bare JSON or JSON in a fenced block; ``parse`` turns the
object into a value or raises ``ValueError`` saying what is wrong, and that
sentence goes back to the model once. Each call is recorded as a ``CallRecord``
(purpose, provider, model, tokens, seconds, outcome) for the report.

Never raises for a failed provider or an unusable reply (the caller reports
it; publishing never waits on it), and never logs prompts or replies.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from utils.deadline import Deadline
from utils.errors import GenerationFailed
from utils.model.base import Model

log = logging.getLogger(__name__)

T = TypeVar("T")
_FENCED_JSON = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL)


@dataclass(frozen=True)
class CallRecord:
    """One model call for the report: what it was for, who answered, tokens, seconds and outcome."""

    purpose: str
    provider: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    outcome: str = "ok"  # ok | unparseable | failed

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types."""
        return asdict(self)


@dataclass
class JsonAnswer(Generic[T]):
    """The parsed value (None when there is none), every call made, and why it failed if it did."""

    value: T | None
    calls: list[CallRecord]
    problem: str = ""


def json_object(text: str) -> dict[str, Any]:
    """The JSON object in a reply (bare, fenced, or the outermost braces); raises ValueError if none."""
    candidates = [text.strip(), *(m.group(1) for m in _FENCED_JSON.finditer(text))]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{"): text.rindex("}") + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("the reply is not a JSON object")


def ask_json(model: Model, messages: list[dict[str, Any]], deadline: Deadline, parse: Callable[[dict[str, Any]], T],
             purpose: str) -> JsonAnswer[T]:
    """Ask, parse, and on an unusable reply ask once more saying what was wrong."""
    calls: list[CallRecord] = []
    problem = ""
    for _ in range(2):
        started = time.monotonic()
        try:
            completion = model.complete(messages, deadline)
        except GenerationFailed as failure:
            calls.append(CallRecord(purpose, seconds=round(time.monotonic() - started, 3), outcome="failed"))
            log.warning("model call failed", extra={"stage": "self_check", "purpose": purpose,
                                                    "error": failure.message})
            return JsonAnswer(None, calls, f"{purpose} call failed: {failure.message}")
        record = CallRecord(purpose, completion.provider, completion.model, completion.prompt_tokens,
                            completion.completion_tokens, round(time.monotonic() - started, 3))
        try:
            value = parse(json_object(completion.text))
        except ValueError as exc:
            problem = str(exc)
            calls.append(CallRecord(**{**record.to_dict(), "outcome": "unparseable"}))
            messages = [*messages, {"role": "assistant", "content": completion.text},
                        {"role": "user", "content": f"That reply could not be used: {problem}. Reply again with "
                                                    "only the JSON object in the format asked for."}]
            continue
        calls.append(record)
        return JsonAnswer(value, calls)
    log.warning("model reply unusable after one retry", extra={"stage": "self_check", "purpose": purpose,
                                                               "problem": problem})
    return JsonAnswer(None, calls, f"{purpose} reply unusable after one retry: {problem}")
