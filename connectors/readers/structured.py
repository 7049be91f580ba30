"""The ``json``, ``jsonl`` and ``xml`` readers: nested values flattened to dotted/slashed keys."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from decimal import Decimal
from typing import Any

from connectors.readers.limits import (
    _check_xml_stream,
)
from connectors.readers.records import ReadResult, RecordError, _too_big
from connectors.readers.text import (
    _FLAGGED,
    _decode,
    _encodings,
    _family,
    _flag,
    _text,
    detect_bom,
)


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
    if (big := _too_big(data)) is not None:
        return big
    try:
        text, enc = _decode(data, _encodings(source, ["utf-8"]))
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
    if _FLAGGED.search(text):
        for record in result.records:
            _flag(record)
    return result


def read_jsonl(data: bytes, source: dict[str, Any]) -> ReadResult:
    if (big := _too_big(data)) is not None:
        return big
    try:
        text, enc = _decode(data, _encodings(source, ["utf-8"]))
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
    if _FLAGGED.search(text):
        for record in result.records:
            _flag(record)
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
    if (big := _too_big(data)) is not None:
        return big
    encoding = _xml_encoding(data)
    if _family(encoding.split(" ")[0]) not in ("utf-8", "utf-16", "utf-32", "ascii", "latin_1", "iso8859_1"):
        # expat reads UTF-8/16 and Latin-1 only: a GB18030 (or other) document is decoded here and handed on as UTF-8
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            return ReadResult(
                file_error=f"XML 声明的编码 {encoding} 无法解码该文件 (cannot decode as {encoding}): {exc}"
            )
        data = re.sub(r"^(<\?xml[^>]*encoding=)[\"'][^\"']*[\"']", r'\1"utf-8"', text, count=1).encode("utf-8")
    # a DOCTYPE or entity declaration is refused by expat itself, whatever the encoding (UTF-16 too)
    problem = _check_xml_stream(io.BytesIO(data), "XML 文件")
    if problem:
        return ReadResult(file_error=problem)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return ReadResult(file_error=f"不是格式正确的 XML (not well-formed XML): {exc}")
    path = source.get("records") or "./*"
    result = ReadResult(encoding=encoding)
    for n, elem in enumerate(root.findall(path), 1):
        values: dict[str, str] = {}
        _xml_values(elem, "", values)
        record = result.add(n, values)
        if record is not None:
            _flag(record)
    if not result.records and not result.errors:
        result.file_error = f"在 {path!r} 处没有记录 (no records at {path!r})"
    return result


def _xml_encoding(data: bytes) -> str:
    bom = detect_bom(data)
    if bom:
        return f"{bom[0]} (BOM)"
    m = re.match(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9_.-]+)", data[:200])
    return m.group(1).decode("ascii").lower() if m else "utf-8"
