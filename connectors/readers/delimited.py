"""The ``csv`` reader: delimited text, quoted fields, rows numbered as a spreadsheet shows them."""

from __future__ import annotations

import csv
import io
from typing import Any

from connectors.readers.records import ReadResult, RecordError, _line, _too_big, row_label
from connectors.readers.text import (
    _FLAGGED,
    _clean_row,
    _decode,
    _encodings,
    _flag,
)


def read_csv(data: bytes, source: dict[str, Any]) -> ReadResult:
    if (big := _too_big(data)) is not None:
        return big
    try:
        text, enc = _decode(data, _encodings(source, ["utf-8", "gb18030"]))
    except ValueError as exc:
        return ReadResult(file_error=str(exc))
    result = ReadResult(encoding=enc)
    flag = _FLAGGED.search(text) is not None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=source.get("delimiter", ","), strict=True)
    header_row = int(source.get("header_row", 1))
    try:
        for _ in range(header_row - 1):
            next(reader)
        header = [h.strip().removeprefix("\ufeff") for h in next(reader)]
    except StopIteration:
        return ReadResult(file_error="文件是空的：没有表头行 (the file is empty: no header row)", encoding=enc)
    except csv.Error as exc:
        return ReadResult(file_error=f"表头行无法读取 (header row): {exc}", encoding=enc)
    if not any(header):
        return ReadResult(file_error="表头行是空的 (the header row is empty)", encoding=enc)
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        return ReadResult(file_error=f"the header repeats column(s): {', '.join(dupes)}", encoding=enc)
    row = header_row
    while True:
        start = reader.line_num + 1
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            left = text.count("\n", 0) + 1 - start
            return ReadResult(
                file_error=(
                    f"{row_label(row, start)}起无法读取（{exc}：引号未闭合？），其后约 {max(left, 1)} 行未能读取："
                    "整个文件隔离，修正后重新导出 (unreadable CSV record; the rest of the file would be lost)"
                ),
                encoding=enc,
            )
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            result.errors.append(
                RecordError(
                    row,
                    f"有 {len(cells)} 个字段，表头有 {len(header)} 个 "
                    f"(has {len(cells)} fields, the header has {len(header)})",
                    ",".join(cells)[:200],
                    _line(row, start),
                )
            )
            continue
        record = result.add(row, _clean_row(dict(zip(header, cells, strict=True))), start)
        if flag and record is not None:
            _flag(record)
    return result
