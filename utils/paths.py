"""Turn untrusted file names (from requests and from the model) into safe relative paths.

A name that tries to leave the app's folder or reach something special is
rejected; a merely unusual name is normalized. Never touches the filesystem.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from urllib.parse import unquote

MAX_SEGMENT_BYTES = 100
MAX_PATH_CHARS = 200
MAX_DEPTH = 8
MAX_NAME_CHARS = 1000

_FORBIDDEN_TOP = {".git", ".github"}
WORKFLOW_FOLDER = ".github/workflows"
WORKFLOW_EXTENSIONS = (".yml", ".yaml")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class UnsafePath(ValueError):
    """The name escapes the app folder or reaches something special."""


def safe_relative_path(name: str, *, allow_workflows: bool = False) -> str:
    """Return a normalized relative POSIX path for ``name`` or raise ``UnsafePath``.

    Rejects: empty names, ``.``/``..``, ``..`` segments, absolute paths (POSIX,
    Windows drive or UNC), NUL and other control characters, unpaired
    surrogates, names over MAX_NAME_CHARS, anything under ``.git/`` or
    ``.github/`` (at any depth for ``.git``; ``allow_workflows`` admits exactly
    ``.github/workflows/<name>.yml`` or ``.yaml``, for files the model writes),
    ``.gitmodules`` anywhere, before and after normalizing (so look-alikes such
    as a fullwidth dot cannot become ``.git``). Normalizes:
    backslashes to slashes, repeated and leading ``./`` segments, spaces and
    non-ASCII to ASCII with ``-``, over-long segments (truncated, extension kept).
    """
    if not isinstance(name, str):
        raise UnsafePath("name must be a string")
    if "\x00" in name:
        raise UnsafePath("name contains a NUL byte")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafePath("name contains a control character")
    if _SURROGATE.search(name):
        raise UnsafePath("name contains an unpaired UTF-16 surrogate")
    if len(name) > MAX_NAME_CHARS:
        raise UnsafePath(f"name is longer than {MAX_NAME_CHARS} characters")
    text = name.strip().replace("\\", "/")
    if not text:
        raise UnsafePath("name is empty")
    raw_segments = _raw_segments(text, allow_workflows)
    if "%" in text:
        _refuse_encoded(text, allow_workflows)
    if len(raw_segments) > MAX_DEPTH:
        raise UnsafePath(f"name is nested deeper than {MAX_DEPTH} folders")
    segments = [_normalize_segment(s) for s in raw_segments]
    _refuse_git_folders(segments, allow_workflows)
    path = posixpath.join(*segments)
    if len(path) > MAX_PATH_CHARS:
        raise UnsafePath(f"name is longer than {MAX_PATH_CHARS} characters after normalizing")
    return path


def _raw_segments(text: str, allow_workflows: bool = False) -> list[str]:
    """The non-empty segments of a slash-separated name; UnsafePath if it is absolute or escapes."""
    if text.startswith("/") or _WINDOWS_DRIVE.match(text):
        raise UnsafePath("name is an absolute path")
    segments = [s for s in text.split("/") if s not in ("", ".")]
    if not segments:
        raise UnsafePath("name does not name a file")
    if any(not s.strip(" .") for s in segments):  # '..', and '...' or '. .' which Windows reads as '..'
        raise UnsafePath("name contains a '..' segment")
    _refuse_git_folders(segments, allow_workflows)
    return segments


def _refuse_encoded(text: str, allow_workflows: bool = False) -> None:
    """UnsafePath if percent-decoding the name (as a browser does in a URL) makes it escape or reach .git."""
    decoded = unquote(text).replace("\\", "/")
    if decoded == text:
        return
    try:
        _raw_segments(decoded, allow_workflows)
    except UnsafePath as exc:
        raise UnsafePath(f"{exc} once percent-decoded ({_shown_decoded(decoded)})") from None


def _shown_decoded(decoded: str) -> str:
    """The percent-decoded name, quoted and bounded, for a message."""
    return repr(decoded if len(decoded) <= 40 else decoded[:40] + "…")


def _refuse_git_folders(segments: list[str], allow_workflows: bool = False) -> None:
    """Raise UnsafePath for ``.git`` or ``.gitmodules`` at any depth or ``.github`` on top (but an allowed
    workflow file), ignoring trailing dots as Windows does."""
    folded = [s.strip().rstrip(". ").lower() for s in segments]
    if ".gitmodules" in folded:
        raise UnsafePath("name is .gitmodules (submodules are never published)")
    if ".git" in folded or (folded[0] in _FORBIDDEN_TOP and not (allow_workflows and _is_workflow(segments))):
        raise UnsafePath("name reaches .git/ or .github/")


def _is_workflow(segments: list[str]) -> bool:
    """True for exactly ``.github/workflows/<name>.yml`` (or ``.yaml``), spelled exactly so."""
    return (len(segments) == 3 and segments[0] == ".github" and segments[1] == "workflows"
            and segments[2].lower().endswith(WORKFLOW_EXTENSIONS) and not segments[2].startswith("."))


def is_workflow_path(path: str) -> bool:
    """True when a (sanitized) path is a GitHub Actions workflow file."""
    return _is_workflow(path.split("/"))


def _normalize_segment(segment: str) -> str:
    """ASCII-fold one path segment, replace unsafe runs with '-', bound its length."""
    folded = unicodedata.normalize("NFKD", segment.strip()).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE_CHARS.sub("-", folded).strip("-")
    if not cleaned.strip("."):  # '', '.', '..', '...': a look-alike of a special segment
        cleaned = "file"
    if len(cleaned) > MAX_SEGMENT_BYTES:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and 0 < len(ext) <= 10 and stem:
            cleaned = stem[: MAX_SEGMENT_BYTES - len(ext) - 1] + "." + ext
        else:
            cleaned = cleaned[:MAX_SEGMENT_BYTES]
    return cleaned


def extension_of(path: str) -> str:
    """The lower-case extension of a path's last segment, without the dot ("" when it has none)."""
    base = path.rsplit("/", 1)[-1]
    return base.rpartition(".")[2].lower() if "." in base else ""


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
