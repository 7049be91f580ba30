"""The ``xlsx`` reader: openpyxl read-only, cached values, dates as ISO text and numbers as exact text."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

from connectors.readers.limits import (
    _workbook_guard,
)
from connectors.readers.records import ReadResult, _too_big
from connectors.readers.text import (
    _clean_row,
    _flag,
    _text,
)

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
