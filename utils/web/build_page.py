"""The dashboard's build page (GET /builds/<nonce>): one build's checks, warnings, model calls, timings, links.

The same URL answers JSON (``build_status``) to ``Authorization: Bearer <SECRET>``:
how a client that sent a task follows an early-answered build to its end
(``check_config.py --round-trip`` does).

The build's screenshot (a PNG of the app as the self-check saw it) comes from
the build store, which the pipeline gives it once the secret scan passed the
files it shows. Shows only what the build store stores (never a secret or
attachment contents) and never writes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.store.base import UNFINISHED, BuildStore
from utils.web.dashboard import build_view, shown_body, total_seconds

TEMPLATE = (Path(__file__).parent / "build_page.html").read_text(encoding="utf-8")


def build_status(store: BuildStore, nonce: str) -> dict[str, Any] | None:
    """The build of ``nonce`` as JSON (None when there is none): its status (queued, running, success, error,
    expired), whether the notification was accepted, and its response body (while it runs: its progress so far)."""
    row = store.get(nonce)
    if row is None:
        return None
    return {"status": row.status, "task": row.task, "round": row.round, "nonce": row.nonce,
            "notified": bool(row.notified), "result": shown_body(row)}


def build_context(store: BuildStore, nonce: str) -> dict[str, Any] | None:
    """What the build page shows, or None when the build store has no build for ``nonce``."""
    row = store.get(nonce)
    if row is None:
        return None
    body = shown_body(row)  # a running build: its stage, timings and links so far
    report = body.get("self_check") or {}
    calls = [{"purpose": "generation", **(body.get("model") or {})}] if body.get("model") else []
    calls += list(report.get("calls") or [])
    return {"build": build_view(row, body, max(total_seconds(body), 0.001)),
            "report": report, "checks": list(report.get("checks") or []), "calls": calls,
            "warnings": list(body.get("warnings") or []), "live": body.get("live_check") or {},
            "has_screenshot": store.screenshot(nonce) is not None, "unfinished": UNFINISHED}
