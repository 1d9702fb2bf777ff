"""A DATA_DIR cache of the rounds this service published to GitHub, so round N+1 need not read them back.

Each commit the GitHub publisher writes is kept as one JSON file (its files,
base64, and the commit's message, tree and identities) under
``DATA_DIR/github-rounds/<key of API URL and repository>/<sha>.json``, and
each repository's URLs under ``.../repo.json``. The publisher uses an entry
only for the commit the remote branch head names (one ``GET`` verifies it), so
a repository changed behind the service's back is read from GitHub instead.
Writes are atomic (temporary file, then rename); a missing, corrupt or
oversized entry is a miss, never an error.

Never stores a token or secret (files are scanned before they are committed),
and never stores more than ``MAX_CACHED_BYTES`` per commit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_CACHED_BYTES = 20 * 1024 * 1024
_SHA = re.compile(r"[0-9a-f]{40}")


class RoundCache:
    """Published commits and repository URLs under one folder (None: a cache that keeps nothing)."""

    def __init__(self, root: Path | None):
        self.root = Path(root) if root else None

    def save_commit(self, api_url: str, full: str, sha: str, files: dict[str, bytes], meta: dict[str, Any]) -> None:
        """Keep a commit's files and metadata (skipped when too large or not writable)."""
        if self.root is None or not _SHA.fullmatch(sha) or sum(map(len, files.values())) > MAX_CACHED_BYTES:
            return
        encoded = {path: base64.b64encode(data).decode() for path, data in files.items()}
        self._write(self._folder(api_url, full) / f"{sha}.json", {"meta": meta, "files": encoded})

    def load_commit(self, api_url: str, full: str, sha: str) -> tuple[dict[str, bytes], dict[str, Any]] | None:
        """A kept commit's files and metadata, or None."""
        if self.root is None or not _SHA.fullmatch(sha):
            return None
        data = self._read(self._folder(api_url, full) / f"{sha}.json")
        try:
            files = {path: base64.b64decode(text) for path, text in data["files"].items()}
            return files, dict(data["meta"])
        except (KeyError, TypeError, AttributeError, ValueError):
            return None

    def save_repo(self, api_url: str, repo_name: str, info: dict[str, str]) -> None:
        """Keep a repository's full name, URLs and Pages build type, by the name the service gave it."""
        if self.root is not None:
            self._write(self._folder(api_url, repo_name) / "repo.json", info)

    def load_repo(self, api_url: str, repo_name: str) -> dict[str, str] | None:
        """A repository's kept full name, URLs and Pages build type, or None."""
        if self.root is None:
            return None
        data = self._read(self._folder(api_url, repo_name) / "repo.json")
        return data if isinstance(data, dict) and data.get("full_name") else None

    def _folder(self, api_url: str, name: str) -> Path:
        """The folder of one repository of one API (a hash: names never become paths)."""
        assert self.root is not None
        return self.root / hashlib.sha256(f"{api_url}\n{name}".encode()).hexdigest()[:32]

    def _write(self, path: Path, value: Any) -> None:
        """Write JSON atomically; a failure is logged and ignored."""
        handle = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
                json.dump(value, handle)
            os.replace(handle.name, path)
        except OSError as exc:
            log.warning("could not write the round cache: %s", exc.strerror)
            if handle is not None:  # never leave a partial temporary file behind in DATA_DIR
                Path(handle.name).unlink(missing_ok=True)

    def _read(self, path: Path) -> Any:
        """Parsed JSON, or None when missing or unreadable."""
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
