"""Locate, install if needed, and load GitHub's published OpenAPI description for the fakes.

The description is the npm package ``@octokit/openapi`` (file
``generated/api.github.com.json``), a dev dependency in ``package.json``. It is
looked up in ``$GITHUB_OPENAPI_SPEC`` (a file), the repository's ``node_modules``
and a cache directory; when it is missing, ``npm ci`` fetches the version
``package-lock.json`` pins (CI runs the same; about 385 MB unpacked, once). It is
parsed once per process and handed to openapi-core with the validation of the
13 MB document itself turned off, so it loads quickly.

Never downloads anything but that npm package, never edits the description,
and never modifies a tracked file (``npm ci`` leaves package.json and
package-lock.json as they are; ``npm install`` would rewrite the lock's name).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openapi_core import OpenAPI

PACKAGE = "@octokit/openapi"
SPEC_IN_PACKAGE = Path("node_modules/@octokit/openapi/generated/api.github.com.json")
REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_SPEC_FILE = "GITHUB_OPENAPI_SPEC"
ENV_CACHE_DIR = "OPENAPI_CACHE_DIR"
NPM_TIMEOUT_SECONDS = 300

_install_lock = threading.Lock()


class SpecUnavailable(RuntimeError):
    """The description is not installed and npm could not fetch it."""


def cache_dir() -> Path:
    """Where the package is installed when the repository has no ``node_modules``."""
    return Path(os.environ.get(ENV_CACHE_DIR) or REPO_ROOT / ".cache" / "openapi")


def candidates() -> list[Path]:
    """Every place the description may already be, in the order they are tried."""
    places = [REPO_ROOT / SPEC_IN_PACKAGE, cache_dir() / SPEC_IN_PACKAGE]
    if explicit := os.environ.get(ENV_SPEC_FILE):
        places.insert(0, Path(explicit))
    return places


def find_spec() -> Path | None:
    """The first existing copy of the description, or None."""
    return next((path for path in candidates() if path.is_file()), None)


def ensure_spec() -> Path:
    """The description's path, running ``npm ci`` first when no copy exists."""
    with _install_lock:
        if found := find_spec():
            return found
        _npm_install()
        if found := find_spec():
            return found
    raise SpecUnavailable(f"{PACKAGE} is not installed; run `npm ci` at {REPO_ROOT}")


def _npm_install() -> None:
    """Install the package: the locked version at the repository root (``npm ci``), else in the cache."""
    npm = shutil.which("npm")
    if npm is None:
        raise SpecUnavailable(f"{PACKAGE} is missing and npm is not on PATH; install Node.js and run `npm ci`")
    lock = REPO_ROOT / "package-lock.json"
    if lock.is_file() and PACKAGE in lock.read_text(encoding="utf-8", errors="replace"):
        command, where = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], REPO_ROOT
    else:
        where = cache_dir()
        where.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-save", PACKAGE]
    result = subprocess.run(command, cwd=where, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise SpecUnavailable(f"`{' '.join(command[1:3])}` failed in {where}: {result.stderr.strip()[-500:]}")


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The parsed description (parsed once per process; callers must not mutate it)."""
    with ensure_spec().open(encoding="utf-8") as handle:
        return json.load(handle)


@lru_cache(maxsize=1)
def load_openapi() -> OpenAPI:
    """An openapi-core validator for the description, without validating the document itself."""
    from jsonschema_path import SchemaPath
    from openapi_core import Config, OpenAPI

    return OpenAPI(SchemaPath.from_dict(load_spec()), config=Config(spec_validator_cls=None))
