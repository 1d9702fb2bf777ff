"""Build the chat messages that ask the model for an app (round 1) or its revision.

The wording lives in readable templates under ``utils/model/prompts/`` (``string.Template``
placeholders such as ``$brief``); this module fills them from the request, the
decoded attachments, the repository target and, for revisions, the previous
round's files. It must never put a secret in a prompt: it reads only the brief,
the checks, attachment names/previews, public URLs and the documents fetched from
them (``source_data``) (never the shared secret,
tokens, the requester's email, the nonce or the evaluation URL).

Revisions show the current files within ``MAX_CONTEXT_BYTES`` (``prompt_parts.file_context``:
whole files in priority order; those that no longer fit are listed by name and size, and the
prompt asks for whole replacements of those, not edits). The contract the prompt lists comes
from ``utils.intake.check_contract``.

Derive blocks are taught in the system message by one of two templates, and the
user message's checklist and data section say the same: ``derive.md`` when a
sandbox can run `js:` functions (compute every data-dependent figure that way),
``derive_without_scripts.md`` when it cannot (conversions only; computed blocks
are unavailable). The two are never shown together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from utils.intake.brief import BriefReading, read_brief
from utils.intake.check_contract import check_contract
from utils.model.prompt_parts import fenced, file_context, inline_code, omitted_note, render
from utils.records import Attachment, Attachments, Check, LinkedAttachment, PreviousRound, RepoTarget, TaskRequest

MAX_PREVIEW_CHARS = 2000
# Bytes of attachments the brief asks to change shown whole (the model cannot fix what it sees only the head of).
MAX_CHANGEABLE_BYTES = 150_000
# A JavaScript check that reads the page (not only published files) needs an index.html.
_READS_PAGE = re.compile(r"\b(?:document|window|navigator|location)\b|\$\(")
# Bytes of current files shown to the model in a revision (~75-85k tokens of code): with a 16k-token
# reply and the rest of the prompt this still fits a 128k-token context window.
MAX_CONTEXT_BYTES = 300_000
# Where the source-data section goes in round1.md and revision.md: put in after the templates are filled,
# so it needs no parameter threaded through each prompt builder, and vanishes with its heading when empty.
SOURCE_DATA_MARK = "\x00source-data\x00"
SELF_CHECK_DERIVE_MARK = "\x00derive\x00"  # the self-check line about derive blocks, put in the same way

# The checklist's first line and the checks' introduction: on a page, or on the files when no page is asked for.
HOLDS = {
    True: "- Every check above holds on page load with no user action; every id and selector in the contract exists.",
    False: "- Every check above holds for the files exactly as you send them (and for the workflow run, when the "
           "brief asks for a workflow).",
}
CHECKS_INTRO = {
    True: "The app is graded on each of these checks, quoted verbatim. JavaScript checks are evaluated in a "
          "headless browser on the live page after it loads, without user action, and must be truthy. "
          "Plain-English checks are tested the same way on the page and the published files, on the "
          "repository's files as committed, or on the workflow run, or judged by a reviewer.",
    False: "The repository is graded on each of these checks, quoted verbatim. Plain-English checks are tested "
           "on the repository's files exactly as committed, on the published files, or on the workflow run, or "
           "judged by a reviewer; JavaScript checks are evaluated in a headless browser on the published site "
           "and must be truthy.",
}
HOLDS_MARK = "\x00holds\x00"
SELF_CHECK = (
    HOLDS_MARK,
    "- Every URL is relative (`./...`); every library URL pins an exact version; no server code, no build step.",
    "- Attachments are read from exactly the paths listed (`./<path>`), and only those the task lists as "
    "changeable are sent, whole, at the same path.",
    "- A value an element is said to show is in it bare and exact (`25000000`, not `25,000,000` or `25M`); "
    "labels and units go in a neighbouring element.",
    SELF_CHECK_DERIVE_MARK,
    "- README.md has a title, summary, the live link, setup, usage, how the code works and `## License` (MIT).",
    "- Every file is complete (no placeholders), each is a path line plus a fenced block, Markdown uses ````.",
)
# How figures that depend on data are made, with and without the sandbox that runs derive blocks' `js:` functions.
DERIVE_CHECK = {
    True: "- A file that is another format or a copy of an attachment is a `derive` block, and every figure that "
          "depends on data is computed by a derive block's `js` function; none is typed by hand.",
    False: "- A file that is another format or a copy of an attachment is a `derive` block, never typed by hand; "
           "figures from data are computed from the data shown, never invented.",
}
COMPUTE_NOTE = {
    True: "Where the brief asks for figures computed from it (a maximum, a filter, a count, a total), compute them "
          "with a derive block's `js` function: it receives every row, also any left out below.",
    False: "Where the brief asks for figures computed from it (a maximum, a filter, a count), compute them from the "
           "rows below and write them into the files.",
}


# ---------------------------------------------------------------- public API

def page_required(reading: BriefReading, checks: Sequence[Check]) -> bool:
    """True when the app needs an ``index.html``: the brief asks for a page, or a JavaScript check reads one."""
    return reading.asks_for_page or any(c.js and _READS_PAGE.search(c.js) for c in checks)


def build_messages(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                   previous: PreviousRound | None = None, *,
                   max_context_bytes: int = MAX_CONTEXT_BYTES, source_data: str = "",
                   computed: bool = False, reading: BriefReading | None = None) -> list[dict[str, Any]]:
    """The OpenAI chat messages (system + user) asking for the app or its revision.

    ``source_data``: what ``utils.model.source_data.render_source_data`` made of build-time fetches and
    attachment tables ("" for none). ``computed``: derive blocks may carry a `js:` function (a sandbox runs
    them); without it the prompt says they are unavailable. ``reading``: the build's reading of the brief
    (which attachments may change, whether a page is asked for; made here if not given)."""
    if reading is None:
        reading = read_brief(request.brief, [a.path for a in attachments.files])
    derive = render("derive.md" if computed else "derive_without_scripts.md")
    system = {"role": "system", "content": render("system.md") + "\n" + derive}
    if previous is None:
        user = _round1_prompt(request, attachments, target, reading)
    else:
        user = _revision_prompt(request, attachments, target, previous, (max_context_bytes, reading))
    user = user.replace(SELF_CHECK_DERIVE_MARK, DERIVE_CHECK[computed])
    user = user.replace(SOURCE_DATA_MARK, _source_data_section(source_data, computed))
    if reading.asks_for_workflow:  # how to write a workflow that deploys Pages (issue 14)
        user = user.rstrip("\n") + "\n\n" + render("workflow.md")
    return [system, {"role": "user", "content": user}]


def _source_data_section(source_data: str, computed: bool) -> str:
    """The prompt section holding fetched documents and attachment tables, or nothing."""
    if not source_data.strip():
        return ""
    return render("source_data.md", source_data=source_data.strip(), compute=COMPUTE_NOTE[computed])


def reask_message(problems: Sequence[str]) -> dict[str, Any]:
    """A user message listing exactly what was wrong and asking for the complete reply again."""
    listed = "\n".join(_bullet(problem) for problem in problems) or "- the reply could not be parsed"
    return {"role": "user", "content": render("reask.md", problems=listed)}


# ---------------------------------------------------------------- prompts

def _common_values(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                   checks: Sequence[Check], reading: BriefReading) -> dict[str, str]:
    """Placeholders shared by the round-1 and revision templates."""
    page = page_required(reading, checks)
    return {
        "checks_intro": CHECKS_INTRO[page],
        "task": request.task,
        "round": str(request.round),
        "brief": request.brief.strip() or "(no brief given)",
        "pages_url": target.pages_url,
        "repo_url": target.repo_url,
        "checks": _numbered_checks(request.checks),
        "contract": _contract_list(check_contract(checks)),
        "attachments": _attachment_list(attachments, reading),
        "self_check": "\n".join(SELF_CHECK).replace(HOLDS_MARK, HOLDS[page]),
        "source_data": SOURCE_DATA_MARK,
    }


def _round1_prompt(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                   reading: BriefReading) -> str:
    """The user message for a first build."""
    values = _common_values(request, attachments, target, request.checks, reading)
    return render("round1.md", what_to_send=_what_to_send(page_required(reading, request.checks), target),
                  **values)


def _what_to_send(page: bool, target: RepoTarget) -> str:
    """The round-1 prompt's list of files to send: a page's files, or only what the brief names."""
    if page:
        return ("Every file of the app, complete, in the reply format: `index.html`, any scripts, styles and "
                "other assets it needs, every other file the brief asks for at exactly the path the brief gives, "
                f"and `README.md` (with the live link {target.pages_url}).")
    return ("Every file the brief asks for, complete, at exactly the path the brief gives, in the reply format, "
            f"and `README.md` (with the live link {target.pages_url}). The brief asks for no page, so no "
            "`index.html` is needed: when no workflow publishes the site, the service adds a small index "
            "listing the published files.")


def _revision_prompt(request: TaskRequest, attachments: Attachments, target: RepoTarget,
                     previous: PreviousRound, context: tuple[int, BriefReading]) -> str:
    """The user message for a revision of the previous round's files (``context``: bytes shown, reading)."""
    max_context_bytes, reading = context
    values = _common_values(request, attachments, target, (*request.checks, *previous.checks), reading)
    mention_text = " ".join([request.brief, *(c.text for c in request.checks), *(c.text for c in previous.checks)])
    files, omitted = file_context(previous.files, mention_text, max_context_bytes)
    values.update(
        previous_round=str(max(1, request.round - 1)),
        previous_commit=previous.commit_sha or "unknown",
        previous_checks=_numbered_checks(previous.checks),
        files=files,
        omitted=omitted_note(omitted),
    )
    return render("revision.md", **values)


def _bullet(text: str) -> str:
    """A Markdown bullet whose continuation lines are indented under it."""
    return "- " + text.strip().replace("\n", "\n  ")


def _numbered_checks(checks: Sequence[Check]) -> str:
    """Each check verbatim, numbered; JavaScript checks marked as such."""
    if not checks:
        return "(none given: follow the brief)"
    return "\n".join(_render_check(number, check) for number, check in enumerate(checks, 1))


def _render_check(number: int, check: Check) -> str:
    """One numbered check, quoted verbatim (fenced when it spans lines or holds backticks)."""
    note = " (JavaScript; must be truthy on the loaded page)" if check.js else ""
    text = check.text
    if "\n" in text or "`" in text:
        return f"{number}.{note}\n{fenced(text, 'js' if check.js else '')}"
    return f"{number}. {text}{note}"


def _contract_list(items: Sequence[str]) -> str:
    """The contract as bullets, or a note that the checks reference nothing specific."""
    if not items:
        return "(the checks reference no specific ids, selectors, titles or globals)"
    return "\n".join(f"- {inline_code(item)}" for item in items)


def _attachment_list(attachments: Attachments, reading: BriefReading) -> str:
    """Every attachment with its exact path, type, size and preview (whole when the brief asks to change it
    and it fits ``MAX_CHANGEABLE_BYTES``), then the links."""
    budget = MAX_CHANGEABLE_BYTES
    entries = []
    for attachment in attachments.files:
        whole = reading.may_change(attachment.path) and _text(attachment.data) is not None \
            and len(attachment.data) <= budget
        budget -= len(attachment.data) if whole else 0
        entries.append(_attachment_entry(attachment, reading.may_change(attachment.path), whole))
    entries += [_link_entry(link) for link in attachments.links]
    return "\n\n".join(entries) if entries else "None."


def _text(data: bytes) -> str | None:
    """``data`` as UTF-8 text, or None for binary data."""
    try:
        return None if b"\x00" in data else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _attachment_entry(attachment: Attachment, changeable: bool = False, whole: bool = False) -> str:
    """One committed attachment: where it lives, whether the model may change it, and what it looks like."""
    head = (f"- {inline_code(attachment.path)} ({attachment.media_type}, {len(attachment.data):,} bytes; "
            f"sent as {inline_code(attachment.name)}). ")
    if changeable:
        head += ("The brief asks you to change this file: send your changed version whole at this same path "
                 "(it replaces the attachment; never under another name).")
    else:
        head += (f"Committed at this path exactly as attached (do not send it); the app reads it at "
                 f"{inline_code('./' + attachment.path)}.")
    if whole:
        return head + "\n\n  Its whole current content:\n\n" + fenced(attachment.data.decode("utf-8"))
    preview = attachment.preview.strip()
    if len(preview.splitlines()) <= 1:  # only the name, type and size line: the head says as much
        return head
    if len(preview) > MAX_PREVIEW_CHARS:
        preview = preview[:MAX_PREVIEW_CHARS] + "\n[preview cut]"
    return head + "\n  Preview:\n  " + fenced(preview).replace("\n", "\n  ")


def _link_entry(link: LinkedAttachment) -> str:
    """One http(s) attachment, given as a link (the service never downloads it)."""
    return (f"- {inline_code(link.name)}: <{link.url}> (a link, not committed: use this URL directly "
            "if the app needs it, or follow the brief)")
