"""Read the attachment formats a model cannot: spreadsheets as tables, PDF and DOCX as text.

    XLSX, XLSM, XLSB, XLS, ODS --python-calamine--> Table per sheet (typed cells: str, int, float, bool, dates)
    PDF  --pypdf--> text          DOCX --python-docx--> text (paragraphs, then tables as rows)

``cell_text`` is the one spelling of a cell as text, shared by what the model
sees and by the exact conversions of ``utils.model.derived``: empty cells are
empty, whole numbers have no ``.0``, other numbers their shortest exact form,
booleans ``TRUE``/``FALSE`` (as spreadsheets export them), dates ISO 8601
(``2024-01-05``; ``2024-01-05 13:30:00`` with a time of day).

Untrusted bytes are read under limits: the cheap structural caps of
``utils.intake.document_caps`` first (zip members, sizes and ratios in this
process; the cells a sheet spans and a DOCX's paragraph and table-cell counts
in the child), then the parse itself in a child process with a memory limit
and a timeout (``utils.intake.isolation``), since python-calamine can abort the
whole process and pypdf and python-docx can take minutes and gigabytes. A
workbook yields at most ``MAX_WORKBOOK_CELLS`` cells.

The libraries are imported when first needed, so ``import main`` stays quick.
A file a library cannot read, or that passes a limit, is reported as unreadable
(``DocumentUnreadable``, saying which limit), never crashes a build or a worker.
The ``*_in_this_process`` readers are what the child runs (``utils.intake.reader_child``); a worker never
calls them.
Never writes files, never logs content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import posixpath
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from utils.intake.document_caps import docx_count_problem, sheet_extent_problem, zip_problem
from utils.intake.isolation import ReaderFailed, run_isolated

Cell = str | int | float | bool | dt.date | dt.datetime | dt.time | dt.timedelta | None

SPREADSHEET_EXTENSIONS = {".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"}
SPREADSHEET_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-excel", "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.ms-excel.sheet.macroenabled.12", "application/vnd.ms-excel.sheet.binary.macroenabled.12",
}
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MAX_TEXT_CHARS = 60_000
MAX_WORKBOOK_CELLS = 1_000_000  # every sheet together, as handed back from the reader's process
REMEMBERED = 8  # outcomes kept, so the prompt, the check writer and derive blocks read a document once
REMEMBERED_CELLS = 20_000  # a larger result is read again when asked again, never kept

_remembered: OrderedDict[tuple[str, bytes], tuple[bool, Any]] = OrderedDict()
_remembered_lock = threading.Lock()


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
    """Every sheet of an XLSX/XLSM/XLSB/XLS/ODS workbook, in workbook order, read under limits."""
    sheets = _isolated("spreadsheet", data, "spreadsheet")
    return [Table(name, [[decode_cell(cell) for cell in row] for row in rows]) for name, rows in sheets]


def encode_cell(cell: Cell) -> object:
    """A cell as JSON for the reader's answer: str, int, float, bool and None as they are; dates, times and
    durations tagged."""
    if isinstance(cell, dt.datetime):
        return {"datetime": cell.isoformat()}
    if isinstance(cell, dt.date):
        return {"date": cell.isoformat()}
    if isinstance(cell, dt.time):
        return {"time": cell.isoformat()}
    if isinstance(cell, dt.timedelta):
        return {"seconds": cell.total_seconds()}
    return cell


def decode_cell(value: object) -> Cell:
    """The cell ``encode_cell`` wrote."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        raise DocumentUnreadable("the reader's answer holds a cell of no known type")
    [(tag, text)] = value.items()
    if tag == "seconds":
        return dt.timedelta(seconds=float(text))
    if tag == "datetime":
        return dt.datetime.fromisoformat(str(text))
    if tag == "date":
        return dt.date.fromisoformat(str(text))
    if tag == "time":
        return dt.time.fromisoformat(str(text))
    raise DocumentUnreadable("the reader's answer holds a cell of no known type")


def tables_in_this_process(data: bytes) -> list[Table]:
    """The parse ``read_tables`` runs in a child process: caps, then python-calamine (never call it in a worker)."""
    from python_calamine import (  # why: calamine is loaded only for spreadsheets
        CalamineWorkbook,
    )

    problem = sheet_extent_problem(data)
    if problem:
        raise DocumentUnreadable(f"too large to read: {problem}")
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        tables, cells = [], 0
        for name in workbook.sheet_names:
            table = Table(name, _rectangular(workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)))
            cells += sum(map(len, table.rows))
            if cells > MAX_WORKBOOK_CELLS:
                raise DocumentUnreadable(f"too large to read: its sheets hold more than {MAX_WORKBOOK_CELLS:,} cells")
            tables.append(table)
    except DocumentUnreadable:
        raise
    except Exception as exc:  # calamine raises its own types for each format's damage
        raise DocumentUnreadable(f"not a readable spreadsheet ({type(exc).__name__}: {str(exc)[:120]})") from None
    return tables


def _isolated(kind: str, data: bytes, what: str) -> Any:
    """The reader child's answer for ``data`` after the zip caps; DocumentUnreadable on any failure.

    The last REMEMBERED outcomes (failures, and results up to REMEMBERED_CELLS) are kept by content, so a
    document that crashes its reader is tried once per worker, not once per reading.
    """
    key = (kind, hashlib.sha256(data).digest())
    with _remembered_lock:
        known = _remembered.get(key)
    if known is not None:
        ok, value = known
        if not ok:
            raise DocumentUnreadable(value)
        return value
    try:
        problem = zip_problem(data)
        if problem:
            raise DocumentUnreadable(f"not read: {problem}")
        try:
            value = run_isolated(kind, data, what=what)
        except ReaderFailed as exc:
            raise DocumentUnreadable(str(exc)) from None
    except DocumentUnreadable as exc:
        _remember(key, (False, str(exc)))
        raise
    if _size(value) <= REMEMBERED_CELLS:
        _remember(key, (True, value))
    return value


def _size(value: Any) -> int:
    """Cells in a spreadsheet answer, characters / 10 in a text answer."""
    if isinstance(value, str):
        return len(value) // 10
    return sum(len(row) for _name, rows in value for row in rows)


def _remember(key: tuple[str, bytes], outcome: tuple[bool, Any]) -> None:
    """Keep ``outcome`` for ``key``, forgetting the oldest beyond REMEMBERED."""
    with _remembered_lock:
        _remembered[key] = outcome
        _remembered.move_to_end(key)
        while len(_remembered) > REMEMBERED:
            _remembered.popitem(last=False)


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
    """The text of a PDF (page by page) or a DOCX (paragraphs, then table rows), bounded and read under limits."""
    text = str(_isolated(kind, data, kind.upper()))
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "\n[… text cut]"


def pdf_text_in_this_process(data: bytes) -> str:
    """The parse ``extracted_text`` runs in a child process for a PDF."""
    try:
        return _pdf_text(data)
    except Exception as exc:  # the parser raises many types on damaged or hostile files
        raise DocumentUnreadable(f"not a readable PDF ({type(exc).__name__}: {str(exc)[:120]})") from None


def docx_text_in_this_process(data: bytes) -> str:
    """The parse ``extracted_text`` runs in a child process for a DOCX: counts first, then python-docx."""
    problem = docx_count_problem(data)
    if problem:
        raise DocumentUnreadable(f"too large to read: {problem}")
    try:
        return _docx_text(data)
    except Exception as exc:  # the parser raises many types on damaged or hostile files
        raise DocumentUnreadable(f"not a readable DOCX ({type(exc).__name__}: {str(exc)[:120]})") from None


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
