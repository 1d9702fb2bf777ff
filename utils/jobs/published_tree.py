"""The published tree: every file of a round exactly as it will be committed, computed in one place.

    model files + attachments (per the brief) + derived files + LICENSE + README.md + .nojekyll (+ a file index)

The self-check, the judge, the secret scan and the publisher all receive this
tree, so a check on LICENSE or on "every required file exists" sees what is
published. Attachments are committed byte for byte unless the brief asks to
change that file (``utils.intake.brief.read_brief``) and the model wrote it;
then the model's version replaces it (no renamed duplicate). A model's copy of
an attachment the brief does not ask to change is ignored, with a warning.
Workflow files the brief did not ask for (and round N-1 did not have) are
dropped. When no workflow deploys the site and there is no ``index.html``, a
small index listing the published files is written, so ``pages_url`` answers.

Pure: never touches the filesystem, the network or a model; never puts the
requester's email, the nonce or a secret in a file (the LICENSE holder is given).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime

from utils.intake.brief import BriefReading
from utils.publishers.repo_files import ensure_readme, mit_license
from utils.publishers.workflow_lint import workflow_problems
from utils.publishers.workflows import (
    NOJEKYLL,
    deploys_pages,
    site_files,
    wants_workflows,
    without_unasked_workflows,
)
from utils.records import Attachments, RepoTarget, TaskRequest

INDEX = "index.html"
LICENSE = "LICENSE"


@dataclass(frozen=True)
class TreeInputs:
    """What besides the model's files decides the published tree of one round."""

    request: TaskRequest
    attachments: Attachments
    reading: BriefReading
    target: RepoTarget
    license_holder: str
    derived: tuple[str, ...] = ()  # files the service made from attachments or fetched documents
    previous_files: dict[str, bytes] | None = None  # round N-1's files (their workflows stay wanted)
    year: int = field(default_factory=lambda: datetime.now(UTC).year)

    @property
    def kept_attachments(self) -> tuple[str, ...]:
        """Attachment paths committed exactly as attached (the brief does not ask to change them)."""
        return tuple(a.path for a in self.attachments.files if not self.reading.may_change(a.path))

    @property
    def protected(self) -> tuple[str, ...]:
        """Paths a repair never changes: attachments kept as attached, derived files and LICENSE."""
        return tuple(dict.fromkeys([*self.kept_attachments, *self.derived, LICENSE]))


@dataclass(frozen=True)
class PublishedTree:
    """The files to commit, what the service wrote itself (path -> bytes), and what to tell the user."""

    files: dict[str, bytes]
    made: dict[str, bytes]
    warnings: tuple[str, ...] = ()

    def model_files(self, files: dict[str, bytes]) -> dict[str, bytes]:
        """``files`` (this tree, perhaps repaired) without what the service made and nobody changed since."""
        return {path: data for path, data in files.items() if self.made.get(path) != data}


def build_tree(model_files: dict[str, bytes], inputs: TreeInputs) -> PublishedTree:
    """The tree to self-check, scan and publish from the model's (or a repair's) files."""
    files, warnings = _with_attachments(model_files, inputs)
    wanted = wants_workflows(inputs.reading.asks_for_workflow, inputs.previous_files)
    files, dropped = without_unasked_workflows(files, wanted)
    if dropped:
        warnings.append(f"the brief asks for no workflow; not published: {', '.join(dropped)}")
    too_wide = workflow_problems(files, schedule=inputs.reading.asks_for_schedule,
                                 writes=inputs.reading.asks_for_writes)
    for path, problem in too_wide.items():  # still wider than the brief asks after generation's one re-ask
        del files[path]
        warnings.append(f"{problem}; not published")
    made: dict[str, bytes] = {LICENSE: mit_license(inputs.license_holder, inputs.year).encode()}
    readme = files.get("README.md", b"").decode("utf-8", errors="replace")
    files["README.md"] = ensure_readme(readme or None, inputs.request, inputs.target,
                                       attachment_paths=[a.path for a in inputs.attachments.files],
                                       published=sorted(path for path in files if path != "README.md")).encode()
    files[LICENSE] = made[LICENSE]
    if INDEX not in files and not deploys_pages(files):
        made[INDEX] = file_index(inputs.target.name, sorted(files)).encode()
        files[INDEX] = made[INDEX]
    files = site_files(files)
    if NOJEKYLL in files and NOJEKYLL not in model_files:
        made[NOJEKYLL] = files[NOJEKYLL]
    return PublishedTree(files, made, tuple(warnings))


def _with_attachments(model_files: dict[str, bytes], inputs: TreeInputs) -> tuple[dict[str, bytes], list[str]]:
    """The model's files with every attachment in place per the brief, and a warning per ignored copy."""
    files = dict(model_files)
    ignored = []
    for attachment in inputs.attachments.files:
        mine = model_files.get(attachment.path)
        if mine is not None and inputs.reading.may_change(attachment.path):
            continue  # the brief asks to change it and the model wrote it: the model's version is published
        if mine is not None and mine != attachment.data:
            ignored.append(attachment.path)
        files[attachment.path] = attachment.data
    warnings = [f"the model's copy of attachment '{path}' was ignored: the brief does not ask to change it, so "
                "it is published as attached" for path in ignored]
    return files, warnings


def file_index(title: str, paths: list[str]) -> str:
    """A small page listing the published files with relative links (for a repository task with no page)."""
    items = "\n".join(f'    <li><a href="./{html.escape(p, quote=True)}">{html.escape(p)}</a></li>'
                      for p in paths if p != INDEX and not p.startswith("."))
    name = html.escape(title)
    return (f"<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n"
            f"  <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"  <title>{name}</title>\n</head>\n<body>\n  <h1>{name}</h1>\n"
            f"  <p>The files of this repository:</p>\n  <ul>\n{items}\n  </ul>\n</body>\n</html>\n")
