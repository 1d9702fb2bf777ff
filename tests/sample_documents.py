"""Binary documents made for tests: a workbook with several sheets (dates, numbers, empty cells), a DOCX, a PDF;
and the value-by-value comparison of a CSV cell with a workbook cell.

Made with the writing side of real libraries (openpyxl, python-docx) or, for the
PDF, written object by object with a correct cross-reference table.
"""

from __future__ import annotations

import datetime as dt
import io

SALES_ROWS = [
    ["date", "region", "units", "price", "note", "paid", "shipped_at"],
    [dt.date(2024, 1, 5), "North", 12, 19.99, None, True, dt.datetime(2024, 1, 6, 9, 30)],
    [dt.date(2024, 1, 6), "South", 7, 5.5, "rush order", False, None],
    [dt.datetime(2024, 2, 29), "Östra, \"quoted\"", 0, -3.25, "", True, dt.datetime(2024, 3, 1)],
    [None, None, None, None, None, None, None],  # an empty row inside the table
    [dt.date(2023, 12, 31), "West", 1234567, 0.1, "multi\nline", None, dt.datetime(2024, 1, 2, 23, 59, 59)],
]
TARGETS_ROWS = [["region", "target"], ["North", 100], ["South", 250.75], ["West", None]]


def workbook_bytes(sheets: dict[str, list[list]] | None = None) -> bytes:
    """An XLSX with the given sheets (default: Sales and Targets), written by openpyxl."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in (sheets or {"Sales": SALES_ROWS, "Targets": TARGETS_ROWS}).items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def docx_bytes() -> bytes:
    """A DOCX with two paragraphs and a table, written by python-docx."""
    import docx

    document = docx.Document()
    document.add_paragraph("Quarterly report for the board.")
    document.add_paragraph("Revenue grew 12% to 4.2 million.")
    table = document.add_table(rows=2, cols=2)
    for row, values in zip(table.rows, (("region", "revenue"), ("North", "1.9M")), strict=False):
        for cell, value in zip(row.cells, values, strict=False):
            cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pdf_bytes(lines: tuple[str, ...] = ("Invoice 2024-017", "Total due: 1,234.50 EUR")) -> bytes:
    """A one-page PDF showing ``lines`` in Helvetica."""
    text = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    content = f"BT /F1 12 Tf 72 720 Td {text} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def assert_cell_equals(text: str, value: object) -> None:
    """One CSV cell against the workbook's value, compared as values, not spellings."""
    if value is None or value == "":
        assert text == ""
    elif isinstance(value, bool):
        assert text == ("TRUE" if value else "FALSE")
    elif isinstance(value, (int, float)):
        assert float(text) == value
    elif isinstance(value, dt.datetime):
        parsed = dt.datetime.fromisoformat(text) if len(text) > 10 else dt.datetime.combine(
            dt.date.fromisoformat(text), dt.time())
        assert parsed == value
    elif isinstance(value, dt.date):
        assert dt.date.fromisoformat(text) == value
    else:
        assert text == value
