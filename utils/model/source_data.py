"""What a model sees of the data behind a task: documents fetched at build time and attachment tables.

    render_source_data(fetched, attachments, brief) -> Markdown text for a prompt ("" when there is none)

Fetched documents come with their URL, status, content type and size. JSON and
CSV are shown in full when small; when large, JSON shows its structure (paths,
types, array lengths), then its arrays of records as tables (those under keys
the brief names first, each whole while the budget lasts, else head and tail),
then a bounded excerpt; CSV shows its header, row count, head and tail. Every
cut says what was left out. Failed fetches are listed with their reason.
Spreadsheet attachments are shown per sheet (all rows when small, else head and
tail with the row count); PDF and DOCX attachments as their extracted text.

One entry point, used by generation and by any other model call that must see
the same data (the check-writing call). Formats only what it is given: never
fetches, never reads files, never shows a secret or the User-Agent's contact.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from utils.errors import InvalidRequest
from utils.intake.attachments import json_type_name
from utils.intake.documents import (
    DocumentUnreadable,
    Table,
    cell_text,
    document_kind,
    extracted_text,
    read_tables,
)
from utils.intake.fetch import FetchedDocument
from utils.intake.json_limits import DOCUMENT_LIMITS, check_json_shape
from utils.model.prompt_parts import fenced, inline_code
from utils.records import Attachment, Attachments

FULL_CHARS = 24_000  # a document this small (as text) is shown whole
TOTAL_CHARS = 120_000  # every document together
MIN_DOCUMENT_CHARS = 6_000
EXCERPT_CHARS = 1_500
STRUCTURE_LINES = 80
HEAD_ROWS = 30
TAIL_ROWS = 10
SHEET_FULL_ROWS = 500
ROW_CHARS = 2_000  # one row of a cut table, at most
TABLE_COLUMNS = 60  # columns of a record table shown (JSON records that each bring a new key made one per record)

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")


def render_source_data(fetched: Sequence[FetchedDocument], attachments: Attachments, brief: str) -> str:
    """The fetched documents and the attachment tables/texts as prompt text ("" when there are none)."""
    documents = [a for a in attachments.files if document_kind(a.path, a.media_type)]
    count = len(fetched) + len(documents)
    if not count:
        return ""
    budget = max(MIN_DOCUMENT_CHARS, TOTAL_CHARS // count)
    named = {word.lower() for word in _WORD.findall(brief)}
    parts = [_fetched_entry(document, budget, named) for document in fetched]
    parts += [_attachment_entry(attachment, budget) for attachment in documents]
    return "\n\n".join(parts)


def fetch_warnings(fetched: Sequence[FetchedDocument]) -> list[str]:
    """One response warning per failed or cut fetch."""
    warnings = [f"build-time fetch of {d.url} failed: {d.error}" for d in fetched if not d.ok]
    warnings += [f"build-time fetch of {d.url} stopped at the size cap ({len(d.data):,} bytes read)"
                 for d in fetched if d.ok and d.truncated]
    return warnings


def document_warnings(attachments: Attachments) -> list[str]:
    """One response warning per attached spreadsheet, PDF or DOCX that could not be read (it was committed as
    sent; the model was told why it could not see it)."""
    warnings = []
    for attachment in attachments.files:
        kind = document_kind(attachment.path, attachment.media_type)
        try:
            if kind == "spreadsheet":
                read_tables(attachment.data)
            elif kind:
                extracted_text(attachment.data, kind)
        except DocumentUnreadable as exc:
            warnings.append(f"attachment {attachment.path} could not be read for the model: {exc}")
    return warnings


# ---------------------------------------------------------------- fetched documents

def _fetched_entry(document: FetchedDocument, budget: int, named: set[str]) -> str:
    """One fetched URL: how it went, then what it holds."""
    head = f"### Fetched at build time: <{document.url}>"
    if document.status is None:
        return f"{head}\n\nThe fetch FAILED: {document.error}. The data is not available to you; do not invent it."
    facts = [f"HTTP status {document.status}", f"content type {inline_code(document.content_type or 'not given')}",
             f"{len(document.data):,} bytes" + (" (stopped at the size cap: the rest was not read)"
                                                if document.truncated else "")]
    if document.final_url and document.final_url != document.url:
        facts.append(f"redirected to <{document.final_url}>")
    lines = [head, "", "- " + "; ".join(facts) + "."]
    if not document.ok:
        lines.append(f"- The fetch FAILED ({inline_code(document.error)}); the answer began:")
        lines.append(fenced((_text(document.data) or "(binary)")[:EXCERPT_CHARS] or "(empty)"))
        return "\n".join(lines)
    lines.append(_document_view(document, budget, named))
    return "\n".join(lines)


def _document_view(document: FetchedDocument, budget: int, named: set[str]) -> str:
    """The document shown by its kind: JSON, CSV, other text, or binary."""
    text = _text(document.data)
    if text is None:
        return "- Binary content: not shown."
    kind = _kind(document, text)
    if kind == "json":
        try:
            check_json_shape(document.data, DOCUMENT_LIMITS, "the document")
            return _json_view(json.loads(text), text, budget, named)
        except InvalidRequest as exc:  # too many objects to parse within bounded memory: shown as text
            return (f"\n{exc.message}, so it is not parsed; its first {EXCERPT_CHARS:,} characters:\n"
                    + fenced(text[:EXCERPT_CHARS]))
        except (ValueError, RecursionError):
            pass  # not JSON after all (or cut at the cap): shown as text
    if kind == "csv":
        return _csv_view(text, budget)
    if len(text) <= budget:
        return "\n" + fenced(text)
    return f"\n{fenced(text[:budget])}\n(the first {budget:,} of {len(text):,} characters; the rest is left out)"


def _text(data: bytes) -> str | None:
    """The bytes as text (UTF-8, else Latin-1 when they hold no NUL), or None when binary."""
    if b"\x00" in data[:4096]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _kind(document: FetchedDocument, text: str) -> str:
    """'json', 'csv' or 'text', from the content type, the URL and the first character."""
    content_type = document.content_type.lower()
    path = (document.final_url or document.url).split("?", 1)[0].lower()
    if "json" in content_type:
        return "json"
    if "csv" in content_type or "tab-separated" in content_type:
        return "csv"
    if path.endswith(".json") or text.lstrip()[:1] in ("{", "["):
        return "json"
    return "csv" if path.endswith((".csv", ".tsv")) else "text"


# ---------------------------------------------------------------- JSON

def _json_view(value: Any, text: str, budget: int, named: set[str]) -> str:
    """Small JSON whole; large JSON as structure, record tables and an excerpt."""
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= min(budget, FULL_CHARS):
        return "\n" + fenced(text.strip(), "json")
    if len(compact) <= min(budget, FULL_CHARS):
        return "\nThe whole document (re-serialized without whitespace):\n" + fenced(compact, "json")
    structure = list(_structure(value, "$"))
    shown = structure[:STRUCTURE_LINES]
    lines = [f"\nLarge JSON ({len(compact):,} characters without whitespace), so it is summarized. Structure "
             "(path: type; `[]` stands for every item of an array):", fenced("\n".join(shown))]
    if len(structure) > len(shown):
        lines.append(f"({len(structure) - len(shown):,} more structure lines left out)")
    remaining = budget - sum(map(len, lines)) - EXCERPT_CHARS - 500  # 500: headings and fences
    for path, records in _record_arrays(value, "$", named)[:6]:
        table = _records_table(path, records, remaining)
        if table is None:
            break
        lines.append(table)
        remaining -= len(table)
    lines.append(f"The first {EXCERPT_CHARS:,} characters of the document:")
    lines.append(fenced(compact[:EXCERPT_CHARS] + "…", "json"))
    return "\n".join(lines)


def _structure(value: Any, path: str) -> Iterator[str]:
    """One line per path: its type, with key counts and array lengths."""
    if isinstance(value, dict):
        yield f"{path}: object ({len(value):,} keys)"
        for key, item in itertools.islice(value.items(), 40):
            yield from _structure(item, f"{path}.{key}")
    elif isinstance(value, list):
        kinds = sorted({json_type_name(item) for item in value})
        yield f"{path}: array of {len(value):,} ({', '.join(kinds) or 'empty'})"
        objects = [item for item in value[:200] if isinstance(item, dict)]
        if objects:
            merged: dict[str, Any] = {}
            for item in objects:
                for key, field_value in item.items():
                    merged.setdefault(key, field_value)
            for key, field_value in itertools.islice(merged.items(), 40):
                yield from _structure(field_value, f"{path}[].{key}")
        elif value and isinstance(value[0], list):
            yield from _structure(value[0], f"{path}[]")
    else:
        example = json.dumps(value, ensure_ascii=False)
        yield f"{path}: {json_type_name(value)}, e.g. {example[:60]}"


def _record_arrays(value: Any, path: str, named: set[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Arrays of objects in the document: those under keys the brief names first, then the longest."""
    found: list[tuple[str, list[dict[str, Any]]]] = []

    def walk(item: Any, where: str) -> None:
        if isinstance(item, dict):
            for key, child in item.items():
                walk(child, f"{where}.{key}")
        elif isinstance(item, list):
            if item and all(isinstance(element, dict) for element in item):
                found.append((where, item))
            elif item and isinstance(item[0], (list, dict)):
                for element in item[:20]:
                    walk(element, f"{where}[]")

    walk(value, path)

    def rank(entry: tuple[str, list[dict[str, Any]]]) -> tuple[bool, int]:
        words = {word.lower() for word in _WORD.findall(entry[0])}
        return (not (words & named), -len(entry[1]))

    return sorted(found, key=rank)


def _records_table(path: str, records: list[dict[str, Any]], budget: int) -> str | None:
    """An array of objects as CSV rows: whole when it fits ``budget``, else head and tail; None if nothing fits."""
    every_key = dict.fromkeys(key for record in records for key in record)
    columns = list(itertools.islice(every_key, TABLE_COLUMNS))
    rows = [_csv_row(columns)] + [_csv_row([_json_cell(record.get(key)) for key in columns]) for record in records]
    intro = f"Array {inline_code(path)}: {len(records):,} items as a table (one row per item, JSON values):"
    if len(every_key) > len(columns):
        intro += f" the first {len(columns)} of {len(every_key):,} keys are columns; the rest are left out."
    if len("\n".join(rows)) + len(intro) + 20 <= budget:
        return intro + "\n" + fenced("\n".join(rows), "csv")
    rows = [_clipped(row) for row in rows]
    head, tail = _fit_head_tail(rows[1:], budget - len(intro) - len(rows[0]) - 120)
    if not head:
        return None
    left_out = len(records) - len(head) - len(tail)
    body = [rows[0], *head, f"… {left_out:,} items left out …", *tail]
    return intro + "\n" + fenced("\n".join(body), "csv")


def _json_cell(value: Any) -> str:
    """A JSON value as a table cell: strings as they are, everything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _fit_head_tail(rows: list[str], budget: int) -> tuple[list[str], list[str]]:
    """As many leading rows (three quarters) and trailing rows (one quarter) as fit in ``budget`` characters."""
    head: list[str] = []
    used = 0
    for row in rows:
        if used + len(row) + 1 > budget * 3 // 4:
            break
        head.append(row)
        used += len(row) + 1
    tail: list[str] = []
    for row in reversed(rows[len(head):]):
        if used + len(row) + 1 > budget:
            break
        tail.insert(0, row)
        used += len(row) + 1
    return head, tail


# ---------------------------------------------------------------- CSV and tables

def _csv_row(cells: Sequence[str]) -> str:
    """Cells written as one CSV line."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def _clipped(row: str) -> str:
    """A table row bounded to ROW_CHARS, marked when cut."""
    return row if len(row) <= ROW_CHARS else row[:ROW_CHARS] + f"… [{len(row) - ROW_CHARS:,} more characters]"


def _csv_view(text: str, budget: int) -> str:
    """Small CSV whole; large CSV as header, row count, head and tail rows."""
    lines = text.splitlines()
    if len(text) <= min(budget, FULL_CHARS):
        return f"\nCSV, {max(0, len(lines) - 1):,} data rows after the header:\n" + fenced(text.strip(), "csv")
    lines = [_clipped(line) for line in lines]
    head, tail = _fit_head_tail(lines[1:], budget - len(lines[0]) - 200)
    left_out = len(lines) - 1 - len(head) - len(tail)
    shown = [lines[0], *head, f"… {left_out:,} rows left out …", *tail]
    return (f"\nLarge CSV: header and {len(lines) - 1:,} data rows; the first {len(head):,} and last {len(tail):,} "
            "are shown:\n" + fenced("\n".join(shown), "csv"))


def _attachment_entry(attachment: Attachment, budget: int) -> str:
    """A spreadsheet as its sheets' tables, a PDF or DOCX as its text."""
    kind = document_kind(attachment.path, attachment.media_type) or ""
    head = f"### Attachment {inline_code(attachment.path)} ({kind}, {len(attachment.data):,} bytes)"
    try:
        if kind == "spreadsheet":
            tables = read_tables(attachment.data)
            per_sheet = max(2_000, budget // max(1, len(tables)))
            return "\n\n".join([head, *(_sheet_view(table, per_sheet) for table in tables)])
        text = extracted_text(attachment.data, kind)
    except DocumentUnreadable as exc:
        return f"{head}\n\nCould not be read: {exc}."
    if len(text) > budget:
        text = text[:budget] + f"\n[… {len(text) - budget:,} more characters left out]"
    return f"{head}\n\nIts text, extracted:\n{fenced(text or '(no text found)')}"


def _sheet_view(table: Table, budget: int) -> str:
    """One sheet: its size, then every row when small, else head and tail (cells as ``cell_text`` spells them)."""
    rows = [_csv_row([cell_text(cell) for cell in row]) for row in table.rows]
    width = len(table.rows[0]) if table.rows else 0
    intro = (f"Sheet {inline_code(table.name)}: {len(rows):,} rows (the first is usually the header) x "
             f"{width} columns; cells as CSV (dates ISO 8601, empty cells empty):")
    if not rows:
        return f"Sheet {inline_code(table.name)}: empty."
    if len(rows) <= SHEET_FULL_ROWS and len("\n".join(rows)) <= budget:
        return intro + "\n" + fenced("\n".join(rows), "csv")
    rows = [_clipped(row) for row in rows]
    head, tail = rows[1:1 + HEAD_ROWS], rows[max(1 + HEAD_ROWS, len(rows) - TAIL_ROWS):]
    left_out = len(rows) - 1 - len(head) - len(tail)
    shown = [rows[0], *head, f"… {left_out:,} rows left out …", *tail]
    return intro + "\n" + fenced("\n".join(shown), "csv")
