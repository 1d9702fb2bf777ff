"""The generation stage: one model call writes every file; cut-off replies are continued,
unusable ones get one precise re-ask, revisions are applied on round N-1's files.

    reply --finish "length"--> continuation (at most MAX_CONTINUATIONS)
          --parse + apply----> files, problems
          --problems---------> one re-ask listing them --still unusable--> GenerationFailed (502)

A reply is unusable when it was cut off, holds no files, leaves without
``index.html`` an app that needs a page (the brief asks for one or a check inspects
the page: ``utils.model.prompt.page_required``), has an edit that matches nowhere, or has a fenced block without a
path while a file it wrote references a local script, stylesheet, page or data
file that no file provides (the block was most likely that file). A workflow
whose triggers or permissions are wider than the brief asks for
(``utils.publishers.workflow_lint``) is re-asked once too, but never fails the
build: publishing drops it with a warning.

Usage (tokens, provider, model, attempts, seconds) is logged once per build as
one structured line, whether the build succeeded or not.

Never puts a secret in a prompt (prompts are built from the request, which has
none); never logs prompts, replies or keys (only counts and one-line problem
summaries); never lets a hostile path from the model into the files.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote

from utils.deadline import Deadline
from utils.errors import GenerationFailed, ProvidersFailed
from utils.intake.brief import BriefReading, read_brief
from utils.intake.fetch import FetchedDocument
from utils.model.base import Completion, Model
from utils.model.derive_script import ScriptRunner
from utils.model.derived import Scripts, Source, derive_files, derive_sources
from utils.model.edits import apply_reply
from utils.model.prompt import build_messages, page_required, reask_message
from utils.model.replies import ParsedReply
from utils.model.source_data import render_source_data
from utils.model.usage import UsageTally
from utils.paths import UnsafePath, safe_relative_path
from utils.publishers.workflow_lint import workflow_problems
from utils.publishers.workflows import wants_workflows
from utils.records import Attachments, GeneratedApp, PreviousRound, RepoTarget, TaskRequest, Usage

log = logging.getLogger(__name__)

MAX_CONTINUATIONS = 2
CONTINUE_PROMPT = (
    "Your reply was cut off at the length limit. Continue exactly where it stopped, "
    "without repeating anything already sent and without any introduction."
)

# Local references a pathless block most likely meant to provide (images, fonts are not guessed at).
_REFERABLE_EXTENSIONS = {"js", "mjs", "css", "html", "htm", "json"}
_HTML_REFERENCE = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"'<>]+)["']""", re.IGNORECASE)
_JS_REFERENCE = re.compile(r"""\bfetch\s*\(\s*["'`]([^"'`$]+)["'`]"""
                           r"""|\bimport\b[^"'`;()]*?["']([^"']+)["']"""
                           r"""|\bimport\s*\(\s*["']([^"']+)["']\s*\)""")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_REFERENCE_PATTERNS = {"html": (_HTML_REFERENCE, _JS_REFERENCE), "htm": (_HTML_REFERENCE, _JS_REFERENCE),
                       "js": (_JS_REFERENCE,), "mjs": (_JS_REFERENCE,)}


@dataclass(frozen=True)
class _Data:
    """The data behind a build: documents fetched at build time, and the sandbox for `js:` derives (None: none)."""

    fetched: Sequence[FetchedDocument] = ()
    scripts: ScriptRunner | None = None
    brief: BriefReading = field(default_factory=BriefReading)  # which attachments may change, a page asked for


@dataclass(frozen=True)
class _Reading:
    """A reply applied: the files, every problem that blocks using them, the derived paths, and the problems
    that are derive blocks the service could not honour (reported rather than fatal after the re-ask)."""

    files: dict[str, bytes]
    problems: list[str]
    derived: tuple[str, ...]
    derive_problems: list[str]


@dataclass
class _Tally(UsageTally):
    """Usage of one generation, plus how often a reply was continued or re-asked."""

    continuations: int = 0
    reasks: int = 0


def generate_app(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                 previous: PreviousRound | None, model: Model, deadline: Deadline,
                 fetched: Sequence[FetchedDocument] = (), scripts: ScriptRunner | None = None) -> GeneratedApp:
    """Ask the model for the app (or its revision) and return every file of it (``fetched``: build-time fetches;
    ``scripts``: the sandbox that computes derive blocks' `js:` functions, None when there is no browser)."""
    tally = _Tally()
    brief = read_brief(request.brief, [a.path for a in attachments.files])  # the build's one reading of the brief
    try:
        reading = _generate(request, attachments, target, previous, model, deadline, tally,
                            _Data(fetched, scripts, brief))
    except GenerationFailed:
        _logged_usage(request, tally, "failed")
        raise
    warnings = tuple(f"a derive block was still not honoured after the re-ask, so its file was not written: "
                     f"{problem}" for problem in reading.derive_problems)
    return GeneratedApp(files=reading.files, usage=_logged_usage(request, tally, "ok"), derived=reading.derived,
                        warnings=warnings)


def _generate(request: TaskRequest, attachments: Attachments, target: RepoTarget, previous: PreviousRound | None,
              model: Model, deadline: Deadline, tally: _Tally, data: _Data) -> _Reading:
    """A usable reply, after at most one re-ask; after it, derive blocks that still fail are only reported."""
    source_data = render_source_data(data.fetched, attachments, request.brief)
    computed = data.scripts is not None
    messages = build_messages(request, attachments, target, previous, source_data=source_data, computed=computed,
                              reading=data.brief)
    base_files = dict(previous.files) if previous else {}
    provided = {a.path for a in attachments.files}
    sources = derive_sources(attachments, data.fetched)
    scripts = Scripts(data.scripts)  # one script-time budget for both replies
    require_index = page_required(data.brief, request.checks) or "index.html" in base_files
    text = _complete(model, messages, deadline, tally)
    reading = _interpret(text, base_files, provided, sources, scripts, require_index)
    reading.problems.extend(_workflow_problems(reading.files, request, previous))
    if not reading.problems:
        return reading
    tally.reasks += 1
    log.warning("model reply unusable; asking again",
                extra={"stage": "generation", "problems": _summaries(reading.problems)})
    messages = [*messages, {"role": "assistant", "content": text}, reask_message(reading.problems)]
    text = _complete(model, messages, deadline, tally)
    # a workflow still too wide after this re-ask is dropped by the published tree
    reading = _interpret(text, base_files, provided, sources, scripts, require_index)
    fatal = [problem for problem in reading.problems if problem not in reading.derive_problems]
    if fatal:
        raise GenerationFailed("the model's reply was still unusable after one re-ask: " + "; ".join(fatal))
    if reading.derive_problems:
        log.warning("derive blocks not honoured after the re-ask; published without them",
                    extra={"stage": "generation", "problems": _summaries(reading.derive_problems)})
    return reading


def _workflow_problems(files: dict[str, bytes], request: TaskRequest, previous: PreviousRound | None) -> list[str]:
    """Problems of the workflows the brief wants whose triggers or permissions are wider than it asks for."""
    reading = read_brief(request.brief)
    if not wants_workflows(reading.asks_for_workflow, previous.files if previous else None):
        return []  # unasked workflows are dropped when publishing, whatever they hold
    return list(workflow_problems(files, schedule=reading.asks_for_schedule, writes=reading.asks_for_writes).values())


def _logged_usage(request: TaskRequest, tally: _Tally, outcome: str) -> Usage:
    """The build's usage, after logging it as its one accounting line (counts only: no prompt, reply or key)."""
    usage = tally.usage()
    log.info("model usage", extra={"stage": "generation", "outcome": outcome, "task": request.task,
                                   "round": request.round, **asdict(usage),
                                   "continuations": tally.continuations, "reasks": tally.reasks})
    return usage


def _summaries(problems: Iterable[str]) -> list[str]:
    """The first line of each problem (later lines quote file content, which logs never hold)."""
    return [problem.splitlines()[0] for problem in problems if problem.strip()]


# ---------------------------------------------------------------- model calls

def _call(model: Model, messages: list[dict[str, Any]], deadline: Deadline, tally: _Tally) -> Completion:
    """One chat completion, counted in ``tally`` whether it succeeds or every provider fails."""
    try:
        completion = model.complete(messages, deadline)
    except ProvidersFailed as failure:
        tally.add_failed(failure.attempts)
        raise
    tally.add(completion)
    return completion


def _complete(model: Model, messages: list[dict[str, Any]], deadline: Deadline, tally: _Tally) -> str:
    """One reply, continued up to MAX_CONTINUATIONS times while it stops at the length limit."""
    completion = _call(model, messages, deadline, tally)
    text = completion.text
    for _ in range(MAX_CONTINUATIONS):
        if completion.finish_reason != "length":
            break
        tally.continuations += 1
        log.info("model reply cut off; asking for the rest", extra={"stage": "generation"})
        follow_up = [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": CONTINUE_PROMPT}]
        completion = _call(model, follow_up, deadline, tally)
        text += completion.text
    return text


# ---------------------------------------------------------------- judging a reply

def _interpret(text: str, base_files: dict[str, bytes], provided: set[str],
               sources: Mapping[str, Source], scripts: Scripts, require_index: bool = True) -> _Reading:
    """Apply a reply to the base files (derived files made from ``sources``, `js:` functions run by ``scripts``;
    ``require_index``: the app needs a page, so no ``index.html`` blocks it)."""
    applied = apply_reply(text, base_files, require_index=require_index)
    parsed, blocking = applied.parsed, list(applied.blocking)
    derived, derive_problems = derive_files(parsed.derived, sources, protected=sorted(provided), scripts=scripts)
    files = {**applied.files, **derived}
    blocking.extend(derive_problems)
    if parsed.pathless_lines:
        blocking.extend(_missing_references(files, _touched(parsed), provided))
    if not blocking:
        _log_tolerated(parsed.problems)
        return _Reading(files, [], tuple(derived), [])
    return _Reading(files, list(dict.fromkeys([*blocking, *parsed.problems])), tuple(derived), derive_problems)


def _log_tolerated(problems: Sequence[str]) -> None:
    """Note problems of a usable reply (a dropped hostile path, an illustrative block)."""
    if problems:
        log.warning("model reply used despite problems; offending parts dropped",
                    extra={"stage": "generation", "problems": _summaries(problems)})


def _touched(parsed: ParsedReply) -> list[str]:
    """Paths the reply wrote or edited, in order."""
    return list(dict.fromkeys([*parsed.files, *(edit.path for edit in parsed.edits)]))


def _missing_references(files: dict[str, bytes], touched: Sequence[str], provided: set[str]) -> list[str]:
    """One problem per local script/style/page/data file a touched file references but nothing provides."""
    problems = []
    for path in touched:
        for reference, resolved in _local_references(path, files.get(path, b"")):
            if resolved not in files and resolved not in provided:
                problems.append(f"'{path}' references '{reference}', but the app has no file '{resolved}': "
                                "send it as its path alone on a line followed by a fenced block")
    return problems


def _local_references(path: str, content: bytes) -> list[tuple[str, str]]:
    """(reference as written, path it resolves to) for each relative src/href/fetch/import in a file."""
    patterns = _REFERENCE_PATTERNS.get(posixpath.splitext(path)[1].lstrip(".").lower(), ())
    text = content.decode("utf-8", errors="replace")
    found: dict[tuple[str, str], None] = {}
    for pattern in patterns:
        for match in pattern.finditer(text):
            reference = next(group for group in match.groups() if group)
            resolved = _resolve(path, reference)
            if resolved is not None:
                found[(reference, resolved)] = None
    return list(found)


def _resolve(source: str, reference: str) -> str | None:
    """The app path a relative reference points to, or None for URLs, anchors, templates and other kinds."""
    target = reference.strip().split("#", 1)[0].split("?", 1)[0]
    if (not target or target.startswith(("/", "\\")) or _SCHEME.match(target)
            or any(mark in target for mark in ("${", "{{", "<", "\\")) or target.endswith("/")):
        return None
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), unquote(target)))
    if posixpath.splitext(resolved)[1].lstrip(".").lower() not in _REFERABLE_EXTENSIONS:
        return None
    try:
        return safe_relative_path(resolved)  # the name the file would be stored under
    except UnsafePath:
        return None
