"""Read the attachment formats a model cannot: spreadsheets as tables, PDF and DOCX as text.

    XLSX, XLSM, XLSB, XLS, ODS --python-calamine--> Table per sheet (typed cells: str, int, float, bool, dates)
    PDF  --pypdf--> text          DOCX --python-docx--> text (paragraphs, then tables as rows)

``cell_text`` is the one spelling of a cell as text, shared by what the model
sees and by the exact conversions of ``utils.model.derived``: empty cells are
empty, whole numbers have no ``.0``, other numbers their shortest exact form,
booleans ``TRUE``/``FALSE`` (as spreadsheets export them), dates ISO 8601
(``2024-01-05``; ``2024-01-05 13:30:00`` with a time of day).

The libraries are imported when first needed, so ``import main`` stays quick.
A file a library cannot read is reported as unreadable (``DocumentUnreadable``),
never crashes a build. Never writes files, never logs content.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

Cell = str | int | float | bool | dt.date | dt.datetime | dt.time | dt.timedelta | None

SPREADSHEET_EXTENSIONS = {".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"}
SPREADSHEET_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-excel", "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.ms-excel.sheet.macroenabled.12", "application/vnd.ms-excel.sheet.binary.macroenabled.12",
}
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MAX_TEXT_CHARS = 60_000


class DocumentUnreadable(Exception):
    """The file is not a readable document of the format its name or type says."""


@dataclass(frozen=True)
class Table:
    """One sheet: its name and its rows of typed cells (the first row is usually the header)."""

    name: str
    rows: list[list[Cell]]


def document_kind(path: str, media_type: str) -> str | None:
    """'spreadsheet', 'pdf' or 'docx' when the file is one of those formats, else None."""
    ext = posixpath.splitext(path)[1].lower()
    if ext in SPREADSHEET_EXTENSIONS or media_type in SPREADSHEET_TYPES:
        return "spreadsheet"
    if ext == ".pdf" or media_type == "application/pdf":
        return "pdf"
    if ext == ".docx" or media_type == DOCX_TYPE:
        return "docx"
    return None


# ---------------------------------------------------------------- spreadsheets

def read_tables(data: bytes) -> list[Table]:
    """Every sheet of an XLSX/XLSM/XLSB/XLS/ODS workbook, in workbook order."""
    from python_calamine import (  # why: calamine is loaded only for spreadsheets
        CalamineWorkbook,
    )

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        tables = [Table(name, _rectangular(workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)))
                  for name in workbook.sheet_names]
    except Exception as exc:  # calamine raises its own types for each format's damage
        raise DocumentUnreadable(f"not a readable spreadsheet ({type(exc).__name__}: {str(exc)[:120]})") from None
    return tables


def _rectangular(rows: Sequence[Sequence[Cell]]) -> list[list[Cell]]:
    """Rows without trailing empty rows and columns, each as wide as the widest."""
    cleaned = [[None if cell == "" else cell for cell in row] for row in rows]
    while cleaned and all(cell is None for cell in cleaned[-1]):
        cleaned.pop()
    width = max((_used_width(row) for row in cleaned), default=0)
    return [(row + [None] * width)[:width] for row in cleaned]


def _used_width(row: list[Cell]) -> int:
    """The index after the last non-empty cell."""
    for index in range(len(row), 0, -1):
        if row[index - 1] is not None:
            return index
    return 0


def cell_text(value: Cell) -> str:
    """The cell as CSV text (see the module docstring for each type's spelling)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    return str(value)


def cell_json(value: Cell) -> str | int | float | bool | None:
    """The cell as a JSON value: numbers and booleans typed, dates as their ``cell_text``, empty as null."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return cell_text(value)


def _duration(value: dt.timedelta) -> str:
    """A duration as H:MM:SS (hours may pass 24)."""
    seconds = value.total_seconds()
    sign = "-" if seconds < 0 else ""
    whole, fraction = divmod(abs(seconds), 1)
    hours, rest = divmod(int(whole), 3600)
    text = f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return text + (f"{fraction:.6f}".rstrip("0")[1:] if fraction else "")


# ---------------------------------------------------------------- text documents

def extracted_text(data: bytes, kind: str) -> str:
    """The text of a PDF (page by page) or a DOCX (paragraphs, then table rows), bounded."""
    try:
        text = _pdf_text(data) if kind == "pdf" else _docx_text(data)
    except Exception as exc:  # the parsers raise many types on damaged or hostile files
        raise DocumentUnreadable(f"not a readable {kind.upper()} ({type(exc).__name__}: {str(exc)[:120]})") from None
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "\n[… text cut]"


def _pdf_text(data: bytes) -> str:
    """Each page's text, headed by its number."""
    from pypdf import PdfReader  # why: pypdf is loaded only for PDF attachments

    reader = PdfReader(io.BytesIO(data))
    pages = []
    for number, page in enumerate(reader.pages, 1):
        pages.append(f"--- page {number} of {len(reader.pages)} ---\n{(page.extract_text() or '').strip()}")
        if sum(map(len, pages)) > MAX_TEXT_CHARS:
            break
    return "\n".join(pages)


def _docx_text(data: bytes) -> str:
    """The paragraphs, then each table's rows with cells separated by ' | '."""
    import docx  # why: python-docx is loaded only for DOCX attachments

    document = docx.Document(io.BytesIO(data))
    lines = [paragraph.text for paragraph in document.paragraphs]
    for number, table in enumerate(document.tables, 1):
        lines.append(f"--- table {number} ---")
        lines.extend(" | ".join(cell.text for cell in row.cells) for row in table.rows)
    return "\n".join(lines).strip()
