"""The dashboard's build page (GET /builds/<nonce>): one build's checks, warnings, model calls, timings, links.

The same URL answers JSON (``build_status``) to ``Authorization: Bearer <SECRET>``:
how a client that sent a task follows an early-answered build to its end
(``check_config.py --round-trip`` does).

Also saves and finds the build's screenshot: a PNG of the app as the
self-check saw it, under ``DATA_DIR/screenshots/`` (named by a hash of the
nonce, so no request text becomes a path). The pipeline saves it only after
the secret scan passed the files it shows.

Shows only what the build store stores (never a secret or attachment contents) and
never writes anything but the screenshot.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from utils.store.base import UNFINISHED, BuildStore
from utils.web.dashboard import build_view, shown_body, total_seconds

TEMPLATE = (Path(__file__).parent / "build_page.html").read_text(encoding="utf-8")
SCREENSHOTS = "screenshots"
MAX_SCREENSHOT_BYTES = 1_000_000  # a viewport PNG is usually 10-200 kB; a larger one is not kept


def screenshot_path(data_dir: Path, nonce: str) -> Path:
    """Where the screenshot of the build of ``nonce`` lives."""
    return data_dir / SCREENSHOTS / (hashlib.sha256(nonce.encode("utf-8")).hexdigest()[:32] + ".png")


def save_screenshot(data_dir: Path, nonce: str, png: bytes | None) -> None:
    """Store the build's PNG (nothing when there is none or it is over MAX_SCREENSHOT_BYTES)."""
    if not png or len(png) > MAX_SCREENSHOT_BYTES:
        return
    path = screenshot_path(data_dir, nonce)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


def build_status(store: BuildStore, nonce: str) -> dict[str, Any] | None:
    """The build of ``nonce`` as JSON (None when there is none): its status (queued, running, success, error,
    expired), whether the notification was accepted, and its response body (while it runs: its progress so far)."""
    row = store.get(nonce)
    if row is None:
        return None
    return {"status": row.status, "task": row.task, "round": row.round, "nonce": row.nonce,
            "notified": bool(row.notified), "result": shown_body(row)}


def build_context(data_dir: Path, store: BuildStore, nonce: str) -> dict[str, Any] | None:
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
            "has_screenshot": screenshot_path(data_dir, nonce).is_file(), "unfinished": UNFINISHED}
