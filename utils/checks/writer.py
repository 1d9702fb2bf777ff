"""The check-writing model call: turn plain-English checks into JavaScript or judge rubrics.

    brief + plain-English checks + attachment names/previews (+ extra data context)
        -> one model call (same provider chain, in parallel with generation)
        -> {"checks": [{"check", "kind": "js" | "files" | "run" | "judge", "js" | "rubric"}]}  (DESIGN.md, "Checks")

``js`` runs on the served site; ``files`` on the repository as it will be
committed (``files``, ``sizes``, ``sources``); ``run`` on the finished
workflow run (``run``: conclusion and log); ``judge`` is a reviewer's rubric.

The writer never sees the app, so the model that writes the app does not also
write its tests. A reply that does not parse is retried once, then reported;
an entry naming no given check, or a ``js`` entry that is not a JavaScript
expression, is dropped and reported. ``extra_context`` is text about data the
build fetched or converted (spreadsheets as tables, fetched documents); it
defaults to empty.

Attachments are shown by preview, except those the brief asks to change
(shown whole, so a check about the fix can say what the fix removes).

Never rules: never sees or sends the app's files, never publishes what it
writes (written checks are for the self-check only), never raises for a
failed or unusable reply, never logs prompts, replies or check text.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from utils.checks.model_json import CallRecord, ask_json
from utils.checks.plan import publish_reserve
from utils.deadline import Deadline
from utils.intake.brief import read_brief
from utils.intake.check_kinds import parses_as_expression
from utils.model.base import Model
from utils.model.prompt_parts import fenced, inline_code, render
from utils.records import Attachments, Check, WrittenCheck

PURPOSE = "check writing"
PREVIEW_CHARS = 1_500
CHANGEABLE_CHARS = 100_000  # attachments the brief asks to change are shown whole up to this many characters
KINDS = ("js", "files", "run", "judge")
SCRIPT_KINDS = ("js", "files", "run")  # the kinds whose entry is a JavaScript expression
SYSTEM = "You write automated acceptance tests for static web apps. You answer with JSON only."


def reuse_written(stored: Sequence[dict[str, Any]], checks: Sequence[Check],
                  previous_checks: Sequence[Check]) -> list[WrittenCheck]:
    """Round N-1's written checks that this round reuses without asking again: those of this round's
    plain-English checks sent again, and (as previous-round checks) those of round N-1's other ones."""
    current = {check_key(text): text for text in plain_checks(checks)}
    earlier = {check_key(text) for text in plain_checks(previous_checks)}
    reused: dict[str, WrittenCheck] = {}
    for entry in stored:
        text, kind = str(entry.get("check") or ""), entry.get("kind")
        key = check_key(text)
        if kind not in KINDS or key in reused or (key not in current and key not in earlier):
            continue
        js = str(entry.get("js") or "") or None
        if kind in SCRIPT_KINDS and (js is None or not parses_as_expression(js)):
            continue
        reused[key] = WrittenCheck(current.get(key, text), str(kind), js if kind != "judge" else None,
                                   str(entry.get("rubric") or text), previous=key not in current)
    return list(reused.values())


@dataclass
class WrittenChecks:
    """What the check-writing call produced: the checks, problems to report, and its calls."""

    checks: list[WrittenCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)


def plain_checks(checks: Sequence[Check]) -> list[str]:
    """The checks that need writing: those that are not JavaScript, each once."""
    return list(dict.fromkeys(c.text for c in checks if not c.js))


def write_checks(checks: Sequence[Check], brief: str, attachments: Attachments, model: Model,
                 deadline: Deadline, extra_context: str = "") -> WrittenChecks:
    """One check-writing call (retried once if unusable) for the plain-English ``checks``."""
    wanted = plain_checks(checks)
    if not wanted:
        return WrittenChecks()
    messages = write_messages(wanted, brief, attachments, extra_context)
    answer = ask_json(model, messages, deadline, lambda data: parse_written(data, wanted), PURPOSE)
    if answer.value is None:
        return WrittenChecks(problems=[answer.problem], calls=answer.calls)
    written, problems = answer.value
    return WrittenChecks(written, problems, answer.calls)


def write_messages(wanted: Sequence[str], brief: str, attachments: Attachments,
                   extra_context: str = "") -> list[dict[str, Any]]:
    """The chat messages of the check-writing call."""
    listed = "\n".join(f"{n}. {inline_code(text)}" for n, text in enumerate(wanted, 1))
    extra = f"\n## Data the app is built from\n\n{extra_context.strip()}\n" if extra_context.strip() else ""
    changeable = read_brief(brief, [a.path for a in attachments.files]).may_change
    user = render("write_checks.md", brief=brief.strip() or "(no brief given)", checks=listed,
                  attachments=_attachments(attachments, changeable), extra=extra)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _attachments(attachments: Attachments, changeable: Callable[[str], bool] = lambda path: False) -> str:
    """Each attachment's path, type, size, SHA-256 and a bounded preview (never the app); an attachment the brief
    asks to change is shown whole (within ``CHANGEABLE_CHARS``), so a check about its fix ("execute.py does not
    contain the typo") can name what the fix removes."""
    entries = []
    budget = CHANGEABLE_CHARS
    for a in attachments.files:
        head = (f"- {inline_code(a.path)} ({a.media_type}, {len(a.data):,} bytes, "
                f"SHA-256 {hashlib.sha256(a.data).hexdigest()})")
        text = _whole_text(a.data) if changeable(a.path) else None
        if text is not None and len(text) <= budget:
            budget -= len(text)
            entries.append(head + "\n  The brief asks to change this file; its whole current content:\n\n"
                           + fenced(text))
            continue
        preview = a.preview.strip()[:PREVIEW_CHARS]
        entries.append(head + ("\n  Preview:\n  " + fenced(preview).replace("\n", "\n  ") if preview else ""))
    entries += [f"- {inline_code(link.name)}: a link, not published" for link in attachments.links]
    return "\n".join(entries) or "None."


def _whole_text(data: bytes) -> str | None:
    """``data`` as UTF-8 text, or None for binary data."""
    try:
        return None if b"\x00" in data else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_written(data: dict[str, Any], wanted: Sequence[str]) -> tuple[list[WrittenCheck], list[str]]:
    """The usable entries of a reply and what was wrong with the rest; ValueError when it has none."""
    entries = data.get("checks")
    if not isinstance(entries, list):
        raise ValueError('the JSON object has no "checks" list')
    by_key = {check_key(text): text for text in wanted}
    written: dict[str, WrittenCheck] = {}
    problems: list[str] = []
    for entry in entries:
        check, problem = _entry(entry, by_key)
        if problem:
            problems.append(problem)
        elif check is not None and check.check not in written:
            written[check.check] = check
    if entries and not written:
        raise ValueError("no entry is usable: " + "; ".join(problems[:5]))
    missing = [text for text in wanted if text not in written]
    problems += [f"no executable form was written for check {inline_code(text)}" for text in missing]
    return [written[text] for text in wanted if text in written], problems


def _entry(entry: object, by_key: dict[str, str]) -> tuple[WrittenCheck | None, str]:
    """One reply entry as a WrittenCheck, or the reason it is unusable."""
    if not isinstance(entry, dict):
        return None, "an entry is not an object"
    text = by_key.get(check_key(str(entry.get("check") or "")))
    if text is None:
        return None, f"an entry names no given check: {inline_code(str(entry.get('check'))[:120])}"
    kind = entry.get("kind")
    if kind not in KINDS:
        return None, f"check {inline_code(text)} has kind {kind!r}, not js, files, run or judge"
    if kind == "judge":
        rubric = str(entry.get("rubric") or "").strip()
        return WrittenCheck(text, "judge", rubric=rubric or text), ""
    js = str(entry.get("js") or "").strip()
    if not parses_as_expression(js):
        return None, f"the JavaScript written for check {inline_code(text)} is not an expression"
    return WrittenCheck(text, str(kind), js=js), ""


def check_key(text: str) -> str:
    """A check's text for matching: case and spacing ignored."""
    return re.sub(r"\s+", " ", text).strip().lower()


class CheckWriting:
    """The check-writing call running in a background thread while the app is generated."""

    def __init__(self, checks: Sequence[Check], brief: str, attachments: Attachments, model: Model,
                 deadline: Deadline, extra_context: str = ""):
        self._result = WrittenChecks()
        self._thread = threading.Thread(target=self._run, name="check-writing", daemon=True,
                                        args=(checks, brief, attachments, model, deadline, extra_context))
        self._thread.start()

    def _run(self, *args: Any) -> None:
        """Write the checks; never raises (a failure is reported as a problem)."""
        try:
            self._result = write_checks(*args)
        except Exception as exc:  # a report, never a failed build
            self._result = WrittenChecks(problems=[f"check writing failed: {type(exc).__name__}"])

    def result(self, deadline: Deadline) -> WrittenChecks:
        """The written checks, waiting for the call at most until the publishing reserve of ``deadline`` begins
        (past it the self-check cannot use them, and waiting would make the notification late)."""
        self._thread.join(timeout=max(0.0, deadline.remaining() - publish_reserve(deadline)))
        if self._thread.is_alive():
            return WrittenChecks(problems=["check writing did not finish before the deadline"])
        return self._result
