"""Graded outcome: run realistic tasks through the real pipeline and count the checks passed before and after repair.

For each task of ``bench/graded_tasks.py`` the service (``create_app``, the
local publisher, the browser self-check) builds the request end to end and
the report's per-check rows are read back. Printed per task: checks passed
before and after repair (of all checks, plain-English ones included), the
repairs, model calls, tokens and seconds; then the totals.

By default the model is the scripted local server answering with each task's
replies (a fallible first reply, the check writer's JSON, the judge's
verdicts, one repair), so the numbers show what the pipeline does with a
known flawed reply. With ``--provider`` (or when a provider key such as
``OPENAI_API_KEY`` is set and ``--scripted`` is not given) the same tasks go to
the configured model, so a user can measure their model choice; that costs
real tokens.

Needs Chromium (CHROMIUM_PATH or a well-known install). Offline in scripted
mode: every server binds to 127.0.0.1. Prints numbers; never passes or fails
on them. Run: uv run --dev python -m bench.tasks [--scripted | --provider]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

os.environ.setdefault("LOG_LEVEL", "ERROR")  # `import main` logs its configuration otherwise

from bench.graded_tasks import TASKS, GradedTask
from bench.report import SummaryRow, machine, table
from tests.check_lanes import CHECK_WRITING, JUDGING, add_check_lanes
from tests.fakes.openai_server import ScriptedModel
from tests.fakes.server import LocalServer
from utils.checks.browser import find_chromium
from utils.config import Config, load_config

SECRET = "bench-tasks-secret"
MODEL_KEY = "bench-tasks-model-key"
PROVIDER_KEYS = ("OPENAI_API_KEY", "AIPIPE_TOKEN", "AIPIPE_AKI_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY",
                 "ANTHROPIC_API_KEY")


@dataclass(frozen=True)
class TaskOutcome:
    """What one task's build did."""

    name: str
    checks: int
    passed_before: int
    passed_after: int
    repairs: int
    calls: int
    tokens: int
    seconds: float
    status: str
    warnings: int


def config_for(data_dir: Path, chromium: str, model_url: str | None) -> Config:
    """The service's configuration: local publisher, browser self-check, the scripted or configured model."""
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_TOKEN"}
    env.update({"SECRET": SECRET, "DATA_DIR": str(data_dir), "SELF_CHECK": "required", "CHROMIUM_PATH": chromium,
                "DEADLINE_SECONDS": env.get("DEADLINE_SECONDS", "300"), "LOG_LEVEL": "ERROR"})
    if model_url:
        for key in PROVIDER_KEYS + ("LLM_PROVIDERS",):
            env.pop(key, None)
        env.update({"OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model_url, "LLM_MODEL": "scripted-model"})
    return load_config(env, dotenv=False)


def script(model: ScriptedModel, task: GradedTask) -> None:
    """Queue the task's replies on the scripted model (main script, writer and judge lanes)."""
    model.reset()
    model.enqueue(task.first_reply, task.repair_reply)
    model.lane(CHECK_WRITING).enqueue(_json(task.written))
    model.lane(JUDGING).enqueue(*(_json(v) for v in task.verdicts))


def _json(value: dict) -> str:
    """A reply holding ``value`` as JSON."""
    return json.dumps(value)


def run_task(url: str, task: GradedTask, nonce: str) -> TaskOutcome:
    """POST one task to the service and read its self-check report."""
    started = time.perf_counter()
    response = requests.post(f"{url}/api-endpoint", json=task.request(nonce, SECRET), timeout=900)
    seconds = time.perf_counter() - started
    body = response.json()
    report = body.get("self_check") or {}
    rows = report.get("checks") or []
    calls = [body.get("model") or {}, *(report.get("calls") or [])]  # generation, then the self-check's calls
    return TaskOutcome(
        name=task.name, checks=len(rows), passed_before=sum(1 for r in rows if r["before"] is True),
        passed_after=sum(1 for r in rows if r["after"] is True), repairs=int(report.get("repairs") or 0),
        calls=len(calls),
        tokens=sum(int(c.get("prompt_tokens") or 0) + int(c.get("completion_tokens") or 0) for c in calls),
        seconds=round(seconds, 2), status=str(body.get("status") or response.status_code),
        warnings=len(body.get("warnings") or []))


def measure(scripted: bool) -> list[TaskOutcome]:
    """Run every task through the service; scripted replies unless a provider is to be used."""
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: install chromium or set CHROMIUM_PATH")
    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as folder:
        if not scripted:
            return _run_all(config_for(Path(folder), chromium, None), None)
        with ScriptedModel(api_key=MODEL_KEY) as model:
            add_check_lanes(model)
            return _run_all(config_for(Path(folder), chromium, model.base_url), model)


def _run_all(config: Config, model: ScriptedModel | None) -> list[TaskOutcome]:
    """Start the service and run the tasks one after another."""
    from main import create_app

    server = LocalServer(create_app(config)).start()
    try:
        outcomes = []
        for n, task in enumerate(TASKS):
            if model is not None:
                script(model, task)
            outcomes.append(run_task(server.url, task, f"bench-{task.name}-{n}-{time.time_ns()}"))
        return outcomes
    finally:
        server.stop()


def report(outcomes: list[TaskOutcome], mode: str) -> str:
    """The per-task table and the totals."""
    rows = [[o.name, o.status, f"{o.passed_before}/{o.checks}", f"{o.passed_after}/{o.checks}", o.repairs, o.calls,
             o.tokens, f"{o.seconds:.1f}", o.warnings] for o in outcomes]
    total = sum(o.checks for o in outcomes)
    rows.append(["total", "", f"{sum(o.passed_before for o in outcomes)}/{total}",
                 f"{sum(o.passed_after for o in outcomes)}/{total}", sum(o.repairs for o in outcomes),
                 sum(o.calls for o in outcomes), sum(o.tokens for o in outcomes),
                 f"{sum(o.seconds for o in outcomes):.1f}", sum(o.warnings for o in outcomes)])
    headers = ["task", "status", "passed before", "passed after", "repairs", "model calls", "tokens", "seconds",
               "warnings"]
    return f"Graded tasks ({mode}; {machine()})\n\n" + table(headers, rows)


def provider_configured() -> bool:
    """True when a model provider key is set in the environment."""
    return any(os.environ.get(key) for key in PROVIDER_KEYS)


def summary(quick: bool) -> list[SummaryRow]:
    """Run the suite with scripted replies, print the table, and return the summary rows."""
    outcomes = measure(scripted=True)
    print(report(outcomes, "scripted replies"))
    total = sum(o.checks for o in outcomes)
    return [SummaryRow("graded tasks: checks passed before repair", f"{sum(o.passed_before for o in outcomes)} of "
                       f"{total}"),
            SummaryRow("graded tasks: checks passed after repair", f"{sum(o.passed_after for o in outcomes)} of "
                       f"{total}", f"{total} of {total}")]


def main() -> None:
    """Run the suite (scripted unless a provider is configured or asked for) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scripted", action="store_true", help="use the scripted replies even if a key is set")
    group.add_argument("--provider", action="store_true", help="use the configured provider (costs tokens)")
    args = parser.parse_args()
    scripted = args.scripted or not (args.provider or provider_configured())
    mode = "scripted replies" if scripted else "configured provider"
    print(report(measure(scripted), mode))


if __name__ == "__main__":
    main()
