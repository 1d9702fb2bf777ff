"""Hostile documents from the attack review of issue 23, each with an honest one of about the same size.

    far_corner_xlsx()          two cells, A1 and XFD1048576: a reader that allocates the span aborts the process
    unreferenced_far_xlsx()    the same span from cells without references (past the cheap caps: only the
                               child process's isolation keeps it from aborting the worker)
    empty_paragraphs_docx(n)   a DOCX body of ``n`` empty paragraphs (a few KB compressed)
    new_key_records(n)         JSON records that each bring a new key (one column per record)
    repeated_header_csv(n)     a CSV header repeating one name ``n`` times
    container_json(n)          ``[{}, {}, ...]``: n objects in a few bytes each

Used by tests/test_hostile_documents.py and bench/hostile_data.py. Pure: builds bytes, never writes files.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

from tests.sample_documents import docx_bytes, workbook_bytes


def far_corner_xlsx() -> bytes:
    """An XLSX whose only cells are A1 and XFD1048576 (the last cell a sheet may have)."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active["A1"] = "start"
    book.active["XFD1048576"] = "end"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def unreferenced_far_xlsx() -> bytes:
    """An XLSX whose first row has 16,384 cells without ``r`` references and whose last cell is on row 1,048,576."""
    source = zipfile.ZipFile(io.BytesIO(honest_xlsx(1)))
    wide = b'<row r="1">' + b'<c t="inlineStr"><is><t>x</t></is></c>' * 16_384 + b"</row>"
    far = b'<row r="1048576"><c t="inlineStr"><is><t>end</t></is></c></row>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data = re.sub(rb"<dimension[^>]*/>", b"", data)
                data = re.sub(rb"<sheetData>.*</sheetData>", b"<sheetData>" + wide + far + b"</sheetData>", data,
                              flags=re.DOTALL)
            target.writestr(item.filename, data)
    return buffer.getvalue()


def honest_xlsx(rows: int = 20) -> bytes:
    """An ordinary small workbook: a header and ``rows`` rows of five columns."""
    return workbook_bytes({"Sales": [["day", "region", "units", "price", "note"]]
                           + [[n, f"region {n % 7}", n * 3, n * 1.25, f"note {n}"] for n in range(rows)]})


def docx_with_body(body: bytes) -> bytes:
    """python-docx's DOCX with its ``word/document.xml`` body replaced by ``body``."""
    source = zipfile.ZipFile(io.BytesIO(docx_bytes()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                start, end = data.index(b"<w:body>") + len(b"<w:body>"), data.index(b"</w:body>")
                data = data[:start] + body + data[end:]
            target.writestr(item.filename, data)
    return buffer.getvalue()


def empty_paragraphs_docx(count: int = 1_000_000) -> bytes:
    """A DOCX whose body is ``count`` empty paragraphs."""
    return docx_with_body(b"<w:p/>" * count)


def honest_docx(paragraphs: int = 200) -> bytes:
    """A DOCX of ``paragraphs`` short paragraphs of ordinary text."""
    text = b"".join(b"<w:p><w:r><w:t>Paragraph %d of an ordinary report about sales in region %d.</w:t></w:r></w:p>"
                    % (n, n % 9) for n in range(paragraphs))
    return docx_with_body(text)


def new_key_records(count: int) -> bytes:
    """A JSON array of ``count`` objects, each with a key no other has."""
    return json.dumps([{f"key_{n}": n} for n in range(count)]).encode()


def honest_records(count: int) -> bytes:
    """A JSON array of ``count`` objects with the same four keys."""
    return json.dumps([{"id": n, "name": f"item {n}", "price": n * 1.5, "ok": n % 2 == 0}
                       for n in range(count)]).encode()


def repeated_header_csv(count: int) -> bytes:
    """A CSV whose header repeats one name ``count`` times, with one data row."""
    return (",".join(["price"] * count) + "\n" + ",".join(["1"] * count) + "\n").encode()


def container_json(count: int) -> bytes:
    """``[{},{},...]``: ``count`` empty objects."""
    return b"[" + b"{}," * (count - 1) + b"{}]"
