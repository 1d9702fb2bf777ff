"""Written checks of kinds ``files`` and ``run``: evaluated in the sandbox, never in the page under test.

    files check: expression over files (path -> text, binary None), sizes (path -> bytes), sources (parsed)
    run check:   expression over run = {"conclusion", "log"} of the finished workflow run

A ``files`` check reads the repository exactly as it will be committed (the
published tree), so "result.json is NOT committed" or "the CI YAML has a ruff
step" never goes through a site that a workflow may deploy from other files.
``sources`` are the attachments and fetched documents parsed (JSON as a value,
CSV, TSV and a sheet as row objects by the derive blocks' own conversion), so
"data.csv equals data.xlsx" is checkable. The sandbox
(``utils.checks.sandbox``) gives the expression no network, no storage and
bounded time and memory.

A check the sandbox could not run (no browser, the browser failed) is
*unverified* (``passed`` None, listed apart), never failed; a check that throws
or runs too long fails with its error, as a written JavaScript check does.
Never logs file contents, logs or values; never raises.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from utils.checks.browser import CheckResult
from utils.checks.sandbox import SandboxError, SandboxValue
from utils.intake.documents import document_kind
from utils.model.derived import DeriveError, DeriveRequest, Source, derive

CHECK_SECONDS = 5.0  # one files or run check, at most
VALUE_LIMIT = 200
LOG_LIMIT = 200_000  # characters of the run's log given to a run check
UNVERIFIED_KINDS = ("browser", "input")  # the sandbox, not the check, failed


class ScriptRunner(Protocol):
    """What evaluates a check's expression (``utils.checks.sandbox.Sandbox``)."""

    def evaluate(self, script: str, values: Mapping[str, Any] | None = None, *,
                 timeout: float | None = None) -> SandboxValue:
        """The expression's value with ``values`` as globals, or SandboxError."""
        ...


@dataclass
class RepoChecks:
    """Evaluates ``files`` checks on a tree and ``run`` checks on a run (``runner`` None: every one unverified)."""

    runner: ScriptRunner | None
    sources: Mapping[str, Any]

    def files_result(self, label: str, script: str, files: Mapping[str, bytes]) -> CheckResult:
        """A ``files`` check evaluated on ``files`` (the published tree)."""
        values = {"files": {p: _text(d) for p, d in files.items()}, "sizes": {p: len(d) for p, d in files.items()},
                  "sources": dict(self.sources)}
        return self._result(label, script, values)

    def run_result(self, label: str, script: str, conclusion: str | None, log: str) -> CheckResult:
        """A ``run`` check evaluated on the finished run's conclusion and log (capped)."""
        return self._result(label, script, {"run": {"conclusion": conclusion, "log": log[-LOG_LIMIT:]}})

    def _result(self, label: str, script: str, values: dict[str, Any]) -> CheckResult:
        """One evaluation as a CheckResult (unverified when the sandbox itself failed)."""
        if self.runner is None:
            return unverified(label, script, "no browser to run it in")
        started = time.monotonic()
        try:
            value = self.runner.evaluate(script, values, timeout=CHECK_SECONDS)
        except SandboxError as exc:
            if exc.kind in UNVERIFIED_KINDS:
                return unverified(label, script, str(exc))
            return CheckResult(label, script, False, "undefined", str(exc)[:500], round(time.monotonic() - started, 3))
        return CheckResult(label, script, truthy(value), _describe(value), None, round(time.monotonic() - started, 3))


def unverified(label: str, script: str, reason: str) -> CheckResult:
    """A check that could not be evaluated: neither passed nor failed."""
    return CheckResult(label, script, None, f"unverified: {reason}", None, 0.0)


def truthy(value: SandboxValue) -> bool:
    """JavaScript truthiness of a sandbox value (NaN arrives as null)."""
    if value.type == "undefined" or value.value is None:
        return False
    if value.type in ("object", "function"):
        return True
    return bool(value.value)


def _describe(value: SandboxValue) -> str:
    """A short text of the value, as a check report shows it."""
    if value.type == "undefined":
        return "undefined"
    text = value.value if isinstance(value.value, str) else json.dumps(value.value, ensure_ascii=False)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def _text(data: bytes) -> str | None:
    """A file's text, or None for binary data."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parsed_sources(sources: Mapping[str, Source]) -> dict[str, Any]:
    """Each source (attachment path or sent name, fetched URL) parsed: JSON as its value, CSV, TSV and a
    spreadsheet's first sheet as row objects (the derive blocks' own JSON conversion, numbers typed), other text
    as a string; a source that cannot be read (binary, broken) is left out (a check naming it fails on its own)."""
    parsed: dict[str, Any] = {}
    for key, source in sources.items():
        try:
            if source.name.lower().endswith(".json"):
                parsed[key] = json.loads(source.data.decode("utf-8-sig"))
            elif source.name.lower().endswith((".csv", ".tsv")) or document_kind(source.name, "") == "spreadsheet":
                parsed[key] = json.loads(derive(DeriveRequest("value.json", key), sources))
            elif (text := _text(source.data)) is not None:
                parsed[key] = text
        except (DeriveError, ValueError):
            continue
    return parsed
