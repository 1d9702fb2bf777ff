"""The generation stage: one model call writes every file; cut-off replies are continued,
unusable ones get one precise re-ask, revisions are applied on round N-1's files.

Never puts a secret in a prompt (prompts are built from the request, which has none).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from utils.deadline import Deadline
from utils.errors import GenerationFailed
from utils.llm import Completion, ModelClient
from utils.models import Attachments, GeneratedApp, PreviousRound, RepoTarget, TaskRequest, Usage
from utils.prompt import build_messages, reask_message
from utils.replies import apply_edits, parse_reply

log = logging.getLogger(__name__)

MAX_CONTINUATIONS = 2
CONTINUE_PROMPT = (
    "Your reply was cut off at the length limit. Continue exactly where it stopped, "
    "without repeating anything already sent and without any introduction."
)


@dataclass
class _Tally:
    """Accumulates model usage across calls of one build."""

    provider: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0  # provider attempts, failed ones included
    started: float = field(default_factory=time.monotonic)

    def add(self, completion: Completion) -> None:
        self.provider, self.model = completion.provider, completion.model
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.calls += len(completion.attempts)

    def usage(self) -> Usage:
        return Usage(self.provider, self.model, self.prompt_tokens, self.completion_tokens,
                     self.calls, round(time.monotonic() - self.started, 3))


def generate_app(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                 previous: PreviousRound | None, model: ModelClient, deadline: Deadline) -> GeneratedApp:
    """Ask the model for the app (or its revision) and return every file of it."""
    messages = build_messages(request, attachments, target, previous)
    base_files = dict(previous.files) if previous else {}
    tally = _Tally()
    text = _complete(model, messages, deadline, tally)
    files, problems = _interpret(text, base_files)
    if problems:
        log.warning("model reply unusable; asking again", extra={"stage": "generation", "problems": problems})
        messages = [*messages, {"role": "assistant", "content": text}, reask_message(problems)]
        text = _complete(model, messages, deadline, tally)
        files, problems = _interpret(text, base_files)
        if problems:
            raise GenerationFailed("the model's reply was still unusable after one re-ask: " + "; ".join(problems))
    return GeneratedApp(files=files, usage=tally.usage())


def _complete(model: ModelClient, messages: list[dict], deadline: Deadline, tally: _Tally) -> str:
    """One reply, continued up to MAX_CONTINUATIONS times while it stops at the length limit."""
    completion = model.complete(messages, deadline)
    tally.add(completion)
    text = completion.text
    for _ in range(MAX_CONTINUATIONS):
        if completion.finish_reason != "length":
            break
        log.info("model reply cut off; asking for the rest", extra={"stage": "generation"})
        follow_up = [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": CONTINUE_PROMPT}]
        completion = model.complete(follow_up, deadline)
        tally.add(completion)
        text += completion.text
    return text


def _interpret(text: str, base_files: dict[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """Apply a reply to the base files; return the files and the problems that block using them."""
    parsed = parse_reply(text)
    files = dict(base_files)
    files.update({path: content.encode("utf-8") for path, content in parsed.files.items()})
    files, edit_failures = apply_edits(files, parsed.edits)
    problems = list(edit_failures)
    if parsed.truncated:
        problems.extend(p for p in parsed.problems if "truncated" in p)
    if not parsed.files and not parsed.edits:
        problems.extend(parsed.problems or ["the reply contained no files"])
    if "index.html" not in files:
        problems.append("the app has no index.html at its root")
    return files, list(dict.fromkeys(problems))
