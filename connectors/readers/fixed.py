"""The ``fixed`` reader: fixed-width records measured in bytes of their encoding."""

from __future__ import annotations

from typing import Any

from connectors.readers.records import ReadResult, RecordError, SourceRecord, _too_big
from connectors.readers.text import (
    _FLAGGED,
    _LABEL,
    _advice,
    _encodings,
    _family,
    _flag,
    detect_bom,
    unwrap_text,
)


def read_fixed(data: bytes, source: dict[str, Any]) -> ReadResult:
    """Fixed-width records; a field's padding is spaces, full-width spaces or NUL bytes (C buffers)."""
    if (big := _too_big(data)) is not None:
        return big
    encoding = _encodings(source, ["gb18030"])[0]
    fields = source.get("fields") or []
    if not fields:
        return ReadResult(file_error="the profile names no fixed-width fields")
    bom = detect_bom(data)
    if bom is not None:
        if _family(bom[0]) != _family(encoding):
            family = _family(bom[0])
            return ReadResult(
                file_error=f"文件以 {_LABEL.get(family, family)} 的字节顺序标记 (BOM) 开头。"
                + _advice(_LABEL.get(family, family), [encoding])
            )
        data = data[bom[1] :]
    record_bytes = max(int(f["start"]) + int(f["width"]) for f in fields)
    result = ReadResult(encoding=encoding + (" (BOM)" if bom else ""))
    skip = int(source.get("skip_lines", 0))
    flag = False
    for n, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if n <= skip or not line.strip(b" \x00\t"):
            continue
        if len(line) < record_bytes:
            result.errors.append(
                RecordError(
                    n,
                    f"长 {len(line)} 字节，一条记录应为 {record_bytes} 字节 "
                    f"(is {len(line)} bytes long; a record is {record_bytes} bytes)",
                    line[:80].decode(encoding, "replace"),
                )
            )
            continue
        values: dict[str, str] = {}
        problem = None
        for f in fields:
            chunk = line[int(f["start"]) : int(f["start"]) + int(f["width"])].strip(b" \x00")
            try:
                values[f["name"]] = unwrap_text(chunk.decode(encoding).strip().strip("\u3000"))
            except UnicodeDecodeError:
                problem = (
                    f"字段 {f['name']!r}（第 {f['start']}–{int(f['start']) + int(f['width'])} 字节）"
                    f"不是有效的 {encoding}："
                    "字段边界切断了一个汉字，或文件是另一种编码 "
                    "(a character is cut by the field boundary, or the file has another encoding)"
                )
                break
        if problem:
            result.errors.append(RecordError(n, problem))
            continue
        record = SourceRecord(n, values)
        result.records.append(record)
        if flag or _FLAGGED.search("".join(values.values())):
            flag = True
            _flag(record)
    return result
