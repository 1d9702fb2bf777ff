"""Exact derived files: the model asks for a file made from an attachment (or a fetched document); the service makes it.

A reply asks with a ``derive`` block after the file's path line, instead of the file's content:

    data.csv
    ```derive
    from: data.xlsx
    sheet: Sales
    ```

``from`` names an attachment (its path or the name it was sent under) or a URL
fetched at build time; ``sheet`` picks a spreadsheet's sheet (default: the first).
Conversions, value by value (cells spelled by ``utils.intake.documents.cell_text``):

    spreadsheet (xlsx, xlsm, xlsb, xls, ods) -> .csv, .tsv (every row of the sheet), .json (one object per data row,
                                                keyed by the header; numbers and booleans typed, empty cells null)
    .csv / .tsv  -> .json (one object per data row; a column whose cells are all plain decimal numbers (no leading
                    zeros) holds numbers, empty cells there null; every other column keeps its text),
                    .csv / .tsv (the other delimiter)
    .json array of objects -> .csv / .tsv (header: every key in order of appearance)
    any file     -> a byte-for-byte copy when the extensions match

A request that cannot be met (unknown source, unsupported pair, unreadable
file, a target that is an attachment) is a problem for the re-ask, never a guess.
Pure: never reads the filesystem, never fetches, never calls a model.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from utils.intake.documents import (
    DocumentUnreadable,
    Table,
    cell_json,
    cell_text,
    document_kind,
    read_tables,
)
from utils.intake.fetch import FetchedDocument
from utils.records import Attachments

_OPTION = re.compile(r"^\s*(?P<key>from|source|sheet)\s*[:=]?\s*(?P<value>.+?)\s*$", re.IGNORECASE)
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_TABLE_EXTS = {".csv": ",", ".tsv": "\t"}


class DeriveError(Exception):
    """A derive request that cannot be met exactly; the message says why and what would work."""


@dataclass(frozen=True)
class DeriveRequest:
    """A file the model asked the service to make: its path, the source named, and an optional sheet."""

    target: str
    source: str
    sheet: str = ""


@dataclass(frozen=True)
class Source:
    """Bytes a derived file may be made from, with the name whose extension says their format."""

    name: str
    data: bytes


def parse_derive_block(target: str, body: str) -> DeriveRequest:
    """The request a ``derive`` block holds; DeriveError when it names no source."""
    options: dict[str, str] = {}
    for line in body.splitlines():
        match = _OPTION.match(line)
        if match:
            key = "from" if match["key"].lower() == "source" else match["key"].lower()
            options[key] = match["value"].strip("`\"'")
    if not options.get("from"):
        raise DeriveError(f"the derive block for '{target}' names no source: write `from: <attachment name>`")
    return DeriveRequest(target, options["from"], options.get("sheet", ""))


def derive_sources(attachments: Attachments, fetched: Sequence[FetchedDocument] = ()) -> dict[str, Source]:
    """Every source a derive block may name: attachments by path and by sent name, fetched URLs."""
    sources: dict[str, Source] = {}
    for document in fetched:
        if document.ok and not document.truncated:
            sources[document.url] = Source(_fetched_name(document), document.data)
    for attachment in attachments.files:
        sources.setdefault(attachment.name, Source(attachment.path, attachment.data))
        sources[attachment.path] = Source(attachment.path, attachment.data)
    return sources


def _fetched_name(document: FetchedDocument) -> str:
    """A name whose extension tells a fetched document's format (from its URL, else its content type)."""
    path = (document.final_url or document.url).split("?", 1)[0].split("#", 1)[0]
    if posixpath.splitext(path)[1]:
        return path
    content_type = document.content_type.lower()
    return path + (".json" if "json" in content_type else ".csv" if "csv" in content_type else ".txt")


def derive_files(blocks: Sequence[tuple[str, str]], sources: Mapping[str, Source],
                 protected: Sequence[str] = ()) -> tuple[dict[str, bytes], list[str]]:
    """The files asked for by (target, block body) pairs, and one problem per request that cannot be met."""
    files: dict[str, bytes] = {}
    problems: list[str] = []
    for target, body in blocks:
        try:
            if target in protected:
                raise DeriveError(f"'{target}' is an attachment and is published as given: derive another name")
            files[target] = derive(parse_derive_block(target, body), sources)
        except DeriveError as exc:
            problems.append(str(exc))
    return files, problems


def derive(request: DeriveRequest, sources: Mapping[str, Source]) -> bytes:
    """The bytes of one derived file, converted exactly from its source."""
    source = sources.get(request.source) or sources.get(request.source.removeprefix("./"))
    if source is None:
        known = ", ".join(f"'{name}'" for name in sources) or "none"
        raise DeriveError(f"'{request.target}' is derived from '{request.source}', which is not an attachment or a "
                          f"fetched URL (known sources: {known})")
    source_ext = posixpath.splitext(source.name)[1].lower()
    target_ext = posixpath.splitext(request.target)[1].lower()
    try:
        if document_kind(source.name, "") == "spreadsheet":
            return _from_sheet(_pick_sheet(read_tables(source.data), request), target_ext, request)
        if source_ext == target_ext:
            return source.data
        if source_ext in _TABLE_EXTS:
            return _from_delimited(source.data, _TABLE_EXTS[source_ext], target_ext, request)
        if source_ext == ".json":
            return _from_json(source.data, target_ext, request)
    except DocumentUnreadable as exc:
        raise DeriveError(f"'{request.target}': the source '{request.source}' is {exc}") from None
    raise _unsupported(request, source_ext, target_ext)


def _unsupported(request: DeriveRequest, source_ext: str, target_ext: str) -> DeriveError:
    """The error for a pair of formats the service does not convert."""
    return DeriveError(f"'{request.target}' cannot be derived from '{request.source}': {source_ext or 'no extension'} "
                       f"to {target_ext or 'no extension'} is not a supported conversion (supported: spreadsheet to "
                       ".csv/.tsv/.json, CSV/TSV to .json/.csv/.tsv, JSON array of objects to .csv/.tsv, or a copy "
                       "with the same extension); write that file yourself instead")


def _pick_sheet(tables: list[Table], request: DeriveRequest) -> Table:
    """The sheet the request names (exact, then ignoring case), else the first."""
    if not tables:
        raise DeriveError(f"'{request.target}': the workbook '{request.source}' has no sheets")
    if not request.sheet:
        return tables[0]
    for table in tables:
        if table.name == request.sheet or table.name.lower() == request.sheet.lower():
            return table
    names = ", ".join(f"'{t.name}'" for t in tables)
    raise DeriveError(f"'{request.target}': the workbook '{request.source}' has no sheet '{request.sheet}' "
                      f"(its sheets: {names})")


def _from_sheet(table: Table, target_ext: str, request: DeriveRequest) -> bytes:
    """A sheet as CSV/TSV (every row) or JSON records."""
    if target_ext in _TABLE_EXTS:
        return _delimited([[cell_text(cell) for cell in row] for row in table.rows], _TABLE_EXTS[target_ext])
    if target_ext == ".json":
        header = _keys([cell_text(cell) for cell in table.rows[0]]) if table.rows else []
        records = [dict(zip(header, (cell_json(cell) for cell in row), strict=False)) for row in table.rows[1:]]
        return _json_bytes(records)
    raise _unsupported(request, ".xlsx", target_ext)


def _from_delimited(data: bytes, delimiter: str, target_ext: str, request: DeriveRequest) -> bytes:
    """CSV/TSV as JSON records or re-delimited."""
    rows = list(csv.reader(io.StringIO(_decoded(data, request)), delimiter=delimiter))
    if target_ext in _TABLE_EXTS:
        return _delimited(rows, _TABLE_EXTS[target_ext])
    if target_ext == ".json":
        header = _keys(rows[0]) if rows else []
        body = [row for row in rows[1:] if row]
        numeric = [all(_PLAIN_NUMBER.fullmatch(row[i]) for row in body if i < len(row) and row[i])
                   for i in range(len(header))]
        records = [dict(zip(header, (_typed(cell, numeric[i]) for i, cell in enumerate(row)), strict=False))
                   for row in body]
        return _json_bytes(records)
    raise _unsupported(request, ".csv", target_ext)


def _from_json(data: bytes, target_ext: str, request: DeriveRequest) -> bytes:
    """A JSON array of objects as CSV/TSV."""
    try:
        records = json.loads(_decoded(data, request))
    except ValueError as exc:
        raise DeriveError(f"'{request.target}': the source '{request.source}' is not valid JSON ({exc})") from None
    if target_ext not in _TABLE_EXTS:
        raise _unsupported(request, ".json", target_ext)
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise DeriveError(f"'{request.target}': the source '{request.source}' is not a JSON array of objects")
    columns = list(dict.fromkeys(key for record in records for key in record))
    rows = [columns] + [[_json_text(record.get(key)) for key in columns] for record in records]
    return _delimited(rows, _TABLE_EXTS[target_ext])


def _decoded(data: bytes, request: DeriveRequest) -> str:
    """The source as UTF-8 text (a BOM dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DeriveError(f"'{request.target}': the source '{request.source}' is not UTF-8 text") from None


def _keys(header: list[str]) -> list[str]:
    """Header cells as distinct object keys (blank ones named column_N, repeats suffixed)."""
    keys: list[str] = []
    for number, name in enumerate(header, 1):
        key = name or f"column_{number}"
        while key in keys:
            key += "_2"
        keys.append(key)
    return keys


def _typed(cell: str, numeric_column: bool) -> str | int | float | None:
    """A CSV cell as JSON: in a column of plain decimal numbers (no leading zeros) a number, or null when empty;
    in any other column the text as it is."""
    if not numeric_column:
        return cell
    if not cell:
        return None
    number = float(cell)
    if number.is_integer() and "." not in cell and "e" not in cell.lower():
        return int(cell)
    return number


def _json_text(value: object) -> str:
    """A JSON value as a CSV cell: strings as they are, null empty, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _delimited(rows: list[list[str]], delimiter: str) -> bytes:
    """Rows as CSV/TSV text with LF line endings."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _json_bytes(records: list[dict[str, Any]]) -> bytes:
    """Records as indented JSON, non-ASCII kept."""
    return (json.dumps(records, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
