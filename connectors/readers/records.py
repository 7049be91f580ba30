"""What a reader returns: records of text values with their row numbers, record errors, the file's result."""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.readers.limits import (
    MAX_EXPORT_BYTES,
    MAX_FIELD_CHARS,
)


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


def rows_label(rows: object) -> str:
    """Several records' places, in the same words as :func:`row_label`: ``第2行``, ``第2行、第3行``.

    Receipts (the 行号 column), ``status``, ``show`` and the console all write rows so. Takes a row
    number, a list of them, or the older receipts' ``"2,3"``; ``""`` when there is none.
    """
    import re

    if rows is None or rows == "":
        return ""
    if isinstance(rows, int):
        items: list[object] = [rows]
    elif isinstance(rows, str):
        items = [r for r in re.split(r"[,;\s、]+", rows) if r]
    else:
        items = list(rows)  # type: ignore[call-overload]
    return "、".join(row_label(int(str(r))) if str(r).isdigit() else str(r) for r in items)


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


def _too_big(data: bytes) -> ReadResult | None:
    if len(data) > MAX_EXPORT_BYTES:
        return ReadResult(
            file_error=f"文件有 {len(data):,} 字节，超过上限 {MAX_EXPORT_BYTES:,} 字节：请分批导出 (export too large)"
        )
    return None
