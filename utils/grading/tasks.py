"""The task a round trip sends: the built-in sample, or a request body from a file, with a fresh nonce and SECRET.

The sample asks for what every graded task needs (a page, a named file,
JavaScript checks on both), so a correct deployment passes it with exit 0.
A task file is a request body as graders send it; its ``secret``, ``nonce`` and
``evaluation_url`` are replaced (the grader's own callback is never notified
from here), and a round-1 ``task`` gets a suffix so every run publishes anew
(a later round keeps its task name: it revises that task's earlier round).

Never writes anything, and never puts the secret anywhere but the body it returns.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

SAMPLE_TASK: dict[str, Any] = {
    "email": "round-trip@example.com",
    "task": "round-trip",
    "round": 1,
    "brief": ('Publish a page titled "Round trip" whose element #greeting says Hello, and a file notes.txt that '
              "contains the word ready. The page links to notes.txt."),
    "checks": [
        {"js": 'document.title === "Round trip"'},
        {"js": 'document.querySelector("#greeting") !== null && '
               'document.querySelector("#greeting").textContent.includes("Hello")'},
        {"js": 'fetch("./notes.txt").then((r) => r.ok && r.text()).then((t) => Boolean(t) && t.includes("ready"))'},
    ],
    "attachments": [],
}


class TaskFileError(ValueError):
    """A task file that cannot be read as a request body."""


def load_task(path: str | None) -> dict[str, Any]:
    """The request body in ``path`` (a JSON object), or the built-in sample when ``path`` is None."""
    if path is None:
        sample: dict[str, Any] = json.loads(json.dumps(SAMPLE_TASK))  # a copy: callers change it
        return sample
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TaskFileError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise TaskFileError(f"{path} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise TaskFileError(f"{path} must hold a JSON object (a request body as graders send it)")
    for name in ("email", "task", "brief"):
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise TaskFileError(f"{path} has no '{name}' (a request body needs email, task, round and brief)")
    return body


def fresh_request(body: dict[str, Any], secret: str, evaluation_url: str | None) -> dict[str, Any]:
    """``body`` with SECRET, a fresh nonce, a task name of its own, and our receiver (or none) as evaluation_url."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    round_number = body.get("round", 1)
    task = f"{body['task']}-{stamp}" if str(round_number) == "1" else body["task"]
    fresh = {**body, "secret": secret, "nonce": f"round-trip-{stamp}", "round": round_number, "task": task}
    fresh.pop("evaluation_url", None)
    if evaluation_url:
        fresh["evaluation_url"] = evaluation_url
    return fresh
