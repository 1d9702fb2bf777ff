"""Exceptions raised by the pipeline, each carrying the failing stage and its HTTP status.

One error handler in ``main.py`` turns any ``PipelineError`` into the JSON error
body of DESIGN.md. Messages are shown to clients: they must never contain a
secret, a token or attachment contents.

    PipelineError                  (stage, status, message, field)
    ├── InvalidRequest             400  the request breaks the contract
    │   └── InvalidAttachment      400  an attachment name or payload is unusable
    ├── SecretMismatch             403  wrong shared secret
    ├── SecretGuessingLimited      429  too many wrong secrets from one client address (Retry-After)
    ├── NonceConflict              409  nonce reused for a different request
    ├── RequestTooLarge            413  body over MAX_REQUEST_BYTES
    ├── GenerationFailed           502  every model provider failed or replied unusably
    │   └── ProvidersFailed        502  every provider failed; carries the attempts
    ├── PublishFailed              502  the publisher (GitHub or local) failed
    │   ├── GitHubCallFailed       502  a GitHub REST call failed for good; carries GitHub's status and message
    │   └── RepoNameTaken          409  the repository exists and holds other work; never overwritten
    ├── NotConfigured              503  a required variable is missing (Retry-After)
    ├── BuildInProgress            503  a duplicate's first build is still running (Retry-After)
    ├── BuildsSaturated            503  every build slot stayed busy for BUILD_QUEUE_SECONDS (Retry-After)
    └── ShuttingDown               503  the instance got SIGTERM and takes no new builds (Retry-After)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from utils.records import Attempt


class PipelineError(Exception):
    """Base class: a failure of one pipeline stage with the HTTP status it maps to."""

    status: int = 500
    default_stage: str = "internal"

    def __init__(self, message: str, *, stage: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.stage = stage or self.default_stage
        self.field = field

    def to_body(self) -> dict[str, Any]:
        """The JSON error body of DESIGN.md."""
        error: dict[str, Any] = {"stage": self.stage, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"status": "error", "error": error}


class InvalidRequest(PipelineError):
    """The request body breaks the request contract."""

    status = 400
    default_stage = "validate"


class InvalidAttachment(InvalidRequest):
    """An attachment has a hostile name or a payload that cannot be decoded."""

    default_stage = "attachments"


class SecretMismatch(PipelineError):
    """The shared secret does not match."""

    status = 403
    default_stage = "validate"


class SecretGuessingLimited(PipelineError):
    """429: this client address sent too many wrong secrets recently; this one is wrong too."""

    status = 429
    default_stage = "auth"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class NonceConflict(PipelineError):
    """The nonce was already used for a different task or round."""

    status = 409
    default_stage = "validate"


class RequestTooLarge(PipelineError):
    """The body exceeds the configured size limit."""

    status = 413
    default_stage = "validate"


class GenerationFailed(PipelineError):
    """No provider produced a usable app."""

    status = 502
    default_stage = "generation"


class ProvidersFailed(GenerationFailed):
    """Every provider failed; ``attempts`` lists how, and the message says so without keys."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()):
        super().__init__(message)
        self.attempts = tuple(attempts)


class PublishFailed(PipelineError):
    """The publisher could not create the repository, commit or Pages site."""

    status = 502
    default_stage = "publish"


class GitHubCallFailed(PublishFailed):
    """A GitHub REST call failed for good; carries GitHub's status and message (never the token)."""

    def __init__(self, message: str, *, github_status: int | None, github_message: str, rate_limited: bool):
        super().__init__(message)
        self.github_status = github_status
        self.github_message = github_message
        self.rate_limited = rate_limited


class RepoNameTaken(PublishFailed):
    """The repository exists and holds other work: answered 409, never overwritten."""

    status = 409


class NotConfigured(PipelineError):
    """The service lacks a variable it needs to serve this request."""

    status = 503
    default_stage = "config"
    retry_after: int = 60


class BuildInProgress(PipelineError):
    """A build of the same nonce is still running past this request's deadline."""

    status = 503
    default_stage = "claim"
    retry_after: int = 30


class BuildsSaturated(PipelineError):
    """Every build slot of this process stayed busy for BUILD_QUEUE_SECONDS."""

    status = 503
    default_stage = "queue"
    retry_after: int = 60


class ShuttingDown(PipelineError):
    """This instance is stopping (SIGTERM): it finishes running builds and takes no new ones."""

    status = 503
    default_stage = "queue"
    retry_after: int = 5
