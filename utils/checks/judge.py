"""The judging model call: verdicts on the checks only a reader can judge.

    judge checks + rubrics + the files they are about -> one model call
        -> {"verdicts": [{"check", "pass": true | false, "reason"}]}   (DESIGN.md, "Checks")

The files shown are those the checks, their rubrics or the brief name (a
workflow file counts as named when they speak of CI, a workflow, YAML or
Actions; else ``index.html`` and what it loads): text files in full within a
budget, SVG as text, images and other binary files by name and size; every
other file of the published tree is listed by path and size. A reply
that does not parse is retried once; then the checks are reported as not
judged (``passed`` None), which neither fails the app nor blocks publishing.

Never raises for a failed or unusable reply, never logs prompts, replies or
file contents, and never sends anything but the app's own files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from utils.checks.browser import CheckResult
from utils.checks.model_json import CallRecord, ask_json
from utils.checks.writer import check_key
from utils.deadline import Deadline
from utils.model.base import Model
from utils.model.prompt_parts import file_context, inline_code, render
from utils.paths import is_workflow_path

PURPOSE = "judging"
JUDGE_CONTEXT_BYTES = 60_000
REASON_LIMIT = 300
_SPEAKS_OF_CI = re.compile(r"\b(?:ci|workflows?|ya?ml|github actions|actions)\b", re.IGNORECASE)
SYSTEM = "You are a strict, fair grader of web apps. You answer with JSON only."


@dataclass(frozen=True)
class JudgeItem:
    """One check to judge and what a reviewer must confirm."""

    check: str
    rubric: str


@dataclass
class Judgement:
    """Results per check (in the order given), problems to report, and the calls made."""

    results: list[CheckResult]
    problems: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)


def judge(items: Sequence[JudgeItem], files: dict[str, bytes], brief: str, model: Model,
          deadline: Deadline) -> Judgement:
    """One judging call (retried once if unusable) for ``items`` against ``files``."""
    if not items:
        return Judgement([])
    messages = judge_messages(items, files, brief)
    answer = ask_json(model, messages, deadline, lambda data: parse_verdicts(data, items), PURPOSE)
    if answer.value is None:
        return Judgement([_result(item, None, "not judged: " + answer.problem) for item in items],
                         [answer.problem], answer.calls)
    verdicts = answer.value
    results = [_result(item, *verdicts.get(item.check, (None, "the judge gave no verdict"))) for item in items]
    return Judgement(results, [], answer.calls)


def judge_messages(items: Sequence[JudgeItem], files: dict[str, bytes], brief: str) -> list[dict[str, Any]]:
    """The chat messages of the judging call (``files``: the published tree)."""
    listed = "\n".join(f"{n}. {inline_code(item.check)}\n   Rubric: {item.rubric}" for n, item in enumerate(items, 1))
    mention = " ".join([*(f"{item.check} {item.rubric}" for item in items), brief])
    about = about_files(items, files, brief)
    shown, omitted = file_context(about, mention, JUDGE_CONTEXT_BYTES, license_text=True)
    others = [f"- {inline_code(p)} ({len(d):,} bytes)" for p, d in sorted(files.items()) if p not in about]
    others += [f"- {inline_code(p)} ({size:,} bytes; left out for length)" for p, size in omitted]
    user = render("judge.md", brief=brief.strip() or "(no brief given)", checks=listed, files=shown,
                  others="\n".join(others) or "None.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def about_files(items: Sequence[JudgeItem], files: dict[str, bytes], brief: str = "") -> dict[str, bytes]:
    """The files the checks or the brief name (by path or base name; workflows when they speak of CI), else
    index.html and the files it references."""
    text = " ".join([*(f"{item.check} {item.rubric}" for item in items), brief])
    named = {p: d for p, d in files.items() if _named(p, text) or (is_workflow_path(p) and _SPEAKS_OF_CI.search(text))}
    if named:
        return named
    page = files.get("index.html", b"").decode("utf-8", errors="replace")
    return {p: d for p, d in files.items() if p == "index.html" or (p != "LICENSE" and p in page)}


def _named(path: str, text: str) -> bool:
    """Whether ``text`` names ``path`` as a whole word (path or base name)."""
    base = path.rsplit("/", 1)[-1]
    return any(re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w-])", text) for name in {path, base})


def parse_verdicts(data: dict[str, Any], items: Sequence[JudgeItem]) -> dict[str, tuple[bool, str]]:
    """check -> (pass, reason) for the given checks; ValueError when the reply has no usable verdict."""
    entries = data.get("verdicts")
    if not isinstance(entries, list):
        raise ValueError('the JSON object has no "verdicts" list')
    keys = {check_key(item.check): item.check for item in items}
    verdicts: dict[str, tuple[bool, str]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("pass"), bool):
            continue
        check = keys.get(check_key(str(entry.get("check") or "")))
        if check is not None:
            verdicts.setdefault(check, (entry["pass"], str(entry.get("reason") or "")[:REASON_LIMIT]))
    if not verdicts:
        raise ValueError('no verdict names a given check with a boolean "pass"')
    return verdicts


def _result(item: JudgeItem, passed: bool | None, reason: str) -> CheckResult:
    """A verdict as a CheckResult: the reason is its value, and its error when it failed."""
    return CheckResult(check=item.check, js=None, passed=passed, value=reason,
                       error=reason if passed is False else None, seconds=0.0)

