"""One reading of the brief: does it ask for a workflow (on a schedule? writing to the repository?), for a page,
and which attachments may the model change?

The brief alone is read (never fetched documents, attachments or checks, whose text comes from strangers), one
clause at a time, with URLs blanked out first (``.../github-actions/...`` in a link asks for nothing). A clause
whose asking word comes after a negation in the same clause ("No CI, no workflows.", "Do not use GitHub
Actions", "keep uid.txt as-is") does not ask; "don't forget to add a workflow" still does. Each decision keeps
the clause that made it, for the build report.

Never raises on any text, and never reads more than ``MAX_BRIEF_CHARS`` of it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_BRIEF_CHARS = 100_000

_URL = re.compile(r"\bhttps?://\S+", re.IGNORECASE)
# Clause ends: sentence punctuation before whitespace or the end, a newline, a semicolon, or a contrasting "but".
_CLAUSE_END = re.compile(r"[.!?]+(?=\s|$)|[;\n]+|,?\s+but\s+", re.IGNORECASE)
_NEGATION = re.compile(
    r"\b(?:no|not|never|without|nor|neither|avoid|don'?t|doesn'?t|mustn'?t|shouldn'?t|won'?t|cannot|can'?t)\b"
    r"|\b(?:do|does|must|should|will|need)\s+not\b", re.IGNORECASE)
# A negation that asks all the same ("don't forget to add ...", "not only a page but ...").
_NOT_A_NEGATION = re.compile(r"\b(?:don'?t|do not|never|not)\s+(?:forget|omit|skip|neglect|only)\b", re.IGNORECASE)

_WORKFLOW = re.compile(r"\.github/workflows|\bgithub[\s-]+actions?\b|\bci\b|\bcontinuous integration\b"
                       r"|\bworkflows?\b.*\.ya?ml\b|\.ya?ml\b.*\bworkflows?\b", re.IGNORECASE)
_PAGE = re.compile(r"\bindex\.html\b|\bweb[\s-]?(?:page|app|site)s?\b|\bsingle[\s-]page\b|\bhtml\b|\bwebsite\b"
                   r"|\b(?:a|the|one|static|landing|simple)\s+(?:\w+\s+)?page\b"
                   r"|\b(?:display|displays|render|renders|show|shows|button|form|heading|<title>|title)\b",
                   re.IGNORECASE)
_SCHEDULE = re.compile(r"\bschedul\w*|\bcron\b|\b(?:hourly|daily|nightly|weekly|monthly)\b|\bevery\s+(?:day|hour|"
                       r"night|week|month|\d+\s+(?:minutes?|hours?|days?))\b", re.IGNORECASE)
# A workflow that writes to the repository: a write permission named, a push or commit back, a release, issues.
_WRITES = re.compile(r"\b(?:contents|issues|pull-requests|packages|deployments|statuses|actions):\s*write\b"
                     r"|\bwrite\s+(?:access|permissions?)\b|\b(?:commit|push)(?:e?s|ed|ing)?\b.{0,40}\b(?:back|to\s+"
                     r"(?:the\s+)?(?:repo|repository|branch|main|gh-pages))\b|\b(?:create|publish)s?\s+(?:a\s+)?"
                     r"releases?\b|\b(?:open|create|comment)s?\s+(?:on\s+)?(?:an?\s+)?(?:issues?|pull\s+requests?)\b",
                     re.IGNORECASE)
_GITHUB_PAGES = re.compile(r"\b(?:github\s+)?pages\b(?!\s*(?:that|which))", re.IGNORECASE)
_CHANGE = re.compile(r"\b(?:fix|fixes|fixed|fixing|correct|correcting|modify|modifying|update|updating|edit|editing"
                     r"|change|changing|repair|repairing|debug|debugging|patch|patching|rewrite|rewriting|refactor"
                     r"|refactoring|improve|improving|extend|extending|amend|amending|adjust|adjusting)\b",
                     re.IGNORECASE)
_KEEP = re.compile(r"\bas[\s-]is\b|\bunchanged\b|\bverbatim\b|\buntouched\b|\bbyte[\s-]for[\s-]byte\b",
                   re.IGNORECASE)


@dataclass(frozen=True)
class BriefReading:
    """What the brief asks for, each decision with the clause that made it ("" when nothing asked)."""

    asks_for_workflow: bool = False
    asks_for_page: bool = False
    changeable: tuple[str, ...] = ()  # attachment paths the brief asks to change
    because: dict[str, str] = field(default_factory=dict)  # "workflow", "page", ... or an attachment path -> clause
    asks_for_schedule: bool = False  # something run on a schedule (a workflow's `schedule` trigger)
    asks_for_writes: bool = False  # a workflow that writes to the repository (push, commit back, release, issues)

    def may_change(self, path: str) -> bool:
        """True when the brief asks to change the attachment at ``path``."""
        return path in self.changeable

    def to_report(self) -> dict[str, object]:
        """The decision as the build report shows it."""
        return {"workflow": self.asks_for_workflow, "page": self.asks_for_page,
                "schedule": self.asks_for_schedule, "writes": self.asks_for_writes,
                "attachments_to_change": list(self.changeable), "because": dict(self.because)}


def read_brief(brief: str, attachment_paths: Iterable[str] = ()) -> BriefReading:
    """Read ``brief`` once: a workflow asked for, a page asked for, and the attachments it asks to change."""
    clauses = brief_clauses(brief)
    because: dict[str, str] = {}
    workflow = _first_asking(clauses, _WORKFLOW)
    if workflow:
        because["workflow"] = workflow
    page = _first_asking([_GITHUB_PAGES.sub(" ", clause) for clause in clauses], _PAGE)
    if page:
        because["page"] = page
    changeable = []
    for path in attachment_paths:
        clause = _asks_to_change(clauses, path)
        if clause:
            changeable.append(path)
            because[path] = clause
    schedule, writes = _first_asking(clauses, _SCHEDULE), _first_asking(clauses, _WRITES)
    because.update({name: clause for name, clause in (("schedule", schedule), ("writes", writes)) if clause})
    return BriefReading(bool(workflow), bool(page), tuple(changeable), because, asks_for_schedule=bool(schedule),
                        asks_for_writes=bool(writes))


def brief_clauses(brief: str) -> list[str]:
    """The brief's clauses, URLs blanked, in order (empty ones dropped)."""
    text = _URL.sub(" ", (brief or "")[:MAX_BRIEF_CHARS])
    return [clause.strip() for clause in _CLAUSE_END.split(text) if clause.strip()]


def asks(clause: str, pattern: re.Pattern[str]) -> bool:
    """True when ``pattern`` occurs in ``clause`` with no negation before its first occurrence."""
    found = pattern.search(clause)
    if found is None:
        return False
    before = _NOT_A_NEGATION.sub(" ", clause[:found.start()])
    return _NEGATION.search(before) is None


def _first_asking(clauses: list[str], pattern: re.Pattern[str]) -> str:
    """The first clause that asks for ``pattern``, or ""."""
    return next((clause for clause in clauses if asks(clause, pattern)), "")


def _asks_to_change(clauses: list[str], path: str) -> str:
    """The clause asking to change the attachment ``path`` (named by its path or file name), or ""."""
    names = {path, posixpath.basename(path)}
    named = re.compile("|".join(rf"(?<![\w./-]){re.escape(name)}(?![\w/-]|\.\w)" for name in sorted(names)),
                       re.IGNORECASE)
    for clause in clauses:
        if not named.search(clause) or _KEEP.search(clause):
            continue
        if asks(clause, _CHANGE):
            return clause
    return ""
