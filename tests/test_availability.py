"""utils/checks/availability.py: the self-check's browser without the `browser` extra says what is missing.

Playwright is hidden the way Python marks an import as blocked (``sys.modules[name] = None``) in a child
interpreter, as on a service started with plain ``uv run main.py``; the Chromium is a stand-in executable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WITHOUT_PLAYWRIGHT = """
import json, sys
sys.modules["playwright"] = None  # as if the browser extra were not installed
from main import create_app
from utils.checks.availability import playwright_installed, usable_chromium, why_no_browser
from utils.config import load_config

chromium = sys.argv[1]
secret = "availability-secret-0123456789"
client = create_app(load_config({"DATA_DIR": sys.argv[2], "CHROMIUM_PATH": chromium, "SECRET": secret})).test_client()
assert client.post("/sign-in", json={"secret": secret}).status_code == 200  # the browser line is for signed-in visitors
page = client.get("/").text
print(json.dumps({"installed": playwright_installed(), "usable": usable_chromium(chromium),
                  "why": why_no_browser(chromium), "page": page}))
"""


def fake_chromium(tmp_path: Path) -> str:
    """An executable file standing in for Chromium (only found, never run)."""
    path = tmp_path / "chromium"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def test_chromium_without_playwright_is_not_usable_and_says_how_to_fix_it(tmp_path):
    chromium = fake_chromium(tmp_path)
    result = subprocess.run([sys.executable, "-c", WITHOUT_PLAYWRIGHT, chromium, str(tmp_path / "data")], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["installed"] is False and seen["usable"] is None
    assert seen["why"] == f"Chromium found at {chromium} but Playwright is not installed: " \
                          "run the service with `uv run --extra browser main.py`"
    assert "without Playwright: browser self-checks are skipped" in seen["page"]
    assert "uv run --extra browser main.py" in seen["page"]


def test_with_playwright_the_found_chromium_is_used(tmp_path):
    from utils.checks.availability import NO_BROWSER, usable_chromium, why_no_browser

    chromium = fake_chromium(tmp_path)
    assert usable_chromium(chromium) == chromium
    assert why_no_browser(str(tmp_path / "absent")) == NO_BROWSER
