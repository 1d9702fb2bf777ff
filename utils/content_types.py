"""The Content-Type a static host (GitHub Pages) sends for a file path.

Shared by everything that serves an app's files (the local publisher's site and
the self-check's in-memory server) so both answer alike. Looks at the name only:
never reads a file and never sniffs content.
"""

from __future__ import annotations

import mimetypes
import posixpath

_PAGE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".map": "application/json; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json; charset=utf-8",
}


def content_type_for(path: str) -> str:
    """The Content-Type a static host would send for ``path``."""
    ext = posixpath.splitext(path)[1].lower()
    if ext in _PAGE_TYPES:
        return _PAGE_TYPES[ext]
    guessed, _ = mimetypes.guess_type(path)
    if guessed is None:
        return "application/octet-stream"
    return guessed + "; charset=utf-8" if guessed.startswith("text/") else guessed
