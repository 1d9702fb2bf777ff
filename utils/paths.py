"""Turn untrusted file names (from requests and from the model) into safe relative paths.

A name that tries to leave the app's folder or reach something special is
rejected; a merely unusual name is normalized. Never touches the filesystem.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata

MAX_SEGMENT_BYTES = 100
MAX_PATH_CHARS = 200
MAX_DEPTH = 8

_FORBIDDEN_TOP = {".git", ".github"}
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePath(ValueError):
    """The name escapes the app folder or reaches something special."""


def safe_relative_path(name: str) -> str:
    """Return a normalized relative POSIX path for ``name`` or raise ``UnsafePath``.

    Rejects: empty names, ``.``/``..``, ``..`` segments, absolute paths (POSIX,
    Windows drive or UNC), NUL and other control characters, anything under
    ``.git/`` or ``.github/`` (at any depth for ``.git``). Normalizes: backslashes
    to slashes, repeated and leading ``./`` segments, spaces and non-ASCII to
    ASCII with ``-``, over-long segments (truncated, extension kept).
    """
    if not isinstance(name, str):
        raise UnsafePath("name must be a string")
    if "\x00" in name:
        raise UnsafePath("name contains a NUL byte")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafePath("name contains a control character")
    text = name.strip().replace("\\", "/")
    if not text:
        raise UnsafePath("name is empty")
    if text.startswith("/") or _WINDOWS_DRIVE.match(text):
        raise UnsafePath("name is an absolute path")
    raw_segments = [s for s in text.split("/") if s not in ("", ".")]
    if not raw_segments:
        raise UnsafePath("name does not name a file")
    if any(s.strip() == ".." for s in raw_segments):
        raise UnsafePath("name contains a '..' segment")
    if any(s.strip().lower() == ".git" for s in raw_segments) or raw_segments[0].strip().lower() in _FORBIDDEN_TOP:
        raise UnsafePath("name reaches .git/ or .github/")
    if len(raw_segments) > MAX_DEPTH:
        raise UnsafePath(f"name is nested deeper than {MAX_DEPTH} folders")
    segments = [_normalize_segment(s) for s in raw_segments]
    path = posixpath.join(*segments)
    if len(path) > MAX_PATH_CHARS:
        raise UnsafePath(f"name is longer than {MAX_PATH_CHARS} characters after normalizing")
    return path


def _normalize_segment(segment: str) -> str:
    """ASCII-fold one path segment, replace unsafe runs with '-', bound its length."""
    folded = unicodedata.normalize("NFKD", segment.strip()).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE_CHARS.sub("-", folded).strip("-")
    if cleaned in ("", ".", ".."):
        cleaned = "file"
    if len(cleaned) > MAX_SEGMENT_BYTES:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and 0 < len(ext) <= 10 and stem:
            cleaned = stem[: MAX_SEGMENT_BYTES - len(ext) - 1] + "." + ext
        else:
            cleaned = cleaned[:MAX_SEGMENT_BYTES]
    return cleaned


def deduplicate(path: str, taken: set[str]) -> str:
    """Return ``path`` or ``stem-2.ext``, ``stem-3.ext``... so that it is not in ``taken``."""
    if path not in taken:
        return path
    folder, base = posixpath.split(path)
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        stem, ext = base, ""
    n = 2
    while True:
        candidate = posixpath.join(folder, f"{stem}-{n}{'.' + ext if ext else ''}")
        if candidate not in taken:
            return candidate
        n += 1
