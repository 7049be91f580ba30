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

import codecs
import csv
import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.parsers import expat

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
]

MAX_FIELD_CHARS = 10_000
#: the largest export read at all (bytes): far beyond any branch's daily export, and within the memory budget
MAX_EXPORT_BYTES = 64 * 1024 * 1024
#: the most a workbook's parts may unpack to, all together (bytes); a decompression bomb is refused before
MAX_UNPACKED_BYTES = 96 * 1024 * 1024
#: a part that packs better than this is not a spreadsheet but a bomb (real sheets pack 5–20×)
MAX_PACK_RATIO = 200


def row_label(row: int | None, line: int | None = None) -> str:
    """The one way a record's place is written in every report, receipt and status line.

    ``第5行`` (the row a spreadsheet shows), ``第5行（文件第7行）`` when the physical line differs
    (a quoted line break, blank lines skipped), ``整个文件`` for the file as a whole.
    """
    if row is None:
        return "整个文件"
    if line is None or line == row:
        return f"第{row}行"
    return f"第{row}行（文件第{line}行）"


@dataclass
class SourceRecord:
    """One record of an export: its row as a spreadsheet shows it and its values as text.

    ``line`` is the physical line of the file where it starts, when that differs from ``row``.
    ``numbers``: the cells a workbook stored as numbers (column → the ISO date the number stands for
    as a date serial, or ``""``), so an identifier column can refuse them and a date column read them.
    ``problems``: (column, reason) for characters that are not the same on every system.
    """

    row: int
    values: dict[str, str]
    line: int | None = None
    numbers: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RecordError:
    row: int
    message: str
    raw: str = ""
    line: int | None = None


@dataclass
class ReadResult:
    records: list[SourceRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    file_error: str | None = None
    encoding: str | None = None

    def add(self, row: int, values: dict[str, str], line: int | None = None) -> SourceRecord | None:
        """Keep a record, or report it when a field is longer than any real one can be."""
        for k, v in values.items():
            if len(v) > MAX_FIELD_CHARS:
                self.errors.append(
                    RecordError(
                        row,
                        f"字段 {k!r} 长 {len(v):,} 个字符（最多 {MAX_FIELD_CHARS:,}）",
                        ",".join(x[:64] for x in values.values())[:200],
                        line=_line(row, line),
                    )
                )
                return None
        record = SourceRecord(row, values, _line(row, line))
        self.records.append(record)
        return record


def _line(row: int, line: int | None) -> int | None:
    return line


# --- encodings --------------------------------------------------------------------------------

#: every byte-order mark in use, longest first (UTF-32 LE starts like UTF-16 LE)
BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (b"\x84\x31\x95\x33", "gb18030"),
    (b"\xdd\x73\x66\x73", "utf-ebcdic"),
    (codecs.BOM_UTF8, "utf-8"),
    (b"\x2b\x2f\x76\x38", "utf-7"),
    (b"\x2b\x2f\x76\x39", "utf-7"),
    (b"\x2b\x2f\x76\x2b", "utf-7"),
    (b"\x2b\x2f\x76\x2f", "utf-7"),
    (b"\xf7\x64\x4c", "utf-1"),
    (b"\x0e\xfe\xff", "scsu"),
    (b"\xfb\xee\x28", "bocu-1"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
]
# the codecs a declared encoding belongs with (a GB 18030 mark on a file declared GBK is GB 18030: a superset)
_FAMILY = {
    "utf_8": "utf-8",
    "utf_8_sig": "utf-8",
    "utf_16": "utf-16",
    "utf_16_le": "utf-16",
    "utf_16_be": "utf-16",
    "utf_32": "utf-32",
    "utf_32_le": "utf-32",
    "utf_32_be": "utf-32",
    "gb18030": "gb18030",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "utf_7": "utf-7",
}
_LABEL = {
    "utf-8": "UTF-8",
    "utf-16": "UTF-16",
    "utf-32": "UTF-32",
    "gb18030": "GB18030",
    "utf-7": "UTF-7",
    "utf-1": "UTF-1",
    "utf-ebcdic": "UTF-EBCDIC",
    "scsu": "SCSU",
    "bocu-1": "BOCU-1",
}


def _family(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name.replace("-", "_")
    except LookupError:
        return encoding.lower()
    return _FAMILY.get(name, name)


def detect_bom(data: bytes) -> tuple[str, int] | None:
    """``(codec, length)`` of the byte-order mark ``data`` starts with, or ``None``."""
    for mark, codec in BOMS:
        if data.startswith(mark):
            return codec, len(mark)
    return None


def evident_encoding(data: bytes) -> str | None:
    """The encoding a file evidently is in, from its bytes (BOM, NUL pattern, strict decoding), or ``None``."""
    bom = detect_bom(data)
    if bom:
        family = _family(bom[0])
        return _LABEL.get(family, family.upper())
    sample = data[:4096]
    if b"\x00" in sample:  # text in UTF-8 or GB 18030 holds no NUL; UTF-16 of any ASCII punctuation does
        for enc, label in (("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")):
            try:
                text = sample[: len(sample) & ~1].decode(enc)
            except UnicodeDecodeError:
                continue
            shown = sum(1 for c in text if c.isprintable() or c in "\r\n\t")
            if shown >= 0.95 * len(text) and ("\n" in text or "," in text):
                return label
    for enc, label in (("utf-8", "UTF-8"), ("gb18030", "GB18030"), ("big5", "Big5")):
        try:
            data.decode(enc)
        except UnicodeDecodeError:
            continue
        return label
    return None


def _advice(evident: str | None, declared: list[str]) -> str:
    said = "、".join(declared)
    if evident is None:
        return f"文件不是声明的编码 {said}，也不像任何常见编码：请确认导出的编码"
    return (
        f"该文件显然是 {evident} 编码，而映射配置声明的是 {said}：请在配置 [source] encoding 中改为（或加入）"
        f'"{evident.lower()}"，或让贷款系统按 {said} 导出 (the file is evidently {evident}, not {said})'
    )


def _decode(data: bytes, encodings: list[str]) -> tuple[str, str]:
    """Decode with the declared encoding the file fits; a byte-order mark is honoured and removed.

    Returns ``(text, encoding used)``, e.g. ``("…", "gb18030 (BOM)")``.

    Raises:
        ValueError: the file's mark contradicts every declared encoding, or no declared encoding
            decodes it; the message names the encoding the file evidently is in.
    """
    bom = detect_bom(data)
    if bom is not None:
        codec, size = bom
        family = codec if codec in ("utf-ebcdic", "utf-1", "scsu", "bocu-1") else _family(codec)
        if not any(_family(e) == family for e in encodings):
            raise ValueError(
                f"文件以 {_LABEL.get(family, family)} 的字节顺序标记 (BOM) 开头。"
                + _advice(_LABEL.get(family, family), encodings)
            )
        try:
            text = data[size:].decode(codec)
        except LookupError:
            raise ValueError(
                f"文件是 {_LABEL.get(codec, codec)} 编码，RegBridge 不能读取：请按 UTF-8 或 GB18030 导出"
            ) from None
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"文件带 {_LABEL.get(family, family)} 的 BOM，但第 {exc.start + size} 字节起不是有效的 {codec} "
                f"(cannot decode as {codec}: byte offset {exc.start + size})"
            ) from None
        return text.removeprefix("\ufeff"), f"{codec} (BOM)"
    problems = []
    for enc in encodings:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            problems.append(f"{enc}: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})")
            continue
        except LookupError:
            problems.append(f"{enc}: unknown encoding")
            continue
        return text.removeprefix("\ufeff"), enc
    raise ValueError(_advice(evident_encoding(data), encodings) + "; cannot decode as " + "; ".join(problems))


def _encodings(source: dict[str, Any], default: list[str]) -> list[str]:
    enc = source.get("encoding") or default
    return [enc] if isinstance(enc, str) else list(enc)


# GB 18030-2005 and -2022 map these differently (and 2000/2005 differ on U+1E3F ↔ U+E7C7); a file
# written under one and read under the other shows another character
_GB18030_CHANGED = frozenset(
    [7743, *range(65040, 65050), 40884, 40885, *range(40890, 40896), 131207, 131209, 131276, 136663, 141711, 147966]
)
_FLAGGED = re.compile(
    "[\ue000-\uf8ff\U000f0000-\U0010ffff" + "".join(re.escape(chr(c)) for c in sorted(_GB18030_CHANGED)) + "]"
)


def _flag(record: SourceRecord) -> None:
    """Report the cells holding characters that are not one character on every system."""
    for column, value in record.values.items():
        for m in _FLAGGED.finditer(value):
            code = ord(m.group(0))
            if code in _GB18030_CHANGED:
                why = (
                    f"第{m.start() + 1}个字符 U+{code:04X} 在 GB 18030-2005 与 GB 18030-2022 中编码不同，"
                    "不同系统读出的可能不是同一个字：请核对后改用确定的写法"
                )
            else:
                why = (
                    f"第{m.start() + 1}个字符 U+{code:04X} 是私用区字符（造字），不是通用的字："
                    "请改用该字的标准 Unicode/GB 18030-2022 编码"
                )
            record.problems.append((column, why))
            break


_KEEP_AS_TEXT = re.compile(r'="(.*)"|\'([0-9A-Za-z][0-9A-Za-z()（）\-/]*)', re.DOTALL)


def unwrap_text(value: str) -> str:
    """The usual "keep as text" spellings of an identifier unwrapped: ``="0123"`` and ``'0123`` → ``0123``."""
    if value[:1] not in ("=", "'"):
        return value
    m = _KEEP_AS_TEXT.fullmatch(value.strip())
    if m is None:
        return value
    return m.group(1) if m.group(1) is not None else m.group(2)


def _clean_row(values: dict[Any, Any]) -> dict[str, str]:
    out = {}
    for k, v in values.items():
        if k is None:
            continue
        text = "" if v is None else _text(v)
        out[str(k).strip()] = unwrap_text(text)
    return out


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
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


def _too_big(data: bytes) -> ReadResult | None:
    if len(data) > MAX_EXPORT_BYTES:
        return ReadResult(
            file_error=f"文件有 {len(data):,} 字节，超过上限 {MAX_EXPORT_BYTES:,} 字节：请分批导出 (export too large)"
        )
    return None


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


# --- XML safety (workbook parts and XML exports) ------------------------------------------------


class _Refused(Exception):
    pass


def _refuse_dtd(*_: Any) -> None:
    raise _Refused


def _check_xml_stream(stream: Any, what: str) -> str | None:
    """Stream ``stream`` through expat refusing any DOCTYPE or entity declaration (in any encoding:
    expat reads the BOM and the XML declaration); the reason, or ``None`` when it is plain XML."""
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    try:
        while chunk := stream.read(1 << 16):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Refused:
        return (
            f"{what} 含 DOCTYPE 或实体声明（可能是实体炸弹），拒绝读取 "
            "(XML with a DOCTYPE or entity declarations is refused)"
        )
    except (expat.ExpatError, ValueError) as exc:
        return f"{what} 不是格式正确的 XML (not well-formed XML): {exc}"
    return None


def _workbook_guard(data: bytes) -> str | None:
    """Refuse a workbook whose parts would unpack beyond the memory budget, or hold a DTD, before openpyxl."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        return f"不是可读的 XLSX 工作簿 (not a readable XLSX workbook): {exc}"
    with archive:
        infos = archive.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_UNPACKED_BYTES:
            return (
                f"工作簿解压后有 {total:,} 字节，超过上限 {MAX_UNPACKED_BYTES:,}（可能是压缩炸弹），拒绝读取 "
                "(a decompression bomb, or an export to split)"
            )
        for info in infos:
            if info.file_size > 1 << 20 and info.file_size > MAX_PACK_RATIO * max(info.compress_size, 1):
                return (
                    f"工作簿部件 {info.filename} 压缩比 {info.file_size // max(info.compress_size, 1)}:1，"
                    "不是正常的表格（压缩炸弹），拒绝读取 (a decompression bomb)"
                )
        for info in infos:
            if info.filename.endswith((".xml", ".rels", ".vml")):
                try:
                    with archive.open(info) as part:
                        problem = _check_xml_stream(part, f"工作簿部件 {info.filename}")
                except (
                    zipfile.BadZipFile,
                    OSError,
                    EOFError,
                    NotImplementedError,
                ) as exc:  # zlib errors are OSError-like
                    return f"不是可读的 XLSX 工作簿 (not a readable XLSX workbook): {type(exc).__name__}: {exc}"
                except Exception as exc:  # zlib.error and friends from a damaged archive
                    return f"不是可读的 XLSX 工作簿 (not a readable XLSX workbook): {type(exc).__name__}: {exc}"
                if problem:
                    return problem
    return None


_EXCEL_EPOCH_1900 = datetime(1899, 12, 30)


def _serial_date(value: float | int, epoch: datetime) -> str:
    """The ISO date a spreadsheet number stands for as a date serial, or ``""`` when none plausible."""
    if isinstance(value, bool) or not 1 <= value < 2958466 or value != int(value):  # 1900-01-01 … 9999-12-31
        return ""
    day = (epoch if epoch.year != 1899 else _EXCEL_EPOCH_1900) + timedelta(days=int(value))
    if epoch.year == 1899 and value < 61:  # the Lotus 1900-02-29 that never was
        day += timedelta(days=1)
    return day.date().isoformat()


def read_xlsx(data: bytes, source: dict[str, Any]) -> ReadResult:
    if (big := _too_big(data)) is not None:
        return big
    problem = _workbook_guard(data)
    if problem:
        return ReadResult(file_error=problem)
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a damaged workbook
        return ReadResult(
            file_error=f"不是可读的 XLSX 工作簿 (not a readable XLSX workbook): {type(exc).__name__}: {exc}"
        )
    try:
        sheet_name = source.get("sheet")
        if sheet_name and sheet_name not in wb.sheetnames:
            return ReadResult(
                file_error=f"工作簿中没有工作表 {sheet_name!r}（有：{', '.join(wb.sheetnames)}） "
                f"(no sheet {sheet_name!r}; the workbook has {', '.join(wb.sheetnames)})"
            )
        ws = wb[sheet_name] if sheet_name else wb.worksheets[0]
        ws.reset_dimensions()  # the declared size (WPS writes "A1") is not the data: read every row there is
        epoch = getattr(wb, "epoch", _EXCEL_EPOCH_1900)
        header_row = int(source.get("header_row", 1))
        rows = ws.iter_rows(min_row=header_row, values_only=True)
        try:
            header = [(_text(h).strip() if h is not None else "") for h in next(rows)]
        except StopIteration:
            return ReadResult(file_error="工作表是空的：没有表头行 (the sheet is empty: no header row)")
        result = ReadResult(encoding="xlsx")
        for n, cells in enumerate(rows, header_row + 1):
            if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                continue
            raw = {h: c for h, c in zip(header, cells, strict=False) if h}
            record = result.add(n, _clean_row(raw))
            if record is None:
                continue
            for h, c in raw.items():
                if isinstance(c, int | float) and not isinstance(c, bool):
                    record.numbers[h] = _serial_date(c, epoch)
            _flag(record)
        return result
    except Exception as exc:  # a damaged sheet part surfaces while iterating
        return ReadResult(
            file_error=f"不是可读的 XLSX 工作簿 (not a readable XLSX workbook): {type(exc).__name__}: {exc}"
        )
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
