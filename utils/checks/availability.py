"""Whether the browser self-check can run here: Chromium found and Playwright (the ``browser`` extra) installed.

The service installs only what it needs (``uv run main.py``); Playwright comes
with ``uv run --extra browser main.py`` (the default Docker image has both). This module
says which of the two is missing, for the pipeline, the self-check's skip
reason and the dashboard. Never imports Playwright and never downloads a browser.
"""

from __future__ import annotations

from importlib.util import find_spec

from utils.checks.browser import find_chromium

NO_BROWSER = "no Chromium found: install Chromium or set CHROMIUM_PATH to its executable"


def playwright_installed() -> bool:
    """Whether Playwright, the ``browser`` extra (``uv run --extra browser``), can be imported."""
    return find_spec("playwright") is not None


def usable_chromium(explicit: str | None = None) -> str | None:
    """The Chromium the self-check can drive: found by ``find_chromium`` and Playwright installed; else None."""
    return find_chromium(explicit) if playwright_installed() else None


def why_no_browser(explicit: str | None = None) -> str:
    """Why the self-check has no browser: no Chromium, or Chromium without Playwright (the ``browser`` extra)."""
    found = find_chromium(explicit)
    if found and not playwright_installed():
        return (f"Chromium found at {found} but Playwright is not installed: "
                "run the service with `uv run --extra browser main.py`")
    return NO_BROWSER
