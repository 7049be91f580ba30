"""Export readers: a loan system's file → records of text values, each with its row number.

One small protocol: ``read(path, source) -> ReadResult``. A reader never raises on bad
content: a file it cannot read at all gives ``file_error`` (the whole file is quarantined with
that reason); a record it cannot read gives a :class:`RecordError` naming the row, and the
other records go on. Values are text, as the loan system wrote them; the mapping profile
interprets them (agent/mapping.py).

Formats (``source.format`` in a mapping profile):

- ``csv``: UTF-8, UTF-8 with BOM, GB18030/GBK (``encoding``, or a list tried in order);
  quoted fields may hold the delimiter and newlines. Row numbers count the header as row 1.
- ``xlsx``: openpyxl, read-only, cached values; dates become ISO text, numbers exact text.
- ``json``: an array of objects, or an object holding one at ``records`` (a dotted path).
- ``jsonl``: one object per line.
- ``xml``: the elements at ``records`` (an ElementTree path, e.g. ``./贷款``); child elements
  and attributes become keys (``借款人/姓名``, ``@编号``), repeated ones get ``[i]``.
- ``fixed``: fixed-width records measured in bytes of ``encoding`` (GB18030 by default), one per
  line; ``fields`` give each column's name, start and width in bytes.

Nested JSON is flattened to dotted keys (``borrowers.0.name``); a mapping addresses the list
items of a repeated key with ``[]`` (``borrowers[].name``).
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["READERS", "ReadResult", "RecordError", "SourceRecord", "read_export"]

MAX_FIELD_CHARS = 10_000


@dataclass
class SourceRecord:
    """One record of an export: its row (line, sheet row or index) and its values as text."""

    row: int
    values: dict[str, str]


@dataclass
class RecordError:
    row: int
    message: str
    raw: str = ""


@dataclass
class ReadResult:
    records: list[SourceRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    file_error: str | None = None
    encoding: str | None = None

    def add(self, row: int, values: dict[str, str]) -> None:
        """Keep a record, or report it when a field is longer than any real one can be."""
        for k, v in values.items():
            if len(v) > MAX_FIELD_CHARS:
                self.errors.append(
                    RecordError(row, f"field {k!r} is {len(v):,} characters long (at most {MAX_FIELD_CHARS:,})")
                )
                return
        self.records.append(SourceRecord(row, values))


def _decode(data: bytes, encodings: list[str]) -> tuple[str, str]:
    """Decode with the first encoding that fits; the error names the byte and line it failed at."""
    problems = []
    for enc in encodings:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            problems.append(f"{enc}: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})")
            continue
        if enc.replace("-", "").lower() in ("utf8", "utf8sig") and text.startswith("\ufeff"):
            text = text[1:]
        return text, enc
    raise ValueError("cannot decode as " + "; ".join(problems))


def _encodings(source: dict[str, Any], default: list[str]) -> list[str]:
    enc = source.get("encoding", default)
    return [enc] if isinstance(enc, str) else list(enc)


def _clean_row(values: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in values.items():
        if k is None:
            continue
        text = "" if v is None else _text(v)
        out[str(k).strip()] = text
    return out


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # the shortest text that round-trips; an exact Decimal of a float would show binary noise
        d = Decimal(repr(value))
        return format(d.normalize(), "f") if d == d.to_integral_value() else repr(value)
    return str(value)


def read_csv(data: bytes, source: dict[str, Any]) -> ReadResult:
    try:
        text, enc = _decode(data, _encodings(source, ["utf-8-sig", "gb18030"]))
    except ValueError as exc:
        return ReadResult(file_error=str(exc))
    result = ReadResult(encoding=enc)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=source.get("delimiter", ","), strict=True)
    header_row = int(source.get("header_row", 1))
    try:
        for _ in range(header_row - 1):
            next(reader)
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return ReadResult(file_error="the file is empty: no header row", encoding=enc)
    except csv.Error as exc:
        return ReadResult(file_error=f"header row: {exc}", encoding=enc)
    if not any(header):
        return ReadResult(file_error="the header row is empty", encoding=enc)
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        return ReadResult(file_error=f"the header repeats column(s): {', '.join(dupes)}", encoding=enc)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(RecordError(start, f"unreadable CSV record: {exc}"))
            break  # the parser cannot resynchronise after a broken quote
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            result.errors.append(
                RecordError(start, f"has {len(cells)} fields, the header has {len(header)}", ",".join(cells)[:200])
            )
            continue
        values = _clean_row(dict(zip(header, cells, strict=True)))
        result.add(start, values)
    return result


def read_xlsx(data: bytes, source: dict[str, Any]) -> ReadResult:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a damaged workbook
        return ReadResult(file_error=f"not a readable XLSX workbook: {type(exc).__name__}: {exc}")
    try:
        sheet_name = source.get("sheet")
        if sheet_name and sheet_name not in wb.sheetnames:
            return ReadResult(file_error=f"no sheet {sheet_name!r}; the workbook has {', '.join(wb.sheetnames)}")
        ws = wb[sheet_name] if sheet_name else wb.worksheets[0]
        header_row = int(source.get("header_row", 1))
        rows = ws.iter_rows(min_row=header_row, values_only=True)
        try:
            header = [(_text(h).strip() if h is not None else "") for h in next(rows)]
        except StopIteration:
            return ReadResult(file_error="the sheet is empty: no header row")
        result = ReadResult(encoding="xlsx")
        for n, cells in enumerate(rows, header_row + 1):
            if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                continue
            values = _clean_row({h: c for h, c in zip(header, cells, strict=False) if h})
            result.add(n, values)
        return result
    finally:
        wb.close()


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}.{i}", out)
    else:
        out[prefix] = "" if value is None else _text(value)


def _json_records(items: list[Any], result: ReadResult, first_row: int = 1) -> None:
    for i, item in enumerate(items, first_row):
        if not isinstance(item, dict):
            result.errors.append(RecordError(i, f"expected an object, got {type(item).__name__}"))
            continue
        values: dict[str, str] = {}
        _flatten(item, "", values)
        result.add(i, values)


def read_json(data: bytes, source: dict[str, Any]) -> ReadResult:
    try:
        text, enc = _decode(data, _encodings(source, ["utf-8-sig"]))
        doc = json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        return ReadResult(file_error=f"not valid JSON: {exc}")
    path = source.get("records")
    if path:
        for part in str(path).split("."):
            if not isinstance(doc, dict) or part not in doc:
                return ReadResult(file_error=f"no array at {path!r}")
            doc = doc[part]
    if not isinstance(doc, list):
        return ReadResult(file_error=f"expected an array of records{' at ' + path if path else ''}")
    result = ReadResult(encoding=enc)
    _json_records(doc, result)
    return result


def read_jsonl(data: bytes, source: dict[str, Any]) -> ReadResult:
    try:
        text, enc = _decode(data, _encodings(source, ["utf-8-sig"]))
    except ValueError as exc:
        return ReadResult(file_error=str(exc))
    result = ReadResult(encoding=enc)
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, parse_float=Decimal)
        except (ValueError, RecursionError) as exc:
            result.errors.append(RecordError(n, f"not valid JSON: {exc}", line[:200]))
            continue
        _json_records([item], result, n)
    return result


def _xml_values(elem: ET.Element, prefix: str, out: dict[str, str]) -> None:
    for k, v in elem.attrib.items():
        out[f"{prefix}@{k}"] = v.strip()
    children = list(elem)
    counts = Counter(c.tag for c in children)
    seen: Counter[str] = Counter()
    for child in children:
        key = prefix + str(child.tag)
        if counts[child.tag] > 1:
            key += f"[{seen[child.tag]}]"
            seen[child.tag] += 1
        if len(child) == 0:
            out[key] = (child.text or "").strip()
            for k, v in child.attrib.items():
                out[f"{key}/@{k}"] = v.strip()
        else:
            _xml_values(child, key + "/", out)


def read_xml(data: bytes, source: dict[str, Any]) -> ReadResult:
    # ElementTree does not fetch external entities or DTDs; entity expansion bombs are refused below
    if b"<!ENTITY" in data or b"<!DOCTYPE" in data:
        return ReadResult(file_error="XML with a DOCTYPE or entity declarations is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return ReadResult(file_error=f"not well-formed XML: {exc}")
    path = source.get("records") or "./*"
    result = ReadResult(encoding="xml")
    for n, elem in enumerate(root.findall(path), 1):
        values: dict[str, str] = {}
        _xml_values(elem, "", values)
        result.add(n, values)
    if not result.records and not result.errors:
        result.file_error = f"no records at {path!r}"
    return result


def read_fixed(data: bytes, source: dict[str, Any]) -> ReadResult:
    encoding = _encodings(source, ["gb18030"])[0]
    fields = source.get("fields") or []
    if not fields:
        return ReadResult(file_error="the profile names no fixed-width fields")
    record_bytes = max(int(f["start"]) + int(f["width"]) for f in fields)
    result = ReadResult(encoding=encoding)
    skip = int(source.get("skip_lines", 0))
    for n, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if n <= skip or not line.strip():
            continue
        if len(line) < record_bytes:
            result.errors.append(
                RecordError(
                    n,
                    f"is {len(line)} bytes long; a record is {record_bytes} bytes",
                    line[:80].decode(encoding, "replace"),
                )
            )
            continue
        values: dict[str, str] = {}
        problem = None
        for f in fields:
            chunk = line[int(f["start"]) : int(f["start"]) + int(f["width"])]
            try:
                values[f["name"]] = chunk.decode(encoding).strip().strip("\u3000")
            except UnicodeDecodeError:
                problem = (
                    f"field {f['name']!r} (bytes {f['start']}–{int(f['start']) + int(f['width'])}) "
                    f"is not valid {encoding}: a character is cut by the field boundary, or the file has "
                    "another encoding"
                )
                break
        if problem:
            result.errors.append(RecordError(n, problem))
            continue
        result.records.append(SourceRecord(n, values))
    return result


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
        data = path.read_bytes()
    return reader(data, source)
