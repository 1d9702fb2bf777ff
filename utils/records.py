"""Typed values passed between pipeline stages.

request -> attachments -> generated files -> published commit -> notified.
These hold no secret: the shared secret is checked in validation and dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """One grading check: the text as sent, and its JavaScript expression if it has one."""

    text: str
    js: str | None = None


@dataclass(frozen=True)
class AttachmentRef:
    """An attachment as the request sent it: a name and a data URI, bare base64 or http(s) URL."""

    name: str
    url: str


@dataclass(frozen=True)
class TaskRequest:
    """A validated request, without its secret."""

    email: str
    task: str
    round: int
    nonce: str
    brief: str
    checks: tuple[Check, ...] = ()
    evaluation_url: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the request for idempotency and the build store (no secret, no payloads)."""
        data = asdict(self)
        data["attachments"] = [a.name for a in self.attachments]
        return data


@dataclass(frozen=True)
class Attachment:
    """A decoded attachment: its original name, its safe path in the app, bytes and type."""

    name: str
    path: str
    data: bytes
    media_type: str
    preview: str


@dataclass(frozen=True)
class LinkedAttachment:
    """An http(s) attachment: never fetched by the server, passed to the model as a link."""

    name: str
    url: str


@dataclass(frozen=True)
class Attachments:
    """Everything decode_attachments produced."""

    files: tuple[Attachment, ...] = ()
    links: tuple[LinkedAttachment, ...] = ()


@dataclass(frozen=True)
class PreviousRound:
    """The app of round N-1, read back from the publisher."""

    repo_name: str
    commit_sha: str
    files: dict[str, bytes]
    checks: tuple[Check, ...] = ()
    written: tuple[dict[str, Any], ...] = ()  # the written checks kept with round N-1


@dataclass(frozen=True)
class Usage:
    """Model accounting for one build."""

    provider: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class GeneratedApp:
    """The files the model wrote (paths already sanitized) and what it cost."""

    files: dict[str, bytes]
    usage: Usage = field(default_factory=Usage)
    derived: tuple[str, ...] = ()  # files the service made from attachments (derive blocks); repairs keep them
    warnings: tuple[str, ...] = ()  # what the build reports: derive blocks still not honoured after the re-ask


@dataclass(frozen=True)
class RepoTarget:
    """Where a round is published, known before its commit so the README can link to it."""

    name: str
    repo_url: str
    pages_url: str


@dataclass(frozen=True)
class PublishedCommit:
    """A round as published: the repository, its Pages URL and the commit that is live."""

    repo_url: str
    pages_url: str
    commit_sha: str
    pages_live: bool = True


@dataclass(frozen=True)
class Attempt:
    """One HTTP call to one provider: its outcome ("ok", "429", "timeout", ...) and duration."""

    provider: str
    model: str
    status: str
    seconds: float
    endpoint: str = ""  # the base URL called, without credentials or query (see ``public_endpoint``)
    failed_ago: float | None = None  # set when the provider was in its cool-down: seconds since it last failed

    def describe(self) -> str:
        """``provider (model) at endpoint: status after N s``, noting a cool-down; never holds a key."""
        where = f"{self.provider} ({self.model})" + (f" at {self.endpoint}" if self.endpoint else "")
        cooling = (f" (tried last: it had failed {self.failed_ago:.0f} s before)"
                   if self.failed_ago is not None else "")
        if self.status.startswith("skipped"):
            return f"{where}: {self.status}{cooling}"
        return f"{where}: {self.status} after {self.seconds:.2f} s{cooling}"


@dataclass(frozen=True)
class WrittenCheck:
    """A plain-English check made executable: ``js``, ``files`` or ``run`` (an expression) or ``judge`` (a rubric)."""

    check: str
    kind: str
    js: str | None = None
    rubric: str = ""
    previous: bool = False  # kept from round N-1 (a regression guard), not written for this round

    def to_dict(self) -> dict[str, Any]:
        """The check as stored with the round (``previous`` is where it is used, not what it is)."""
        return {"check": self.check, "kind": self.kind, "js": self.js, "rubric": self.rubric}
