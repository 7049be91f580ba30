"""不动产登记证明(电子) and sealed notices as OFD (GB/T 33190), the ``gm`` suite's format: the page
laid out like the PDF (every field of seed 000 art. 7, the QR code for 在线核验, the seal's place),
text drawn in WenQuanYi with HanaMinA for what it lacks (𠮷, 䶮: :mod:`sdk.support.fonts`), then
sealed by the centre's electronic seal (:class:`sandbox.seals.SealOffice`, GB/T 38540 v4).

The package and the seal are written by :mod:`sandbox.ofd_writer`; the licence metadata
(GB/T 36901–36905 practice) also goes into ``OFD.xml``'s CustomDatas.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from reportlab.graphics.barcode import qrencoder
from reportlab.pdfbase import pdfmetrics

from sdk.models import CertificateMetadata
from sdk.support.fonts import font_runs, text_width

from .ofd_writer import OfdWriter, PageBuilder, zip_package
from .seals import SealOffice

__all__ = ["render_notice_ofd", "render_ofd"]

_PT = 25.4 / 72  # one point in mm
_DARK_RED = (122, 31, 31)
_RED = (200, 20, 20)


def _text(page: PageBuilder, x: float, y: float, text: str, size_pt: float, *, align: str = "left",
          color: tuple[int, int, int] = (0, 0, 0)) -> None:  # fmt: skip
    """Text at baseline (x, y) mm, one TextObject per font run (the fallback font for what the main lacks)."""
    size = size_pt * _PT
    width = text_width(text, size)
    if align == "centre":
        x -= width / 2
    elif align == "right":
        x -= width
    for face, run in font_runs(text):
        font = page.writer.font(face.family, face.family)
        advances = [pdfmetrics.stringWidth(ch, face.name, size) for ch in run]
        page.text(x, y, run, size=size, font=font, advances=advances[:-1], color=color)
        x += sum(advances)


def _wrap(text: str, size_pt: float, width: float) -> list[str]:
    size = size_pt * _PT
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for ch in paragraph:
            if text_width(line + ch, size) > width:
                lines.append(line)
                line = ch
            else:
                line += ch
        lines.append(line)
    return lines


def _rect(page: PageBuilder, x: float, y: float, w: float, h: float, *, width: float = 0.28) -> None:
    page.path((x, y, w, h), f"M 0 0 L {w:.3f} 0 L {w:.3f} {h:.3f} L 0 {h:.3f} C", line_width=width)


def _line(page: PageBuilder, x1: float, y1: float, x2: float, y2: float) -> None:
    x, y = min(x1, x2), min(y1, y2)
    page.path((x, y, abs(x2 - x1) or 0.3, abs(y2 - y1) or 0.3),
              f"M {x1 - x:.3f} {y1 - y:.3f} L {x2 - x:.3f} {y2 - y:.3f}", line_width=0.28)  # fmt: skip


def _qr(page: PageBuilder, payload: str, x: float, y: float, side: float, border: int = 4) -> None:
    """A QR code (level M) as one filled path: each run of dark modules a rectangle (§9 AbbreviatedData)."""
    qr = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    qr.addData(payload)
    qr.make()
    count = len(qr.modules)
    box = side / (count + 2 * border)
    parts = []
    for r, row in enumerate(qr.modules):
        col = 0
        for dark, run in itertools.groupby(bool(m) for m in row):
            n = sum(1 for _ in run)
            if dark:
                x0, y0, x1, y1 = (
                    (col + border) * box,
                    (r + border) * box,
                    (col + border + n) * box,
                    (r + border + 1) * box,
                )
                parts.append(f"M {x0:.3f} {y0:.3f} L {x1:.3f} {y0:.3f} L {x1:.3f} {y1:.3f} L {x0:.3f} {y1:.3f} C")
            col += n
    page.path((x, y, side, side), " ".join(parts), stroke=False, fill=True)


def _table(page: PageBuilder, rows: Sequence[tuple[str, str]], top: float, left: float, right: float) -> float:
    label_w, size, leading = 35.0, 10.5, 5.3
    y = top
    for label, value in rows:
        lines = _wrap(value or "", size, right - left - label_w - 6)
        h = max(12.0, len(lines) * leading + 3)
        _rect(page, left, y, right - left, h)
        _line(page, left + label_w, y, left + label_w, y + h)
        _text(page, left + label_w / 2, y + h / 2 + 1.5, label, size, align="centre")
        ty = y + 2 + size * _PT
        for line in lines:
            _text(page, left + label_w + 3, ty, line, size)
            ty += leading
        y += h
    return y


def _custom_data(meta: CertificateMetadata) -> dict[str, str]:
    return {
        "证照名称": meta.licence_name,
        "证照类型代码": meta.licence_type_code,
        "证照标识": meta.licence_id,
        "编号": meta.serial_number,
        "不动产登记证明号": meta.certificate_number,
        "颁发机构": meta.issuing_authority,
        "颁发机构代码": meta.issuing_authority_code,
        "颁发日期": meta.issued_at.date().isoformat(),
        "持证主体代码类型": meta.holder_code_type.value,
        "二维码": meta.qr_payload,
    }


def render_ofd(meta: CertificateMetadata, *, authority: str, seals: SealOffice) -> bytes:
    """The sealed OFD certificate: every field of seed 000 art. 7, the QR code, the electronic seal."""
    writer = OfdWriter(
        title=f"不动产登记证明 {meta.certificate_number}",
        creator=authority,
        custom_data=_custom_data(meta),
        created=meta.issued_at.date(),
    )
    page = writer.page()
    left, right = 20.0, 190.0
    _text(page, 105, 30, "不动产登记证明(电子)", 22, align="centre", color=_DARK_RED)
    _text(page, left, 39, f"编号: {meta.serial_number}", 10)
    _text(page, left, 44, f"证照标识: {meta.licence_id}", 8)
    _text(page, 105, 52, meta.certificate_number, 13, align="centre")
    rows = [
        ("证明权利或事项", meta.right_or_matter),
        ("权利人(申请人)", "、".join(meta.right_holders)),
        ("义务人", "、".join(meta.obligors)),
        ("坐落", meta.location),
        ("不动产单元号", "\n".join(meta.unit_ids)),
        ("其他", meta.other),
        ("附记", meta.notes),
    ]
    y = _table(page, rows, 58.0, left, right)
    side = 32.0
    _qr(page, meta.qr_payload, left, y + 8, side)
    _text(page, left, y + side + 12, "扫码在线核验", 8)
    cx, cy = right - 35, y + 26
    _text(page, cx, cy + 28, f"登记机构: {authority}", 11, align="centre")
    _text(page, cx, cy + 34, f"颁发时间: {meta.issued_at:%Y年%m月%d日}", 11, align="centre")
    _text(page, left, 285, "本证明由登记机构加盖电子印章，与纸质不动产登记证明具有同等法律效力。", 7)
    files = seals.seal(writer.package(), stamp_page=page.id, stamp_box=(cx - 20, cy - 20, 40, 40),
                       signed_at=meta.signed_at)  # fmt: skip
    return zip_package(files)


def render_notice_ofd(
    *,
    title: str,
    number: str,
    authority: str,
    addressee: str,
    fields: Sequence[tuple[str, str]],
    body: str,
    issued_at_text: str,
    seals: SealOffice,
    custom_data: dict[str, str],
) -> bytes:
    """A sealed notice (受理凭证, 不予受理通知书, 补正通知书…): title, 文书编号, addressee, a table of
    fields, the text, the date and the centre's seal (seed 003 (四))."""
    writer = OfdWriter(title=f"{title} {number}", creator=authority, custom_data=custom_data)
    page = writer.page()
    left, right = 20.0, 190.0
    _text(page, 105, 30, title, 20, align="centre", color=_DARK_RED)
    _text(page, 105, 38, number, 10, align="centre")
    _text(page, left, 50, f"{addressee}：", 11)
    y = _table(page, fields, 56.0, left, right)
    ty = y + 10
    for line in _wrap(body, 11, right - left - 8):
        _text(page, left + 8, ty, line, 11)
        ty += 6.5
    cx, cy = right - 35, ty + 24
    _text(page, cx, cy + 28, authority, 11, align="centre")
    _text(page, cx, cy + 34, issued_at_text, 11, align="centre")
    files = seals.seal(writer.package(), stamp_page=page.id, stamp_box=(cx - 20, cy - 20, 40, 40))
    return zip_package(files)
