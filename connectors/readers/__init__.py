"""Export readers: a loan system's file → records of text values, each with its row number.

One small protocol: ``read(path, source) -> ReadResult``. A reader never raises on bad
content: a file it cannot read at all gives ``file_error`` (the whole file is quarantined with
that reason); a record it cannot read gives a :class:`RecordError` naming the row, and the
other records go on. Values are text, as the loan system wrote them; the mapping profile
interprets them (agent/mapping.py).

Formats (``source.format`` in a mapping profile):

- ``csv``: UTF-8, GB18030/GBK, UTF-16 … (``encoding``, or a list tried in order); quoted fields
  may hold the delimiter and newlines. Row numbers are the ones a spreadsheet shows (the header
  is row 1, a quoted line break does not start a row); ``line`` is the physical line.
- ``xlsx``: openpyxl, read-only, cached values, every row whatever size the sheet declares;
  dates become ISO text, numbers exact text (and :attr:`SourceRecord.numbers` says which cells
  were numbers, with the date a serial number stands for).
- ``json``: an array of objects, or an object holding one at ``records`` (a dotted path).
- ``jsonl``: one object per line.
- ``xml``: the elements at ``records`` (an ElementTree path, e.g. ``./贷款``); child elements
  and attributes become keys (``借款人/姓名``, ``@编号``), repeated ones get ``[i]``.
- ``fixed``: fixed-width records measured in bytes of ``encoding`` (GB18030 by default), one per
  line; ``fields`` give each column's name, start and width in bytes.

Encodings (text formats): a byte-order mark of any Unicode encoding or GB 18030 is recognised
and removed; a mark that contradicts the declared encoding, or bytes the declared encodings
cannot decode, refuse the file with the encoding it evidently is in. The encoding used is in
:attr:`ReadResult.encoding`. Characters GB 18030-2005 and -2022 map differently, and private-use
characters, are reported per cell (:attr:`SourceRecord.problems`): they are not one character on
every system. ``="…"`` and a leading ``'`` (the usual "keep as text" spellings) are unwrapped.

Memory is bounded for every reader: an export above :data:`MAX_EXPORT_BYTES`, a workbook whose
parts unpack beyond :data:`MAX_UNPACKED_BYTES` (a decompression bomb) and XML with a DOCTYPE or
entity declarations (an entity bomb, in any encoding) are refused before they are expanded.

Nested JSON is flattened to dotted keys (``borrowers.0.name``); a mapping addresses the list
items of a repeated key with ``[]`` (``borrowers[].name``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.readers.delimited import read_csv
from connectors.readers.fixed import read_fixed
from connectors.readers.limits import MAX_EXPORT_BYTES, MAX_UNPACKED_BYTES
from connectors.readers.records import ReadResult, RecordError, SourceRecord, row_label, rows_label
from connectors.readers.structured import read_json, read_jsonl, read_xml
from connectors.readers.text import detect_bom
from connectors.readers.xlsx import read_xlsx

__all__ = [
    "MAX_EXPORT_BYTES",
    "MAX_UNPACKED_BYTES",
    "READERS",
    "ReadResult",
    "RecordError",
    "SourceRecord",
    "detect_bom",
    "read_export",
    "row_label",
    "rows_label",
]


READERS: dict[str, Callable[[bytes, dict[str, Any]], ReadResult]] = {
    "csv": read_csv,
    "xlsx": read_xlsx,
    "json": read_json,
    "jsonl": read_jsonl,
    "xml": read_xml,
    "fixed": read_fixed,
}


def read_export(path: Path, source: dict[str, Any], data: bytes | None = None) -> ReadResult:
    """Read ``path`` with the reader its profile's ``source.format`` names."""
    fmt = source.get("format", "csv")
    reader = READERS.get(fmt)
    if reader is None:
        return ReadResult(file_error=f"unknown export format {fmt!r}; known: {', '.join(READERS)}")
    if data is None:
        with path.open("rb") as fh:
            data = fh.read(MAX_EXPORT_BYTES + 1)
    return reader(data, source)
