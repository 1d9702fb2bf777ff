"""One build as it leaves the request thread (rq's Job): the request and everything a run or a resume needs.

Plain data and the answers made from it: ``BuildJob``, the pipeline's ``Outcome``
and the early ``accepted`` body. Knows nothing of slots, threads, HTTP or the
store's backends; never logs (request bodies, secrets and attachment contents
included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from utils.deadline import Deadline

if TYPE_CHECKING:
    from utils.records import Attachments, TaskRequest
    from utils.store.base import Claim


@dataclass(frozen=True)
class Outcome:
    """An HTTP status and the JSON body to answer with."""

    http_status: int
    body: dict[str, Any]


@dataclass
class BuildJob:
    """One pipeline run with everything it needs from the request, so it can leave the request thread."""

    task_request: TaskRequest
    attachments: Attachments
    deadline: Deadline
    request_id: str
    public_url: str
    claim: Claim | None = None  # the nonce already claimed for this job (early answers, resumed builds)

    def durable_fields(self) -> dict[str, Any]:
        """What the store keeps besides the request: attachments, wall-clock deadline and the base of local links."""
        return {"attachments": self.attachments, "deadline_at": time.time() + self.deadline.remaining(),
                "public_url": self.public_url}


def accepted_body(task_request: TaskRequest, request_id: str, *, queued: bool = False) -> dict[str, Any]:
    """The early answer: the build was validated and stored, and runs in the background."""
    return {"status": "accepted", "task": task_request.task, "round": task_request.round,
            "nonce": task_request.nonce, "request_id": request_id, "queued": queued,
            "message": ("queued: every build slot is busy; " if queued else "")
            + "building in the background; the result goes to evaluation_url and appears on the dashboard (GET /)"}
