"""The one tally of model usage: calls, tokens and provider attempts summed over a stage's model calls.

Generation turns it into the build's ``Usage`` (logged and returned); the
self-check's repair loop reports its calls and tokens. Counts only: never
holds a prompt, a reply or a key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from utils.model.base import Completion
from utils.records import Attempt, Usage


@dataclass
class UsageTally:
    """Model usage summed over calls: the last provider and model, calls, tokens, attempts, start time."""

    provider: str = ""
    model: str = ""
    calls: int = 0  # usable replies
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0  # provider attempts, failed ones included
    started: float = field(default_factory=time.monotonic)

    def add(self, completion: Completion) -> None:
        """Count a usable reply and the attempts that led to it."""
        self.provider, self.model = completion.provider, completion.model
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.attempts += len(completion.attempts)

    def add_failed(self, attempts: Sequence[Attempt]) -> None:
        """Count the attempts of a call on which every provider failed."""
        self.attempts += len(attempts)

    def usage(self) -> Usage:
        """The accounting so far, as a ``Usage``."""
        return Usage(self.provider, self.model, self.prompt_tokens, self.completion_tokens,
                     self.attempts, round(time.monotonic() - self.started, 3))

    def tokens(self) -> dict[str, int]:
        """Calls and tokens, for a report."""
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}
