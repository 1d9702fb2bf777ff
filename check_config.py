"""Preflight: check the service's configuration before the first graded request.

Uses the service's own loader (utils.config.load_config). Prints every variable
with its status and a fix hint; exits 0 only when the service can serve.
Never prints a secret value, only whether it is set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass

from utils.config import Config, load_config

MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, whether it is fine, and how to fix it."""

    name: str
    ok: bool
    detail: str
    blocking: bool = True


def run_checks(config: Config) -> list[Finding]:
    """Every check that needs no network."""
    findings = [
        Finding("SECRET", bool(config.secret), "set" if config.secret else "missing: set SECRET to a long random string"),
        Finding("SECRET length", len(config.secret) >= MIN_SECRET_LENGTH,
                f"{len(config.secret)} characters (use at least {MIN_SECRET_LENGTH})", blocking=False),
        Finding("LLM providers", bool(config.providers),
                ", ".join(f"{p.name} ({p.model} at {p.base_url})" for p in config.providers)
                or "none: set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible provider) or AIPIPE_TOKEN"),
        Finding("publisher", True, "GitHub via GITHUB_TOKEN" if config.github_token
                else "local (no GITHUB_TOKEN): apps are served by this service itself", blocking=False),
        _data_dir_writable(config),
        _browser(),
    ]
    findings += [Finding("configuration value", False, problem, blocking=False) for problem in config.problems]
    return findings


def _data_dir_writable(config: Config) -> Finding:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=config.data_dir):
            pass
        return Finding("DATA_DIR", True, f"{config.data_dir} is writable")
    except OSError as exc:
        return Finding("DATA_DIR", False, f"{config.data_dir} is not writable ({exc.strerror}): set DATA_DIR")


def _browser() -> Finding:
    from utils.browser import find_chromium

    path = find_chromium()
    return Finding("browser", path is not None, f"Chromium at {path}" if path
                   else "no Chromium found: install it or set CHROMIUM_PATH (needed for browser self-checks)",
                   blocking=False)


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0 only when nothing blocking failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    findings = run_checks(load_config())
    ready = all(f.ok or not f.blocking for f in findings)
    if args.json:
        print(json.dumps({"ready": ready, "checks": [asdict(f) for f in findings]}, indent=2))
    else:
        for f in findings:
            mark = "ok  " if f.ok else ("FAIL" if f.blocking else "warn")
            print(f"[{mark}] {f.name}: {f.detail}")
        print("ready to serve" if ready else "NOT ready: fix the FAIL lines above")
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
