"""Lint a workflow the model wrote: triggers and permissions no wider than what the brief asks for.

    workflow_problems(files, schedule=..., writes=...) -> one problem per workflow file asking for more than it may

A committed workflow runs with the repository's token in the user's account.
Text injected through fetched data could make a model write one that runs on a
schedule or with write access nobody asked for, so every workflow file is read
(PyYAML's safe loader, within ``MAX_WORKFLOW_BYTES`` and ``MAX_YAML_EVENTS``,
no anchors or aliases, whose expansion could be exponential) and refused when:

- it does not parse, or is not a mapping with ``on`` and ``jobs``;
- a trigger is not ``push``, ``pull_request`` or ``workflow_dispatch`` (a
  ``schedule`` only when the brief asks for one);
- a permission (top level or per job) is ``write-all`` or ``write`` on any scope
  but ``pages`` and ``id-token`` (the two a Pages deploy needs), unless the
  brief asks for the workflow to write (push, commit, release, issues...).

Whether the brief asks for a schedule or for writes is the caller's reading
of it (``utils.intake.brief.read_brief``: a negated clause asks for nothing).
The generation stage re-asks once with the problems;
the publishing stage drops a workflow that still has them, with a warning.
Never runs a workflow, never fetches anything, never logs a file's content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from utils.paths import is_workflow_path

MAX_WORKFLOW_BYTES = 64 * 1024
MAX_YAML_EVENTS = 20_000
TRIGGERS = frozenset({"push", "pull_request", "workflow_dispatch"})
PAGES_WRITES = frozenset({"pages", "id-token"})

def workflow_problems(files: Mapping[str, bytes], *, schedule: bool, writes: bool) -> dict[str, str]:
    """Each workflow file among ``files`` that asks for more than the brief allows (``schedule``: the brief asks
    for a schedule; ``writes``: for a workflow that writes to the repository), with what to change."""
    problems = {}
    for path in sorted(p for p in files if is_workflow_path(p)):
        problem = _problem(files[path], schedule=schedule, writes=writes)
        if problem:
            problems[path] = f"the workflow '{path}' {problem}"
    return problems


def _problem(data: bytes, *, schedule: bool, writes: bool) -> str:
    """What is wrong with one workflow file ("" when nothing)."""
    document, error = _load(data)
    if error:
        return error
    if not isinstance(document, dict) or "jobs" not in document or not _triggers_key(document):
        return "is not a workflow: it needs a top-level `on:` and `jobs:`"
    extra = sorted(_triggers(document[_triggers_key(document)]) - TRIGGERS - ({"schedule"} if schedule else set()))
    if extra:
        allowed = "push, pull_request, workflow_dispatch" + (", schedule" if schedule else "")
        return (f"is triggered by {', '.join(extra)}, which the brief does not ask for: use only {allowed}")
    jobs = document["jobs"] if isinstance(document["jobs"], dict) else {}
    blocks = [document.get("permissions")] + [job.get("permissions") for job in jobs.values() if isinstance(job, dict)]
    wide = sorted({scope for block in blocks for scope in _writes(block)} - PAGES_WRITES)
    if wide and not writes:
        return (f"asks for write permission on {', '.join(wide)}, which the brief does not ask for: use `read` "
                "(a Pages deploy needs only `pages: write` and `id-token: write`)")
    return ""


def _load(data: bytes) -> tuple[Any, str]:
    """The parsed YAML, or why it is refused (size, events, aliases, syntax)."""
    import yaml  # why: PyYAML is loaded only for builds with workflows

    if len(data) > MAX_WORKFLOW_BYTES:
        return None, f"is larger than {MAX_WORKFLOW_BYTES // 1024} KB"
    text = data.decode("utf-8", "replace")
    try:
        for count, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader), 1):
            if isinstance(event, yaml.AliasEvent):
                return None, "uses YAML aliases (`*name`), which are not accepted: write each value out"
            if count > MAX_YAML_EVENTS:
                return None, f"holds more than {MAX_YAML_EVENTS:,} YAML nodes"
        return yaml.safe_load(text), ""
    except yaml.YAMLError as exc:
        return None, f"is not valid YAML ({str(exc).splitlines()[0][:160]})"


def _triggers_key(document: dict[Any, Any]) -> Any:
    """The key holding the triggers: ``on``, which YAML 1.1 reads as the boolean True."""
    return next((key for key in ("on", True) if key in document), None)


def _triggers(value: Any) -> set[str]:
    """The trigger names of an ``on:`` value (a name, a list of names or a mapping)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {str(item) for item in value}
    if isinstance(value, dict):
        return {str(key) for key in value}
    return {str(value)}


def _writes(block: Any) -> set[str]:
    """The scopes a ``permissions:`` value grants write on (``write-all``: every scope, shown as ``all``)."""
    if block in ("write-all",):
        return {"all"}
    if isinstance(block, dict):
        return {str(scope) for scope, level in block.items() if str(level).strip().lower() == "write"}
    return set()
