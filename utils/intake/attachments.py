"""Decode a request's attachments into named bytes with a media type and a short preview for the model.

Accepts ``data:`` URIs (base64 or percent-encoded), bare base64, and ``http(s)``
links. Links are kept as links for the model and are NEVER fetched (no SSRF);
every other scheme is refused. Names go through ``utils.paths`` so nothing can
leave the app's folder. Decoded sizes are capped, and a payload's size is
estimated from its encoded length before it is decoded.

This module never fetches a URL, never logs attachment contents (it does not
log at all), and never writes files: it only returns values.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import mimetypes
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

import filetype

from utils.errors import InvalidAttachment, InvalidRequest, RequestTooLarge
from utils.intake.json_limits import DOCUMENT_LIMITS, check_json_shape
from utils.paths import UnsafePath, deduplicate, safe_relative_path
from utils.records import Attachment, AttachmentRef, Attachments, LinkedAttachment

MAX_COUNT = 20
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_LINK_CHARS = 2048
PREVIEW_LIMIT = 1500
PREVIEW_TEXT_LINES = 20
PREVIEW_CSV_ROWS = 5
JSON_SHAPE_DEPTH = 3
JSON_SHAPE_KEYS = 15
LINE_CHARS = 160
OCTET_STREAM = "application/octet-stream"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_BASE64_WHITESPACE = " \t\r\n\f\v"
_WHITESPACE = re.compile(r"\s+")
_ASCII_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/]*")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_EXTRA_TYPES = {
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
}
_CSV_TYPES = {"text/csv", "application/csv", "text/tab-separated-values"}


@dataclass(frozen=True)
class _Payload:
    """Decoded bytes and the media type the data URI declared, if any."""

    data: bytes
    declared_type: str | None = None


def decode_attachments(
    refs: Sequence[AttachmentRef],
    *,
    max_count: int = MAX_COUNT,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> Attachments:
    """Decode, name, type and preview the attachments; http(s) links are kept as links, never fetched."""
    if len(refs) > max_count:
        raise InvalidAttachment(f"too many attachments: {len(refs)} (at most {max_count})", field="attachments")
    files: list[Attachment] = []
    links: list[LinkedAttachment] = []
    taken = _TakenPaths()
    budget = _Budget(max_total_bytes)
    for index, ref in enumerate(refs):
        path = _checked_path(ref.name, index)
        url = _checked_url_text(ref, index)
        if _is_link(url):
            links.append(LinkedAttachment(name=ref.name, url=_checked_link(url, ref.name, index)))
            continue
        payload = _decode_payload(url, ref.name, index, budget)
        files.append(_to_attachment(ref.name, taken.claim(path), payload))
    return Attachments(files=tuple(files), links=tuple(links))


# --- errors ---------------------------------------------------------------


def _label(name: object) -> str:
    """The attachment's name as shown in messages: quoted, escaped and bounded."""
    if not isinstance(name, str):
        return "(name is not a string)"
    return repr(name if len(name) <= 60 else name[:60] + "…")


def _invalid(name: object, index: int, reason: str, part: str = "url") -> InvalidAttachment:
    """An InvalidAttachment naming the attachment and the field at fault."""
    return InvalidAttachment(
        f"attachment {_label(name)} (attachments[{index}]): {reason}", field=f"attachments[{index}].{part}"
    )


def _checked_path(name: str, index: int) -> str:
    """The safe relative path for ``name``, or InvalidAttachment naming it."""
    try:
        path = safe_relative_path(name)
    except UnsafePath as exc:
        raise _invalid(name, index, str(exc), part="name") from None
    if any(segment.lower().startswith(".git") for segment in path.split("/")):
        # .gitignore, .gitattributes and .gitmodules change what the published commit means
        raise _invalid(name, index, "name is a git control file (.git*)", part="name")
    return path


def _checked_url_text(ref: AttachmentRef, index: int) -> str:
    """The ref's url as a stripped string, or InvalidAttachment if it is not a non-empty string."""
    if not isinstance(ref.url, str):
        raise _invalid(ref.name, index, "url must be a string")
    url = ref.url.strip()
    if not url:
        raise _invalid(ref.name, index, "url is empty")
    if _SURROGATE.search(url):
        raise _invalid(ref.name, index, "url contains an unpaired UTF-16 surrogate; send valid Unicode")
    return url


# --- size budget ----------------------------------------------------------


class _Budget:
    """The decoded bytes still allowed across all attachments of one request."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def check(self, size: int, name: str, index: int) -> None:
        """Raise RequestTooLarge if ``size`` more bytes would cross the limit."""
        if self.used + size > self.limit:
            raise RequestTooLarge(
                f"attachment {_label(name)} (attachments[{index}]) brings the decoded attachments to over "
                f"{self.limit:,} bytes (at least {self.used + size:,})",
                stage="attachments",
                field=f"attachments[{index}]",
            )

    def spend(self, size: int, name: str, index: int) -> None:
        """Check ``size`` against the limit, then count it."""
        self.check(size, name, index)
        self.used += size


# --- links ----------------------------------------------------------------


def _is_link(url: str) -> bool:
    """Whether ``url`` is an http(s) URL (kept as a link, never fetched)."""
    return url[:8].lower() == "https://" or url[:7].lower() == "http://"


def _checked_link(url: str, name: str, index: int) -> str:
    """Validate an http(s) link's shape without contacting it."""
    if len(url) > MAX_LINK_CHARS:
        raise _invalid(name, index, f"link is longer than {MAX_LINK_CHARS} characters")
    if _WHITESPACE.search(url) or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise _invalid(name, index, "link contains whitespace or control characters")
    if not _has_host(url):
        raise _invalid(name, index, "link is not a valid http(s) URL with a host")
    return url


def _has_host(url: str) -> bool:
    """Whether the URL parses, with a host and a well-formed port."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    return bool(parts.hostname)


# --- decoding -------------------------------------------------------------


def _decode_payload(url: str, name: str, index: int, budget: _Budget) -> _Payload:
    """Decode a data: URI or bare base64 within the budget; refuse any other scheme."""
    scheme = _SCHEME.match(url)
    if url[:5].lower() == "data:":
        payload = _decode_data_uri(url, name, index, budget)
    elif scheme:
        raise _invalid(
            name, index,
            f"unsupported URL scheme {scheme.group(0)[:20]!r}; use a data: URI, bare base64 or an http(s) link"
        )
    else:
        payload = _Payload(_decode_base64(url, name, index, budget))
    if not payload.data:
        raise _invalid(name, index, "payload is empty")
    budget.spend(len(payload.data), name, index)
    return payload


def _decode_data_uri(url: str, name: str, index: int, budget: _Budget) -> _Payload:
    """Decode ``data:[<mediatype>][;param=...][;base64],<data>``."""
    header, comma, body = url[5:].partition(",")
    if not comma:
        raise _invalid(name, index, "data: URI has no ',' before its payload")
    params = [p.strip() for p in header.split(";")]
    is_base64 = params[-1].lower() == "base64"
    declared = params[0].lower() if not (is_base64 and len(params) == 1) else ""
    declared_type = declared if _MEDIA_TYPE.fullmatch(declared) else None
    if is_base64:
        text = unquote(body) if "%" in body else body  # some clients percent-encode '+', '/' and '='
        return _Payload(_decode_base64(text, name, index, budget), declared_type)
    budget.check(len(body) - 2 * body.count("%"), name, index)  # a lower bound of the decoded size
    return _Payload(unquote_to_bytes(body), declared_type)


def _decode_base64(text: str, name: str, index: int, budget: _Budget) -> bytes:
    """Decode base64, tolerating whitespace, missing padding and the urlsafe alphabet."""
    significant = len(text) - sum(map(text.count, _BASE64_WHITESPACE))  # counted without copying
    budget.check((significant - 2) * 3 // 4, name, index)  # a lower bound of the decoded size
    try:
        cleaned = _clean_base64(text)
    except ValueError as exc:
        raise _invalid(name, index, f"payload is not valid base64: {exc}") from None
    return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)


def _clean_base64(text: str) -> str:
    """Base64 without whitespace or padding, in the standard alphabet; ValueError if malformed."""
    compact = _ASCII_WHITESPACE.sub("", text).translate(_URLSAFE_TO_STANDARD)
    cleaned = compact.rstrip("=")
    if len(compact) - len(cleaned) > 2:
        raise ValueError("too much '=' padding")
    if not _BASE64_BODY.fullmatch(cleaned):
        raise ValueError("it contains characters outside the base64 alphabet")
    if len(cleaned) % 4 == 1:
        raise ValueError("its length is impossible for base64 (truncated?)")
    return cleaned


# --- paths ----------------------------------------------------------------


class _FoldedSet(set[str]):
    """A set of paths that ignores case, as checkouts on macOS and Windows do."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and super().__contains__(item.lower())

    def add(self, item: str) -> None:
        super().add(item.lower())


class _TakenPaths:
    """Paths already given to attachments of this request, and the folders they create."""

    def __init__(self) -> None:
        self.files = _FoldedSet()
        self.files_and_folders = _FoldedSet()

    def claim(self, path: str) -> str:
        """Return a path for ``path`` that collides with no earlier file or folder, and record it."""
        path = deduplicate(self._clear_folders(path), self.files_and_folders)
        self.files.add(path)
        self.files_and_folders.add(path)
        folder = posixpath.dirname(path)
        while folder:
            self.files_and_folders.add(folder)
            folder = posixpath.dirname(folder)
        return path

    def _clear_folders(self, path: str) -> str:
        """Rename any folder of ``path`` that is already an earlier attachment's file."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in self.files:
                parts[depth - 1] = posixpath.basename(deduplicate(folder, self.files))
        return "/".join(parts)


# --- type detection -------------------------------------------------------


def _to_attachment(name: str, path: str, payload: _Payload) -> Attachment:
    """Build the Attachment: detect its type and write its preview."""
    text = _as_text(payload.data)
    media_type = _detect_type(payload.data, payload.declared_type, path, is_text=text is not None)
    preview = _preview(path, media_type, payload.data, text)
    return Attachment(name=name, path=path, data=payload.data, media_type=media_type, preview=preview)


def _as_text(data: bytes) -> str | None:
    """The bytes as UTF-8 text (BOM dropped), or None if they are binary."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _detect_type(data: bytes, declared: str | None, path: str, *, is_text: bool) -> str:
    """Magic bytes first, then the declared type, then the extension, then text or binary."""
    kind = filetype.guess(data)
    if kind is not None:
        return str(kind.mime)
    if declared and declared != OCTET_STREAM:
        return declared
    guessed = _type_from_extension(path)
    if guessed:
        return guessed
    return "text/plain" if is_text else OCTET_STREAM


def _type_from_extension(path: str) -> str | None:
    """The media type the file name suggests, if any."""
    ext = posixpath.splitext(path)[1].lower()
    return _EXTRA_TYPES.get(ext) or mimetypes.guess_type(path, strict=False)[0]


# --- previews -------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with '…' when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _preview(path: str, media_type: str, data: bytes, text: str | None) -> str:
    """What the model is told about the file: path, type and size, then a summary of its content."""
    head = f"{path} ({media_type}, {len(data):,} bytes)"
    body = _preview_body(path, media_type, data, text)
    return _clip(f"{head}\n{body}" if body else head, PREVIEW_LIMIT)


def _preview_body(path: str, media_type: str, data: bytes, text: str | None) -> str:
    """The content summary that suits the type."""
    if media_type.startswith("image/") and media_type != "image/svg+xml":
        return _image_summary(data)
    if text is None:
        return ""
    ext = posixpath.splitext(path)[1].lower()
    if media_type in _CSV_TYPES or ext in (".csv", ".tsv"):
        return _csv_summary(text, ext)
    if media_type == "application/json" or media_type.endswith("+json") or ext in (".json", ".geojson"):
        return _json_summary(text)
    return _text_excerpt(text)


def _image_summary(data: bytes) -> str:
    """Format and pixel dimensions read by Pillow (headers only, pixels are not decoded)."""
    from PIL import Image  # why: Pillow is loaded only for image attachments

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return f"image: {image.format} {width}x{height} pixels, mode {image.mode}"
    except Exception:  # Pillow's parsers raise many types on hostile input; a preview is best effort
        return "image: could not read its format or dimensions"


def _text_excerpt(text: str) -> str:
    """The first lines of the text and how many there are."""
    lines = [_clip(line.rstrip("\r\n"), LINE_CHARS) for line in itertools.islice(io.StringIO(text), PREVIEW_TEXT_LINES)]
    total = text.count("\n") + (0 if text.endswith("\n") else 1)
    suffix = [f"… ({total:,} lines in total)"] if total > len(lines) else []
    return "\n".join([f"first {len(lines)} of {total:,} lines:", *lines, *suffix])


def _csv_summary(text: str, ext: str) -> str:
    """Header row, number of data rows and the first rows, parsed with the csv module."""
    dialect = _sniff_dialect(text, ext)
    try:
        rows = (row for row in csv.reader(io.StringIO(text), dialect) if row)
        header = next(rows, None)
        first = list(itertools.islice(rows, PREVIEW_CSV_ROWS))
        count = len(first) + sum(1 for _ in rows)
    except csv.Error as exc:
        return f"CSV that the csv module cannot parse ({exc})\n{_text_excerpt(text)}"
    if header is None:
        return "CSV with no rows"
    lines = [
        f"CSV, delimiter {dialect.delimiter!r}, {len(header)} columns, {count:,} data rows",
        f"header: {_csv_line(header, dialect)}",
    ]
    if first:
        lines.append(f"first {len(first)} rows:")
        lines.extend(_csv_line(row, dialect) for row in first)
    return "\n".join(lines)


def _sniff_dialect(text: str, ext: str) -> type[csv.Dialect]:
    """The CSV dialect guessed from the first lines, or excel (excel-tab for .tsv) when unsure."""
    sample = text[:4096]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel_tab if ext == ".tsv" else csv.excel


def _csv_line(row: list[str], dialect: type[csv.Dialect]) -> str:
    """One row written back in its own dialect, bounded in length."""
    buffer = io.StringIO()
    csv.writer(buffer, dialect, lineterminator="").writerow(row)
    return _clip(buffer.getvalue(), LINE_CHARS)


def _json_summary(text: str) -> str:
    """The JSON's shape (types and keys, up to depth 3) and an excerpt; not parsed past DOCUMENT_LIMITS."""
    try:
        check_json_shape(text.encode("utf-8", "surrogatepass"), DOCUMENT_LIMITS, "the attachment")
    except InvalidRequest as exc:
        return f"JSON too large to parse ({exc.message})\n{_text_excerpt(text)}"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; deep nesting recurses
        reason = getattr(exc, "msg", "too deeply nested or a number too long")
        return f"not valid JSON ({reason})\n{_text_excerpt(text)}"
    return "\n".join(
        [
            f"JSON, top level: {_top_level(value)}",
            f"shape: {_clip(_shape(value, 1), 600)}",
            "excerpt:",
            _clip(text.strip(), 600),
        ]
    )


def _top_level(value: Any) -> str:
    """The top-level JSON type with its size."""
    if isinstance(value, dict):
        return f"object with {_count(len(value), 'key')}"
    if isinstance(value, list):
        return f"array of {_count(len(value), 'item')}"
    return json_type_name(value)


def _shape(value: Any, depth: int) -> str:
    """A compact type sketch: keys with value types for objects, length and first item for arrays."""
    if isinstance(value, dict):
        if depth > JSON_SHAPE_DEPTH or not value:
            return f"object({_count(len(value), 'key')})"
        items = [f"{_clip(json.dumps(k), 40)}: {_shape(v, depth + 1)}"
                 for k, v in itertools.islice(value.items(), JSON_SHAPE_KEYS)]
        more = ", …" if len(value) > JSON_SHAPE_KEYS else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(value, list):
        if depth > JSON_SHAPE_DEPTH or not value:
            return f"array({len(value)})"
        return f"array({len(value)}) of {_shape(value[0], depth + 1)}"
    return json_type_name(value)


def _count(n: int, noun: str) -> str:
    """``n`` and the noun, plural when it is not one."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type: null, boolean, number, string, object or array."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "string"
