"""Cheap structural caps on untrusted office documents, checked before (and inside) the expensive parse.

    zip_problem(data)          -> reason | None   members, sizes and compression ratios, from the zip directory only
    sheet_extent_problem(data) -> reason | None   the cells an XLSX/XLSM sheet spans (its cell references), streamed
    docx_count_problem(data)   -> reason | None   paragraphs and table cells in a DOCX body, streamed

A 1.5 KB XLSX with cells at A1 and XFD1048576 spans 17 billion cells, which the
spreadsheet library tries to allocate; a 9.6 KB DOCX of empty paragraphs
expands to a million of them. These checks read the zip directory, or stream
one member's XML in bounded chunks counting a few patterns, so their cost is
linear in the document and their memory constant. They never parse XML into a
tree, never write files, never log content.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

MAX_MEMBERS = 2_000
MAX_MEMBER_BYTES = 200 * 1024 * 1024  # one member, uncompressed
MAX_TOTAL_BYTES = 400 * 1024 * 1024  # every member together, uncompressed
MAX_RATIO = 200  # uncompressed / compressed, for members above RATIO_FLOOR
RATIO_FLOOR = 4 * 1024 * 1024
MAX_SHEET_CELLS = 2_000_000  # rows x columns one sheet spans
MAX_PARAGRAPHS = 50_000
MAX_TABLE_CELLS = 200_000
CHUNK = 1024 * 1024
OVERLAP = 64

_CELL_REF = re.compile(rb'<(?:\w+:)?c\b[^>]{0,200}?\br="([A-Z]{1,3})([0-9]{1,7})"')
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\b[^>]{0,100}?\bref="[A-Z]{0,3}[0-9]{0,7}:?([A-Z]{1,3})([0-9]{1,7})"')
_PARAGRAPH = re.compile(rb"<w:p[\s>/]")
_TABLE_CELL = re.compile(rb"<w:tc[\s>/]")


def zip_problem(data: bytes) -> str | None:
    """Why a zip-based document is too big to open (too many members, a member too large or too compressed)."""
    declared = _declared_members(data)
    if declared is not None and declared > MAX_MEMBERS:  # before zipfile builds an object per member
        return f"it declares {declared:,} files, more than {MAX_MEMBERS:,}"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None  # not a zip (XLS, PDF) or damaged: the reader says so
    if len(members) > MAX_MEMBERS:
        return f"it holds {len(members):,} files, more than {MAX_MEMBERS:,}"
    if sum(member.file_size for member in members) > MAX_TOTAL_BYTES:
        return f"it expands to more than {MAX_TOTAL_BYTES // 2**20} MB"
    for member in members:
        if member.file_size > MAX_MEMBER_BYTES:
            return f"its part {member.filename!r} expands to more than {MAX_MEMBER_BYTES // 2**20} MB"
        if member.file_size > RATIO_FLOOR and member.file_size > MAX_RATIO * max(1, member.compress_size):
            return (f"its part {member.filename!r} is compressed {member.file_size // max(1, member.compress_size):,}"
                    f" to 1 (a compression bomb; the limit is {MAX_RATIO} to 1)")
    return None


def _declared_members(data: bytes) -> int | None:
    """The member count the zip's end-of-central-directory record declares (0xFFFF: a zip64 count), or None."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 12 > len(data):
        return None
    count = int.from_bytes(data[end + 10:end + 12], "little")
    return MAX_MEMBERS + 1 if count == 0xFFFF else count


def sheet_extent_problem(data: bytes) -> str | None:
    """Why an XLSX/XLSM workbook's sheets span too many cells (from their cell references and dimensions)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                    rows, columns = _extent(_chunks(archive, name))
                    if rows * columns > MAX_SHEET_CELLS:
                        return (f"its sheet {name.rsplit('/', 1)[-1]!r} spans {rows:,} rows x {columns:,} columns, "
                                f"more than {MAX_SHEET_CELLS:,} cells")
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError):
        return None  # not an XLSX (XLS, XLSB, ODS) or damaged: the reader says so
    return None


def docx_count_problem(data: bytes) -> str | None:
    """Why a DOCX body holds too many paragraphs or table cells."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            paragraphs = cells = 0
            for chunk in _chunks(archive, "word/document.xml"):
                paragraphs += len(_PARAGRAPH.findall(chunk))
                cells += len(_TABLE_CELL.findall(chunk))
                if paragraphs > MAX_PARAGRAPHS:
                    return f"it holds more than {MAX_PARAGRAPHS:,} paragraphs"
                if cells > MAX_TABLE_CELLS:
                    return f"its tables hold more than {MAX_TABLE_CELLS:,} cells"
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, RuntimeError):
        return None  # not a DOCX or damaged: the reader says so
    return None


def _chunks(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    """One member's bytes in CHUNK pieces, each starting with the last OVERLAP bytes of the one before
    (a pattern cut at a boundary is seen whole in the next piece; counts tolerate the rare double)."""
    tail = b""
    with archive.open(name) as member:
        while piece := member.read(CHUNK):
            yield tail + piece
            tail = piece[-OVERLAP:]


def _extent(chunks: Iterator[bytes]) -> tuple[int, int]:
    """The largest row number and column number that the sheet's cell references and dimension name."""
    rows = columns = 0
    for chunk in chunks:
        for pattern in (_DIMENSION, _CELL_REF):
            for letters, digits in pattern.findall(chunk):
                columns = max(columns, _column_number(letters))
                rows = max(rows, int(digits))
    return rows, columns


def _column_number(letters: bytes) -> int:
    """A column's letters as its number (A = 1, XFD = 16384)."""
    number = 0
    for letter in letters:
        number = number * 26 + (letter - 64)
    return number
