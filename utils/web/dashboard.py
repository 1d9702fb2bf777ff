"""The dashboard (GET /): configuration status, build slots and recent builds with stage timing bars.

A running build shows its current stage, its timings so far and its links as
soon as the build store has them. Shows only what the build store holds (never a secret
or attachment contents), and builds only to a signed-in visitor
(utils/web/sessions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from utils.config import Config
from utils.store.backends import describe_store
from utils.store.base import UNFINISHED, BuildRow, BuildStore

RECENT_BUILDS = 20
TEMPLATE = (Path(__file__).parent / "dashboard.html").read_text(encoding="utf-8")


@dataclass(frozen=True)
class StageBar:
    """One stage's segment of a build's timing bar."""

    name: str
    seconds: float
    percent: float


@dataclass(frozen=True)
class BuildView:
    """One store row as the dashboard shows it."""

    task: str
    round: int
    nonce: str
    status: str
    created: str
    error: str
    repo_url: str
    pages_url: str
    commit_sha: str
    commit_url: str
    notified: bool
    notification: str  # "notified", "not notified", or "" when the request gave no evaluation URL
    current_stage: str  # the stage a running build is in ("" once it ended)
    total_seconds: float
    stages: tuple[StageBar, ...]
    unmet: int = 0  # checks still failing when a successful build was published


def context(config: Config, slots: Any, open_store: Callable[[], BuildStore], *,
            include_builds: bool = True) -> dict[str, Any]:
    """What the dashboard template shows: configuration status, build slots and, when signed in, the build
    store and recent builds."""
    from utils.checks.availability import playwright_installed  # why: import time (the browser module loads asyncio)
    from utils.checks.browser import find_chromium  # why: as above

    store = store_summary(config, open_store) if include_builds else None
    readable = store is not None and "error" not in store  # an unreadable store is shown as such, not a 500
    browser, playwright = find_chromium(config.chromium_path or None), playwright_installed()
    return {"config": config, "missing": config.missing_for_serving(), "signed_in": include_builds,
            "builds": recent_builds(config, open_store) if readable else [],
            "browser": browser, "playwright": playwright, "slots": slots, "store": store,
            "self_check_off": self_check_off(config.self_check, bool(browser), playwright)}


def self_check_off(mode: str, chromium: bool, playwright: bool) -> str:
    """Why apps are published without a browser self-check ("" when it runs); names no path."""
    if mode == "off":
        return "SELF_CHECK=off"
    if not chromium:
        return "no Chromium found (install it, or set CHROMIUM_PATH; the default Docker image has it)"
    if not playwright:
        return "Playwright is not installed (run `uv run --extra browser main.py`)"
    return ""


def store_summary(config: Config, open_store: Callable[[], BuildStore]) -> dict[str, Any]:
    """Where builds are stored (never a password) and how many are queued, running and expired."""
    summary: dict[str, Any] = {"location": describe_store(config), "counts": None}
    if _store_exists(config):
        try:
            summary["counts"] = open_store().counts()
        except Exception as exc:  # an unreachable database: the page still renders
            summary["error"] = type(exc).__name__
    return summary


def recent_builds(config: Config, open_store: Callable[[], BuildStore]) -> list[BuildView]:
    """Recent stored builds with timing bars scaled to the slowest one; empty before the first build."""
    if not _store_exists(config):
        return []
    rows = open_store().recent(RECENT_BUILDS)
    bodies = [shown_body(row) for row in rows]
    longest = max([total_seconds(body) for body in bodies] + [0.001])
    return [build_view(row, body, longest) for row, body in zip(rows, bodies, strict=True)]


def _store_exists(config: Config) -> bool:
    """Whether there is a store to read: a database, or the SQLite store once the first build created it."""
    return bool(config.database_url) or (config.data_dir / "ledger.sqlite3").exists()


def shown_body(row: BuildRow) -> dict[str, Any]:
    """What a row shows: a running build's progress so far, else its stored response body."""
    return dict(row.progress or {}) if row.status == "running" else dict((row.result or {}).get("body") or {})


def total_seconds(body: Mapping[str, Any]) -> float:
    """The sum of a response body's numeric stage timings."""
    return sum(_timings(body).values())


def _timings(body: Mapping[str, Any]) -> dict[str, float]:
    """The numeric stage timings of a response body."""
    return {k: float(v) for k, v in (body.get("timings") or {}).items() if isinstance(v, (int, float))}


def _notification(row: BuildRow) -> str:
    """"notified" or "not notified" once the build ended; "" while it runs or when no evaluation URL was given."""
    if not row.request.get("evaluation_url") or row.status in UNFINISHED:
        return ""
    return "notified" if row.notified else "not notified"


def build_view(row: BuildRow, body: dict[str, Any], longest: float) -> BuildView:
    """A store row and its response body (for a running build: its progress so far), ready for the template."""
    timings = _timings(body)
    repo_url, sha = str(body.get("repo_url") or ""), str(body.get("commit_sha") or "")
    browsable = repo_url.startswith(("http://", "https://")) and not repo_url.endswith(".git")
    error = body.get("error") or {}
    return BuildView(
        task=row.task, round=row.round, nonce=row.nonce, status=row.status,
        created=datetime.fromtimestamp(row.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        error=f"{error.get('stage', '')}: {error.get('message', '')}" if error else "",
        repo_url=repo_url, pages_url=str(body.get("pages_url") or ""), commit_sha=sha,
        commit_url=f"{repo_url}/commit/{sha}" if browsable and sha else "", notified=bool(row.notified),
        notification=_notification(row),
        current_stage=str(body.get("stage") or "") if row.status == "running" else "",
        total_seconds=round(total_seconds(body), 2),
        stages=tuple(StageBar(name, round(seconds, 2), round(100 * seconds / longest, 2))
                     for name, seconds in timings.items()),
        unmet=len(body.get("unmet_checks") or []) if row.status == "success" else 0,
    )
