"""Repair a failing app: ask the model for fixes, examine each fix, keep the best version.

While a check fails or the page reports errors, the model gets the failing
checks with what they returned, the errors, a bounded DOM excerpt and the
current files (``prompts/repair.md``) and replies with SEARCH/REPLACE edits or
whole files (``utils.model.edits.apply_reply``). At most ``repairs`` rounds,
each starting from the best version so far; a reply that cannot be applied or a
version that does no better is described to the next request, and a reply that
changes nothing ends the loop (the model sees nothing to change; that is not an
error). A repair starts
only when, beyond the examiner's reserve, there is room for a model call
(10 s) plus another browser pass as long as the last one.

Checks of every kind take part: given JavaScript, written JavaScript and
judged checks (with the reviewer's reason). A written or judged check that
still fails with the same outcome after a repair is *suspect* (the check may
be wrong, not the app): it is reported, left out of later repair prompts, and
no longer keeps the loop going.

Never changes a protected file (attachments, LICENSE), never raises for a
broken app or a failed model call, and never logs prompts or replies.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from utils.checks.browser import CheckResult
from utils.checks.examine import REPORT_LIMIT, Examination, Examiner
from utils.checks.model_json import CallRecord
from utils.checks.plan import FILES, GIVEN_JS, JUDGED, PREVIOUS, CheckPlan
from utils.deadline import Deadline
from utils.errors import GenerationFailed
from utils.model.base import Model
from utils.model.edits import apply_reply
from utils.model.prompt_parts import fenced, file_context, inline_code, omitted_note, render
from utils.model.usage import UsageTally

log = logging.getLogger(__name__)

MIN_MODEL_SECONDS = 10.0
UNCHANGED = "the reply changed nothing"
REPAIR_CONTEXT_BYTES = 150_000


@dataclass
class RepairRun:
    """What the repair loop did: every version examined, why it stopped, rounds attempted, model usage."""

    history: list[Examination]
    stop_reason: str = ""  # passed | repairs exhausted | no time left | model failed | no repairs allowed
    #                        | repair changed nothing
    attempts: int = 0
    usage: UsageTally = field(default_factory=UsageTally)
    suspects: set[int] = field(default_factory=set)  # written/judged checks a repair did not change
    calls: list[CallRecord] = field(default_factory=list)  # the repair calls, one record each

    @property
    def chosen(self) -> int:
        """Index of the best version: most checks passing, then fewest errors, the earliest on a tie."""
        return max(range(len(self.history)), key=lambda i: (self.history[i].score, -i))


def repair_until_clean(examiner: Examiner, plan: CheckPlan, files: dict[str, bytes], brief: str,
                       model: Model, repairs: int, protected: Collection[str]) -> RepairRun:
    """Examine the first version, then repair from the best one while allowed."""
    run = RepairRun(history=[examiner.examine(files)])
    run.stop_reason = _repair(run, examiner, plan, brief, model, repairs, protected)
    return run


def _repair(run: RepairRun, examiner: Examiner, plan: CheckPlan, brief: str, model: Model,
            repairs: int, protected: Collection[str]) -> str:
    """The repair rounds, recorded in ``run``; returns why they stopped."""
    best = run.history[0]
    notes: list[str] = []  # what earlier attempts did, for the next prompt
    if best.browser_failure:
        return "browser failed"
    while not best.clean_except(run.suspects):
        stop = _why_stop(run.attempts, repairs, examiner, run.history[-1])
        if stop:
            return stop
        run.attempts += 1
        budget = Deadline(examiner.deadline.remaining() - examiner.reserve - run.history[-1].seconds)
        candidate, note = _ask_for_repair(best, plan, brief, model, budget, protected, notes, run)
        if candidate is None and note is None:
            return "model failed"
        if candidate is None and note == UNCHANGED:
            return "repair changed nothing"  # the model sees nothing to change: asking again would not help
        if candidate is None:
            notes.append(note or "")
            continue
        run.history.append(examiner.examine(candidate))
        run.suspects |= unchanged_failures(best, run.history[-1], plan)
        if run.history[-1].score > best.score:
            best = run.history[-1]
        elif not run.history[-1].clean_except(run.suspects):
            notes.append(_attempt_note(run.history[-1], plan))
    return "only suspect checks fail" if run.suspects and not best.clean else "passed"


def unchanged_failures(before: Examination, after: Examination, plan: CheckPlan) -> set[int]:
    """Written and judged checks that fail in both versions with the same outcome (suspect checks).

    A written JavaScript check's outcome is its value and error; a judged
    check's is its failure alone (a reviewer words each reason anew).
    """
    suspects = set()
    for index, (old, new) in enumerate(zip(before.results, after.results, strict=True)):
        if plan.kind(index) == GIVEN_JS or old.passed is not False or new.passed is not False:
            continue
        if plan.kind(index) == JUDGED or (old.value, old.error) == (new.value, new.error):
            suspects.add(index)
    return suspects


def _why_stop(attempts: int, repairs: int, examiner: Examiner, last: Examination) -> str | None:
    """Why no further repair may start, or None."""
    if repairs <= 0:
        return "no repairs allowed"
    if attempts >= repairs:
        return "repairs exhausted"
    left = examiner.deadline.remaining() - examiner.reserve
    if left < last.seconds + MIN_MODEL_SECONDS:
        return "no time left"
    return None


def _ask_for_repair(exam: Examination, plan: CheckPlan, brief: str, model: Model, budget: Deadline,
                    protected: Collection[str], notes: Sequence[str],
                    run: RepairRun) -> tuple[dict[str, bytes] | None, str | None]:
    """Ask once for a fix; (new files, None), (None, a note on why not), or (None, None) if the model failed."""
    try:
        completion = model.complete(repair_messages(exam, plan, brief, protected, notes, run.suspects), budget)
    except GenerationFailed as failure:
        log.warning("self-check repair call failed", extra={"stage": "self_check", "error": failure.message})
        run.calls.append(CallRecord("repair", outcome="failed"))
        return None, None
    run.usage.add(completion)
    run.calls.append(CallRecord("repair", completion.provider, completion.model, completion.prompt_tokens,
                                completion.completion_tokens, round(sum(a.seconds for a in completion.attempts), 3)))
    applied = apply_reply(completion.text, exam.files, protected)
    if applied.blocking:
        return None, "the reply could not be applied: " + "; ".join(applied.blocking[:5])
    if applied.files == exam.files:
        return None, UNCHANGED
    return applied.files, None


# ---------------------------------------------------------------- the repair prompt

def repair_messages(exam: Examination, plan: CheckPlan, brief: str, protected: Collection[str],
                    notes: Sequence[str] = (), suspects: Collection[int] = ()) -> list[dict[str, Any]]:
    """The chat messages asking the model to fix ``exam``'s failures with edits (suspect checks left out)."""
    failed = [(label, r) for i, (label, r) in enumerate(zip(plan.labels, exam.results, strict=True))
              if r.passed is False and i not in suspects]
    failing = [_failing_entry(n, label, r, _where(plan, label)) for n, (label, r) in enumerate(failed, 1)]
    passing = [f"- {inline_code(r.js or label)}" for label, r in exam.labelled(plan, True)]
    mention = " ".join([brief, *(c.text for c in plan.checks)])
    files, omitted = file_context(exam.files, mention, REPAIR_CONTEXT_BYTES)
    user = render(
        "repair.md", brief=brief.strip() or "(no brief given)",
        failing="\n".join(failing) or "None: every check passes; fix the errors below.",
        errors="\n".join(f"- {e}" for e in exam.errors[:REPORT_LIMIT]) or "None.",
        passing="\n".join(passing) or "None.",
        attempts=_attempts_section(notes),
        dom=fenced(_dom_excerpt(exam), "html"),
        files=files, omitted=omitted_note(omitted),
        protected=", ".join(inline_code(p) for p in sorted(protected)) or "(none)",
    )
    return [{"role": "system", "content": render("system.md")}, {"role": "user", "content": user}]


def _dom_excerpt(exam: Examination) -> str:
    """The DOM excerpt, or why there is none (an app without index.html has no page: nothing failed to load)."""
    if exam.snapshot:
        return exam.snapshot
    if "index.html" not in exam.files:
        return "(no DOM excerpt: the app has no index.html; its checks read the files, not a page)"
    return "(no DOM excerpt: the page did not load)"


def _where(plan: CheckPlan, label: str) -> str:
    """Where a check was evaluated, when not in the page (a files check reads the repository's files)."""
    kind = plan.kind(plan.labels.index(label)) if label in plan.labels else ""
    return (" (evaluated on the repository's files: `files` maps each path to its text, `sizes` to its bytes, "
            "`sources` holds the parsed attachments)") if kind == FILES else ""


def _failing_entry(number: int, label: str, result: CheckResult, where: str = "") -> str:
    """One failing check: its expression, origin, last value and error."""
    origin = " (from the previous round: it must keep passing)" if label.startswith(PREVIOUS) else ""
    origin += where
    if result.js is None:  # judged by a reviewer: the reason is what to fix
        return f"{number}. {inline_code(label)} (judged by a reviewer)\n   reviewer's reason: {result.value or 'none'}"
    lines = [f"{number}. {inline_code(result.js or label)}{origin}",
             f"   returned: {inline_code(result.value or 'nothing')} after polling {result.seconds:.1f} s"
             + (" (the page had gone quiet: no request, timer or DOM change)" if result.quiet else "")]
    if result.error:
        lines.append(f"   error: {result.error}")
    if result.js and label.removeprefix(PREVIOUS) != result.js:
        lines.append(f"   described as: {label.removeprefix(PREVIOUS)}")
    return "\n".join(lines)


def _attempts_section(notes: Sequence[str]) -> str:
    """What earlier repair attempts did (empty for the first)."""
    if not notes:
        return ""
    listed = "\n".join(f"- {note}" for note in notes)
    return f"## Earlier repair attempts (they did not work; try a different fix)\n\n{listed}\n\n"


def _attempt_note(exam: Examination, plan: CheckPlan) -> str:
    """How a repaired version fared, for the next prompt."""
    failing = [r.js or label for label, r in exam.labelled(plan, False)]
    note = f"an attempt left {exam.failed} check(s) failing and {len(exam.errors)} error(s)"
    if failing:
        note += ": " + ", ".join(inline_code(f) for f in failing[:5])
    if exam.errors:
        note += "; errors: " + " | ".join(exam.errors[:3])
    return note
