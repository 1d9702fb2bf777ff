"""Exact derived files: the model asks for a file made from attachments or fetched documents; the service makes it.

A reply asks with a ``derive`` block after the file's path line, instead of the file's content:

    data.csv
    ```derive
    from: data.xlsx
    sheet: Sales
    ```

    stats.json
    ```derive
    from: sales.csv
    js: |
      (rows) => ({total: rows.reduce((sum, row) => sum + row.sales, 0)})
    ```

``from`` names one or more sources, comma-separated: an attachment (its path or
the name it was sent under) or a URL fetched at build time; ``sheet`` picks a
spreadsheet's sheet (default: the first); ``js`` is a function of the sources,
computed in the sandbox (``utils.model.derive_script``). Without ``js``, a
conversion, value by value (cells spelled by ``utils.intake.documents.cell_text``):

    spreadsheet (xlsx, xlsm, xlsb, xls, ods) -> .csv, .tsv (every row of the sheet), .json (one object per data row,
                                                keyed by the header; numbers and booleans typed, empty cells null)
    .csv / .tsv  -> .json (one object per data row; a column whose cells are all plain decimal numbers (no leading
                    zeros) holds numbers, empty cells there null; every other column keeps its text),
                    .csv / .tsv (the other delimiter)
    .json array of objects -> .csv / .tsv (header: every key in order of appearance)
    any file     -> a byte-for-byte copy when the extensions match

A request that cannot be met (an unknown key or source, an unsupported pair, an
unreadable file, a target that is an attachment, a function that fails, ``js``
without a sandbox, a table wider than MAX_COLUMNS or larger than MAX_CELLS rows
x columns, JSON past the document limits of ``utils.intake.json_limits``) is a
problem for the re-ask, never a guess or a silent copy.
Never reads the filesystem, never fetches, never calls a model; scripts run only
through the ``ScriptRunner`` it is given.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from utils.errors import InvalidRequest
from utils.intake.documents import DocumentUnreadable, Table, cell_text, document_kind, read_tables
from utils.intake.fetch import FetchedDocument
from utils.intake.json_limits import DOCUMENT_LIMITS, check_json_shape
from utils.model.derive_script import (
    DELIMITERS,
    ScriptBudget,
    ScriptFailed,
    ScriptRunner,
    decoded_text,
    pick_sheet,
    run_derive_script,
    sheet_records,
    source_input,
    table_records,
)
from utils.records import Attachments

KEYS = ("from", "sheet", "js")
MAX_COLUMNS = 2_000  # a real export has tens or hundreds; JSON records that each bring a new key made thousands
MAX_CELLS = 5_000_000  # rows x columns of one conversion (about 100 MB of Python strings at most)
_ALIASES = {"source": "from", "sources": "from"}
_KEY_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*[:=]\s*(?P<value>.*)$")
_BARE_KEY = re.compile(r"^(?P<key>from|sources?|sheet)\s+(?P<value>[^:=\s].*)$", re.IGNORECASE)  # `from data.xlsx`
_BLOCK_SCALAR = re.compile(r"^[|>][+-]?\d*$")  # YAML's `js: |` and its kin: the value is on the next lines
NO_SCRIPTS = ("computed derive blocks (`js:`) are not available on this service: it runs without the browser "
              "they need (Chromium and the `browser` extra, `uv run --extra browser main.py`); write this file "
              "without `js:`, or as a whole file")


class DeriveError(Exception):
    """A derive request that cannot be met exactly; the message says why and what would work."""


@dataclass(frozen=True)
class DeriveRequest:
    """A file the model asked the service to make: its path, the sources named, a sheet and a function."""

    target: str
    source: str  # what `from:` says: one name, or several separated by commas
    sheet: str = ""
    js: str = ""


@dataclass(frozen=True)
class Source:
    """Bytes a derived file may be made from, with the name whose extension says their format (``cut``: a fetch
    that stopped at the size cap, named so a block asking for it is told why it cannot have it)."""

    name: str
    data: bytes
    cut: bool = False


@dataclass
class Scripts:
    """What computes ``js:`` functions for one build: the sandbox (None: not available) and the time left."""

    runner: ScriptRunner | None = None
    budget: ScriptBudget | None = None

    def run(self, request: DeriveRequest, sources: list[dict[str, Any]]) -> bytes:
        """The file the request's function makes of ``sources`` (``source_input`` of each); DeriveError naming
        the problem."""
        if self.runner is None:
            raise DeriveError(f"'{request.target}': {NO_SCRIPTS}")
        if self.budget is None:
            self.budget = ScriptBudget()
        try:
            return run_derive_script(request.js, sources, self.runner, self.budget)
        except ScriptFailed as exc:
            raise DeriveError(f"'{request.target}': {exc}") from None


def parse_derive_block(target: str, body: str) -> DeriveRequest:
    """The request a ``derive`` block holds; DeriveError for a line or key it does not know, or no source.

    ``js:`` takes the rest of its line and every following line up to the next
    known key at the start of a line (``js: |`` and an indented function work).
    """
    options: dict[str, str] = {}
    script: list[str] | None = None  # the lines of `js:` while they go on
    listed: list[str] = []  # the items of a YAML list under a bare `from:`
    listing = False
    for number, line in enumerate(body.splitlines(), 1):
        stripped = line.strip()
        match = _KEY_LINE.match(stripped) or _BARE_KEY.match(stripped)
        key = _ALIASES.get(match["key"].lower(), match["key"].lower()) if match else ""
        if script is not None:
            if not (match and key in KEYS and key != "js" and line[:1].strip()):
                script.append(line)
                continue
            options["js"], script = "\n".join(script), None
        if listing and stripped.startswith("- "):
            listed.append(stripped[2:].strip().strip("`\"'"))
            continue
        if not stripped or stripped.startswith(("#", "//")):
            continue
        if match is None:
            raise DeriveError(f"the derive block for '{target}': line {number} ({stripped[:80]!r}) is not "
                              f"`key: value`; the keys are {_key_list()}")
        if key not in KEYS:
            raise DeriveError(f"the derive block for '{target}' has the key `{match['key']}`, which the service "
                              f"does not know; the keys are {_key_list()}")
        value = match["value"].strip()
        listing = key == "from" and not value
        if key == "js":
            script = [] if _BLOCK_SCALAR.match(value) else [value]
        elif not listing:
            options[key] = value.strip("`\"'")
    if script is not None:
        options["js"] = "\n".join(script)
    if listed and not options.get("from"):
        options["from"] = ", ".join(listed)
    if not options.get("from"):
        raise DeriveError(f"the derive block for '{target}' names no source: write `from: <attachment name>`")
    js = textwrap.dedent(options.get("js", "")).strip()
    if "js" in options and not js:
        raise DeriveError(f"the derive block for '{target}' has an empty `js:`: give a function of the sources, "
                          "like (rows) => {...}")
    return DeriveRequest(target, options["from"], options.get("sheet", ""), js)


def _key_list() -> str:
    """The keys a derive block understands, for messages."""
    return ", ".join(f"`{key}`" for key in KEYS)


def derive_sources(attachments: Attachments, fetched: Sequence[FetchedDocument] = ()) -> dict[str, Source]:
    """Every source a derive block may name: attachments by path and by sent name, fetched URLs."""
    sources: dict[str, Source] = {}
    for document in fetched:
        if document.ok:
            sources[document.url] = Source(_fetched_name(document), document.data, cut=document.truncated)
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


def derive_files(blocks: Sequence[tuple[str, str]], sources: Mapping[str, Source], protected: Sequence[str] = (),
                 scripts: Scripts | None = None) -> tuple[dict[str, bytes], list[str]]:
    """The files asked for by (target, block body) pairs, and one problem per request that cannot be met
    (``scripts``: what computes `js:` functions; without it they are refused)."""
    files: dict[str, bytes] = {}
    problems: list[str] = []
    for target, body in blocks:
        try:
            if target in protected:
                raise DeriveError(f"'{target}' is an attachment and is published as given: derive another name")
            files[target] = derive(parse_derive_block(target, body), sources, scripts)
        except DeriveError as exc:
            problems.append(str(exc))
    return files, problems


def derive(request: DeriveRequest, sources: Mapping[str, Source], scripts: Scripts | None = None) -> bytes:
    """The bytes of one derived file: computed by its function, or converted exactly from its source."""
    named = _named_sources(request, sources)
    if request.js:
        try:
            inputs = [source_input(source.name, source.data, request.sheet) for source in named]
        except ScriptFailed as exc:
            raise DeriveError(f"'{request.target}': {exc}") from None
        return (scripts or Scripts()).run(request, inputs)
    if len(named) > 1:
        raise DeriveError(f"'{request.target}' names {len(named)} sources; combining sources needs a `js:` "
                          "function of them")
    return _converted(request, named[0])


def _named_sources(request: DeriveRequest, sources: Mapping[str, Source]) -> list[Source]:
    """The sources `from:` names, in order: the whole text first (a URL may hold a comma), else each item."""
    whole = _lookup(request.source, sources)
    names = [request.source] if whole is not None else [
        name.strip().strip("`\"'") for name in request.source.split(",") if name.strip()]
    found = []
    for name in names:
        source = _lookup(name, sources)
        if source is None:
            known = ", ".join(f"'{known}'" for known, source in sources.items() if not source.cut) or "none"
            raise DeriveError(f"'{request.target}' is derived from '{name}', which is not an attachment or a "
                              f"fetched URL (known sources: {known})")
        if source.cut:
            raise DeriveError(f"'{request.target}' is derived from '{name}', whose fetch stopped at the size cap "
                              f"({len(source.data):,} bytes read), so the service does not have it whole; write "
                              "the file from the data shown to you instead")
        found.append(source)
    return found


def _lookup(name: str, sources: Mapping[str, Source]) -> Source | None:
    """The source under ``name`` (a leading ./ ignored)."""
    return sources.get(name) or sources.get(name.removeprefix("./"))


def _converted(request: DeriveRequest, source: Source) -> bytes:
    """A conversion or copy of one source, by the two names' extensions."""
    source_ext = posixpath.splitext(source.name)[1].lower()
    target_ext = posixpath.splitext(request.target)[1].lower()
    try:
        if document_kind(source.name, "") == "spreadsheet":
            return _from_sheet(pick_sheet(read_tables(source.data), request.sheet, request.source), target_ext,
                               request)
        if source_ext == target_ext:
            return source.data
        if source_ext in DELIMITERS:
            return _from_delimited(source.data, DELIMITERS[source_ext], target_ext, request)
        if source_ext == ".json":
            return _from_json(source.data, target_ext, request)
    except DocumentUnreadable as exc:
        raise DeriveError(f"'{request.target}': the source '{request.source}' could not be read: {exc}") from None
    except ScriptFailed as exc:
        raise DeriveError(f"'{request.target}': {exc}") from None
    raise _unsupported(request, source_ext, target_ext)


def _unsupported(request: DeriveRequest, source_ext: str, target_ext: str) -> DeriveError:
    """The error for a pair of formats the service does not convert."""
    return DeriveError(f"'{request.target}' cannot be derived from '{request.source}': {source_ext or 'no extension'} "
                       f"to {target_ext or 'no extension'} is not a supported conversion (supported: spreadsheet to "
                       ".csv/.tsv/.json, CSV/TSV to .json/.csv/.tsv, JSON array of objects to .csv/.tsv, or a copy "
                       "with the same extension); compute it with a `js:` function of the source instead")


def _from_sheet(table: Table, target_ext: str, request: DeriveRequest) -> bytes:
    """A sheet as CSV/TSV (every row) or JSON records."""
    _check_size(len(table.rows), len(table.rows[0]) if table.rows else 0, request)
    if target_ext in DELIMITERS:
        return _delimited([[cell_text(cell) for cell in row] for row in table.rows], DELIMITERS[target_ext])
    if target_ext == ".json":
        return _json_bytes(sheet_records(table))
    raise _unsupported(request, ".xlsx", target_ext)


def _from_delimited(data: bytes, delimiter: str, target_ext: str, request: DeriveRequest) -> bytes:
    """CSV/TSV as JSON records or re-delimited."""
    text = decoded_text(data, request.source)
    if target_ext in DELIMITERS:
        try:
            rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        except csv.Error as exc:
            raise DeriveError(f"'{request.target}': the source '{request.source}' cannot be read ({exc})") from None
        return _delimited(rows, DELIMITERS[target_ext])
    if target_ext == ".json":
        header = next(csv.reader(io.StringIO(text[:1_000_000]), delimiter=delimiter), [])
        _check_size(text.count("\n"), len(header), request)  # before the per-column scan of every row
        return _json_bytes(table_records(text, delimiter))
    raise _unsupported(request, ".csv", target_ext)


def _from_json(data: bytes, target_ext: str, request: DeriveRequest) -> bytes:
    """A JSON array of objects as CSV/TSV."""
    try:
        check_json_shape(data, DOCUMENT_LIMITS, f"the source '{request.source}'")
        records = json.loads(decoded_text(data, request.source))
    except InvalidRequest as exc:
        raise DeriveError(f"'{request.target}': {exc.message}; derive a smaller part with js: instead") from None
    except ValueError as exc:
        raise DeriveError(f"'{request.target}': the source '{request.source}' is not valid JSON ({exc})") from None
    if target_ext not in DELIMITERS:
        raise _unsupported(request, ".json", target_ext)
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise DeriveError(f"'{request.target}': the source '{request.source}' is not a JSON array of objects")
    columns = list(dict.fromkeys(key for record in records for key in record))
    _check_size(len(records), len(columns), request)
    rows = [columns] + [[_json_text(record.get(key)) for key in columns] for record in records]
    return _delimited(rows, DELIMITERS[target_ext])


def _check_size(rows: int, columns: int, request: DeriveRequest) -> None:
    """DeriveError when a conversion would be wider than MAX_COLUMNS or hold more than MAX_CELLS cells."""
    if columns > MAX_COLUMNS or rows * columns > MAX_CELLS:
        raise DeriveError(f"'{request.target}': the source '{request.source}' makes a table of {rows:,} rows x "
                          f"{columns:,} columns, more than the service converts ({MAX_COLUMNS:,} columns, "
                          f"{MAX_CELLS:,} cells); derive a smaller part with js: or write the file yourself")


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
