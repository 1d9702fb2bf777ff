"""Git tree entries for GitHub's Git Data API: which paths may be committed or carried over, and how.

Text goes inline in a tree (``content``), anything else is referred to by
blob sha; a path is committed only if ``safe_relative_path`` accepts it (a
workflow file included). Moved out of ``github.py`` (issue 14) unchanged.
Never touches the network.
"""

from __future__ import annotations

from typing import Any

from utils.errors import PublishFailed
from utils.paths import UnsafePath, safe_relative_path

FILE_MODES = ("100644", "100755")
TreeEntry = dict[str, Any]


def blob_entry(path: str, **blob: str | None) -> TreeEntry:
    """A regular file's tree entry with inline ``content`` or a blob ``sha`` (None: remove the path)."""
    return {"path": path, "mode": "100644", "type": "blob", **blob}


def refuse_unsafe(files: dict[str, bytes]) -> None:
    """Refuse the whole commit if a path is absolute, escapes, or reaches ``.git/`` or ``.github/`` (but a workflow)."""
    for path in files:
        try:
            safe_relative_path(path, allow_workflows=True)
        except UnsafePath as exc:
            raise PublishFailed(f"refusing to commit {path!r}: {exc}") from None


def is_file(entry: dict[str, Any]) -> bool:
    """A regular file of a tree listing that may be carried into the next round."""
    if entry.get("type") != "blob" or entry.get("mode") not in FILE_MODES:
        return False
    try:
        safe_relative_path(entry["path"], allow_workflows=True)
    except UnsafePath:
        return False
    return True


def as_text(data: bytes) -> str | None:
    """The file as text if it can go inline in a tree (UTF-8, no NUL), else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text
