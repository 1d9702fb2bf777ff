"""The child process of ``utils.intake.isolation``: read one untrusted document from stdin, answer JSON on stdout.

    python -m utils.intake.reader_child <spreadsheet|pdf|docx> <memory bytes>  < document bytes

Sets its own address-space limit first, then runs the reader of
``utils.intake.documents`` in this process and writes ``["ok", value]`` or
``["error", reason]``: for a spreadsheet, a list of ``[sheet name, rows]`` with
each cell tagged when JSON has no type for it (``documents.encode_cell``);
for a PDF or DOCX, the text. A crash or the memory limit ends this process
only. Never reads files, never touches the network, never logs the document.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _limit_memory(limit: int) -> None:
    """Cap this process's address space (where the platform allows it)."""
    try:
        import resource  # why: POSIX only; Windows has no address-space limit to set

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # Windows, or a hard limit already lower: the parent's timeout still holds


def _answer(kind: str, data: bytes) -> list[Any]:
    """["ok", value] or ["error", reason] for one document."""
    from utils.intake import documents  # why: after the memory limit is set, so the parsers load under it

    try:
        if kind == "spreadsheet":
            tables = documents.tables_in_this_process(data)
            return ["ok", [[table.name, [[documents.encode_cell(cell) for cell in row] for row in table.rows]]
                           for table in tables]]
        reader = documents.pdf_text_in_this_process if kind == "pdf" else documents.docx_text_in_this_process
        return ["ok", reader(data)]
    except MemoryError:
        return ["error", "reading it needs more than the reader's memory limit"]
    except Exception as exc:  # DocumentUnreadable, or any reader failure: reported, the parent decides
        return ["error", str(exc)[:400] or type(exc).__name__]


def main() -> None:
    """Read the document from stdin and write the answer to stdout."""
    kind, limit = sys.argv[1], int(sys.argv[2])
    _limit_memory(limit)
    data = sys.stdin.buffer.read()
    try:
        text = json.dumps(_answer(kind, data), ensure_ascii=False)
    except MemoryError:
        text = json.dumps(["error", "the answer is larger than the reader's memory limit"])
    sys.stdout.buffer.write(text.encode("utf-8", "surrogatepass"))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
