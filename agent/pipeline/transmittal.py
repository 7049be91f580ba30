"""Paper originals (纸质申请材料集中送达, seed 001): which applications still owe their paper
originals to the centre, and the periodic transmittal list that goes with the batch.

``regbridge transmittal`` lists every application the centre accepted whose originals have not
been listed yet, writes the list as CSV (GB18030, for Excel) and a printable PDF with a signature
block, and marks them listed; ``regbridge transmittal --confirm ID`` marks a batch delivered
once the centre has signed for it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.pipeline.context import StageContext
from connectors.receipts import neutralise
from sdk.models import APPLICATION_TYPES
from sdk.support.files import atomic_write

__all__ = ["Transmittal", "make_transmittal"]

COLUMNS = ["序号", "贷款编号", "业务编号", "业务类型", "受理号", "受理状态", "材料份数"]


@dataclass
class Transmittal:
    id: str
    count: int
    csv_path: Path | None
    pdf_path: Path | None


def _pdf(title: str, rows: list[list[str]], institution: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    from sdk.support.fonts import cjk_font

    font = cjk_font()
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4, invariant=True)
    width, height = A4
    xs = [40, 70, 150, 270, 380, 470, 525]
    y = height - 60

    def header() -> float:
        pdf.setFont(font, 15)
        pdf.drawCentredString(width / 2, height - 50, title)
        pdf.setFont(font, 9)
        pdf.drawString(40, height - 72, f"送达机构: {institution}")
        pdf.drawString(40, height - 86, f"生成时间: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC")
        for x, col in zip(xs, COLUMNS, strict=True):
            pdf.drawString(x, height - 110, col)
        pdf.line(40, height - 114, width - 40, height - 114)
        return height - 130

    y = header()
    for row in rows:
        if y < 120:
            pdf.showPage()
            y = header()
        pdf.setFont(font, 8)
        for x, value in zip(xs, row, strict=True):
            pdf.drawString(x, y, value[:22])
        y -= 14
    pdf.setFont(font, 10)
    pdf.drawString(
        40, 90, f"共 {len(rows)} 件。送达人(签字): ____________    接收人(签字): ____________    日期: __________"
    )
    pdf.showPage()
    pdf.save()
    return buf.getvalue()


def make_transmittal(ctx: StageContext, folder: Path) -> Transmittal:
    owed = ctx.store.paper_owed()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    tid = f"T{stamp}"
    if not owed:
        return Transmittal(tid, 0, None, None)
    rows = []
    for i, app in enumerate(owed, 1):
        label = APPLICATION_TYPES[app.type].business_name if app.type in APPLICATION_TYPES else app.type
        count = len(app.payload.get("materials", []))
        rows.append(
            [str(i), app.loan_no, app.reference, label, app.application_id or "", app.centre_status or "", str(count)]
        )
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows([[neutralise(v) for v in row] for row in rows])
    csv_path = folder / f"transmittal-{tid}.csv"
    pdf_path = folder / f"transmittal-{tid}.pdf"
    atomic_write(csv_path, text.getvalue().encode("gb18030"), mode=0o640)
    atomic_write(pdf_path, _pdf("纸质申请材料集中送达清单", rows, ctx.config.centre.institution_name), mode=0o640)
    ctx.store.add_transmittal(tid, [a.reference for a in owed], str(csv_path), str(pdf_path))
    ctx.audit.append("transmittal.created", tid, "ok", applications=len(owed))
    return Transmittal(tid, len(owed), csv_path, pdf_path)
