"""Lanes of the scripted model for the service's check-writing and judging calls.

Each call is recognised by its system message (``utils.checks.writer.SYSTEM``,
``utils.checks.judge.SYSTEM``) and answered from its own lane, so a test's
main script (generation and repair replies) is never consumed by them. By
default the writer makes nothing executable and the judge gives no verdict:
tests that are about those calls enqueue replies on ``model.lane(...)``.
"""

from __future__ import annotations

import json

from tests.fakes.openai_server import ScriptedModel
from utils.checks import judge, writer

CHECK_WRITING, JUDGING = "check writing", "judging"


def system_text(body: dict) -> str:
    """The content of a request's first system message ('' if none)."""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "system":
            return str(message.get("content") or "")
    return ""


def add_check_lanes(model: ScriptedModel) -> None:
    """Give ``model`` a check-writing lane and a judging lane with neutral default replies."""
    model.add_lane(CHECK_WRITING, lambda body: system_text(body) == writer.SYSTEM,
                   lambda body: json.dumps({"checks": []}))
    model.add_lane(JUDGING, lambda body: system_text(body) == judge.SYSTEM,
                   lambda body: json.dumps({"verdicts": []}))
