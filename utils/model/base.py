"""The model seam (as simonw/llm's ``Model``): what generation, the checks and the live check use of a model.

Callers depend on ``Model`` and its ``Completion``; ``ModelClient``
(``utils.model.llm``, the chain of OpenAI-compatible providers) is the one
built by ``create_services``, and a test may pass any object with the same
method. Imports nothing heavy and never holds, names or logs an API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from utils.deadline import Deadline
from utils.records import Attempt


@dataclass(frozen=True)
class Completion:
    """A usable model reply, who wrote it, its token counts and the attempts that led to it."""

    text: str
    finish_reason: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    attempts: tuple[Attempt, ...] = ()


class Model(Protocol):
    """One chat completion within a deadline: a usable reply, or ``ProvidersFailed`` (502) saying why not."""

    def complete(self, messages: list[dict[str, Any]], deadline: Deadline) -> Completion:
        """The reply to ``messages`` (OpenAI chat format), written before ``deadline``."""
        ...
