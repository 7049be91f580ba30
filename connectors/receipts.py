"""Receipts back to the loan system: one line per application per state change that matters.

A batch of receipt lines is written as one file in the inbox's receipts folder, atomically,
under a name fixed before writing (``receipts-<batch>.csv``, batches numbered per inbox), so a
crash mid-write neither loses nor repeats a line: the agent rewrites the same batch under the same name on restart.

CSV (the profile's encoding, e.g. GB18030 for a loan system on Windows) or JSON Lines. A cell
that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR) is prefixed with
an apostrophe (OWASP's CSV-injection advice).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "neutralise", "render_receipts"]

#: column → (CSV header for the loan system, payload key)
COLUMNS: list[tuple[str, str]] = [
    ("贷款编号", "loan_no"),
    ("业务编号", "reference"),
    ("业务类型", "type_name"),
    ("事件", "event"),
    ("状态", "status"),
    ("受理号", "application_id"),
    ("不动产登记证明号", "certificate_number"),
    ("证书存放位置", "document"),
    ("领证方式", "delivery"),
    ("文书编号", "notice_number"),
    ("补正事项", "items"),
    ("补正期限", "deadline"),
    ("原因", "reason"),
    ("费用(元)", "amount"),
    ("源文件", "file"),
    ("行号", "rows"),
    ("时间", "at"),
    ("批次号", "batch"),
]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_receipts(lines: list[dict[str, Any]], fmt: str, encoding: str) -> bytes:
    if fmt == "json":
        return "".join(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in lines).encode(encoding)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([header for header, _ in COLUMNS])
    for line in lines:
        writer.writerow([neutralise(line.get(key)) for _, key in COLUMNS])
    return buf.getvalue().encode(encoding, errors="replace")


def receipt_path(folder: Path, batch: int, fmt: str) -> Path:
    return folder / f"receipts-{batch:06d}.{'jsonl' if fmt == 'json' else 'csv'}"
