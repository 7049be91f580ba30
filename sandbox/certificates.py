"""不动产登记证明(电子): rendered with reportlab, sealed with a PAdES signature (pyHanko), with
signed metadata carrying every field of seed 000 art. 7.

The Chinese text needs a CJK font. A TrueType CJK font is embedded when one is found
(``REGBRIDGE_CJK_FONT``, or a system font such as WenQuanYi Micro Hei from Debian's
``fonts-wqy-microhei``); otherwise the PDF uses the standard ``STSong-Light`` CID font, which every
PDF reader with Chinese support renders and from which text can still be extracted.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from datetime import datetime
from decimal import Decimal
from typing import Any

from reportlab.graphics.barcode import qrencoder
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from sdk.codes import LicenceHolderCodeType, LicenceStatus, MortgageMethod
from sdk.identifiers import LICENCE_TYPE_PROOF
from sdk.models import CertificateMetadata
from sdk.money import yuan_to_wan
from sdk.support.fonts import FONT_CANDIDATES, cjk_font, draw_text, text_width

from .pki import CentreKeys

__all__ = ["FONT_CANDIDATES", "cjk_font", "render_notice_pdf", "render_pdf", "seal_pdf"]


def _wrap(text: str, size: float, width: float) -> list[str]:
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


def describe_terms(terms: dict[str, Any]) -> str:
    """The 其他 column: the mortgage's terms in words."""
    parts = []
    method = terms.get("method")
    if method:
        parts.append(f"抵押方式: {MortgageMethod(method).label}")
    if terms.get("secured_amount"):
        amount = Decimal(terms["secured_amount"])
        parts.append(f"被担保主债权数额: {amount:,.2f}元 ({yuan_to_wan(amount):f}万元)")
    if terms.get("maximum_amount"):
        amount = Decimal(terms["maximum_amount"])
        parts.append(f"最高债权额: {amount:,.2f}元 ({yuan_to_wan(amount):f}万元)")
    if terms.get("determined_amount"):
        parts.append(f"确定的债权数额: {Decimal(terms['determined_amount']):,.2f}元")
    if terms.get("debt_start") and terms.get("debt_end"):
        parts.append(f"债务履行期限: {terms['debt_start']} 起 {terms['debt_end']} 止")
    if terms.get("rank"):
        parts.append(f"抵押顺位: {terms['rank']}")
    if terms.get("guarantee_scope"):
        parts.append(f"担保范围: {terms['guarantee_scope']}")
    return "；".join(parts)


def _draw_qr(c: canvas.Canvas, payload: str, x: float, y: float, side: float, border: int = 4) -> None:
    """A QR code (level M) with its quiet zone, bottom-left at (x, y): each run of dark modules one rectangle."""
    qr = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    qr.addData(payload)
    qr.make()
    count = len(qr.modules)  # getModuleCount() is the same, untyped
    box = side / (count + 2 * border)
    path = c.beginPath()
    for r, row in enumerate(qr.modules):
        col = 0
        for dark, run in itertools.groupby(bool(m) for m in row):
            n = sum(1 for _ in run)
            if dark:
                path.rect(x + (col + border) * box, y + side - (r + border + 1) * box, n * box, box)
            col += n
    c.saveState()
    c.setFillColor(colors.black)
    c.drawPath(path, stroke=0, fill=1)
    c.restoreState()


def render_pdf(meta: CertificateMetadata, *, authority: str) -> bytes:
    """The certificate's page: every field of seed 000 art. 7, a QR code and the seal's mark."""
    cjk_font()  # registered before the first text is measured
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    c.setTitle(f"不动产登记证明 {meta.certificate_number}")
    c.setAuthor(authority)
    c.setSubject(meta.licence_id)
    width, height = A4
    left, right = 20 * mm, width - 20 * mm

    c.setFillColor(colors.HexColor("#7a1f1f"))
    draw_text(c, width / 2, height - 30 * mm, "不动产登记证明(电子)", 22, align="centre")
    c.setFillColor(colors.black)
    draw_text(c, left, height - 39 * mm, f"编号: {meta.serial_number}", 10)
    draw_text(c, left, height - 44 * mm, f"证照标识: {meta.licence_id}", 8)
    draw_text(c, width / 2, height - 52 * mm, meta.certificate_number, 13, align="centre")

    rows = [
        ("证明权利或事项", meta.right_or_matter),
        ("权利人(申请人)", "、".join(meta.right_holders)),
        ("义务人", "、".join(meta.obligors)),
        ("坐落", meta.location),
        ("不动产单元号", "\n".join(meta.unit_ids)),
        ("其他", meta.other),
        ("附记", meta.notes),
    ]
    top = height - 58 * mm
    label_w = 35 * mm
    size = 10.5
    leading = 15
    c.setLineWidth(0.8)
    y = top
    for label, value in rows:
        lines = _wrap(value or "", size, right - left - label_w - 6 * mm)
        h = max(12 * mm, len(lines) * leading + 8)
        c.rect(left, y - h, right - left, h)
        c.line(left + label_w, y, left + label_w, y - h)
        draw_text(c, left + label_w / 2, y - h / 2 - 4, label, size, align="centre")
        ty = y - 6 - size
        for line in lines:
            draw_text(c, left + label_w + 3 * mm, ty, line, size)
            ty -= leading
        y -= h

    # QR code pointing at the online verification (在线核验): encoded once, drawn as one path
    side = 32 * mm
    _draw_qr(c, meta.qr_payload, left, y - side - 8 * mm, side)
    draw_text(c, left, y - side - 12 * mm, "扫码在线核验", 8)

    # the issuing authority, its seal mark and the date
    cx, cy = right - 35 * mm, y - 26 * mm
    c.setStrokeColor(colors.red)
    c.setFillColor(colors.red)
    c.setLineWidth(2)
    c.circle(cx, cy, 21 * mm, stroke=1, fill=0)
    draw_text(c, cx, cy + 8 * mm, authority, 9, align="centre")
    draw_text(c, cx, cy - 3 * mm, "★", 20, align="centre")
    draw_text(c, cx, cy - 12 * mm, "不动产登记专用章", 9, align="centre")
    c.setFillColor(colors.black)
    draw_text(c, cx, cy - 28 * mm, f"登记机构: {authority}", 11, align="centre")
    draw_text(c, cx, cy - 34 * mm, f"颁发时间: {meta.issued_at:%Y年%m月%d日}", 11, align="centre")
    draw_text(c, left, 12 * mm, "本证明由登记机构加盖电子印章，与纸质不动产登记证明具有同等法律效力。", 7)
    c.showPage()
    c.save()
    return buf.getvalue()


def render_notice_pdf(
    *,
    title: str,
    number: str,
    authority: str,
    addressee: str,
    fields: list[tuple[str, str]],
    body: str,
    issued_at: datetime,
) -> bytes:
    """A notice's page (受理凭证, 不予受理通知书…): title, 文书编号, addressee, a table of fields, the text,
    the authority and date, the seal's mark; sealed afterwards with :func:`seal_pdf`."""
    cjk_font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    c.setTitle(f"{title} {number}")
    c.setAuthor(authority)
    width, height = A4
    left, right = 20 * mm, width - 20 * mm
    c.setFillColor(colors.HexColor("#7a1f1f"))
    draw_text(c, width / 2, height - 30 * mm, title, 20, align="centre")
    c.setFillColor(colors.black)
    draw_text(c, width / 2, height - 38 * mm, number, 10, align="centre")
    draw_text(c, left, height - 50 * mm, f"{addressee}：", 11)
    y, label_w, size, leading = height - 56 * mm, 35 * mm, 10.5, 15
    c.setLineWidth(0.8)
    for label, value in fields:
        lines = _wrap(value or "", size, right - left - label_w - 6 * mm)
        h = max(12 * mm, len(lines) * leading + 8)
        c.rect(left, y - h, right - left, h)
        c.line(left + label_w, y, left + label_w, y - h)
        draw_text(c, left + label_w / 2, y - h / 2 - 4, label, size, align="centre")
        ty = y - 6 - size
        for line in lines:
            draw_text(c, left + label_w + 3 * mm, ty, line, size)
            ty -= leading
        y -= h
    y -= 10 * mm
    for line in _wrap(body, 11, right - left - 8 * mm):
        draw_text(c, left + 8 * mm, y, line, 11)
        y -= 18
    cx, cy = right - 35 * mm, y - 26 * mm
    c.setStrokeColor(colors.red)
    c.setFillColor(colors.red)
    c.setLineWidth(2)
    c.circle(cx, cy, 21 * mm, stroke=1, fill=0)
    draw_text(c, cx, cy + 8 * mm, authority, 9, align="centre")
    draw_text(c, cx, cy - 3 * mm, "★", 20, align="centre")
    c.setFillColor(colors.black)
    draw_text(c, cx, cy - 28 * mm, authority, 11, align="centre")
    draw_text(c, cx, cy - 34 * mm, f"{issued_at:%Y年%m月%d日}", 11, align="centre")
    c.showPage()
    c.save()
    return buf.getvalue()


def seal_pdf(pdf: bytes, keys: CentreKeys, *, authority: str) -> bytes:
    """Seal the PDF with a PAdES signature by the centre's seal certificate."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der = serialization.Encoding.DER
    ca = asn1_x509.Certificate.load(keys.ca_cert.public_bytes(der))
    registry = SimpleCertificateStore.from_certs([ca])  # type: ignore[no-untyped-call]  # unannotated upstream
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(keys.seal_cert.public_bytes(der)),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            keys.seal_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        ),
        cert_registry=registry,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(
        field_name="Seal",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason="不动产登记证明(电子) 电子印章",
        location=authority,
        md_algorithm="sha256",
    )
    # the CMS container's room given outright: pyHanko would otherwise sign once more to measure it
    out = signers.sign_pdf(writer, meta, signer=signer, bytes_reserved=16384)
    sealed: bytes = out.getvalue()
    return sealed


def holder_code_type(id_number: str) -> LicenceHolderCodeType:
    return (
        LicenceHolderCodeType.USCC
        if len(id_number) == 18 and not id_number[:17].isdigit()
        else (LicenceHolderCodeType.RESIDENT_ID if len(id_number) == 18 else LicenceHolderCodeType.OTHER)
    )


def build_metadata(
    *,
    certificate_id: str,
    application_id: str,
    authority: str,
    authority_code: str,
    licence: str,
    serial_number: str,
    certificate_number: str,
    verification_url: str,
    right_or_matter: str,
    holders: list[dict[str, Any]],
    obligors: list[dict[str, Any]],
    location: str,
    unit_ids: list[str],
    terms: dict[str, Any],
    notes: list[str],
    issued_at: datetime,
) -> CertificateMetadata:
    """The metadata before the file exists (``sha256``/``size`` are filled in after sealing)."""
    holder = holders[0]
    method = terms.get("method")
    return CertificateMetadata(
        certificate_id=certificate_id,
        application_id=application_id,
        qr_payload=verification_url,
        issuing_authority=authority,
        issuing_authority_code=authority_code,
        issued_at=issued_at,
        serial_number=serial_number,
        certificate_number=certificate_number,
        right_or_matter=right_or_matter,
        right_holders=[h["name"] for h in holders],
        obligors=[o["name"] for o in obligors],
        location="；".join(dict.fromkeys([location])),
        unit_ids=unit_ids,
        other=describe_terms(terms),
        notes="；".join(notes),
        licence_id=licence,
        licence_type_code=LICENCE_TYPE_PROOF,
        holder_name=holder["name"],
        holder_code=holder["id_number"],
        holder_code_type=holder_code_type(holder["id_number"]),
        signer=authority,
        signed_at=issued_at,
        status=LicenceStatus.CURRENT,
        mortgage_method=method,
        secured_amount=terms.get("determined_amount") or terms.get("secured_amount"),
        maximum_amount=terms.get("maximum_amount"),
        debt_start=terms.get("debt_start"),
        debt_end=terms.get("debt_end"),
        media_type="application/pdf",
        sha256="0" * 64,
        size=1,
    )


def finish(meta: CertificateMetadata, pdf: bytes) -> CertificateMetadata:
    return meta.model_copy(update={"sha256": hashlib.sha256(pdf).hexdigest(), "size": len(pdf)})
