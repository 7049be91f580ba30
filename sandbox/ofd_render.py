"""Drawing an OFD page from the .ofd file alone (:func:`sdk.ofd.reader.read_ofd`), to PDF with
reportlab (then a PNG with poppler's ``pdftoppm``): text at its TextCode positions and DeltaX
advances (GB/T 33190 §11), paths from AbbreviatedData (§9.3: M, L, B, Q, C; arcs are not drawn),
images from their MultiMedia resources (§10) and each seal's picture, taken from the SES seal
(GB/T 38540), at its StampAnnot boundary (§18). Fonts are matched by FamilyName to the fonts
installed here (:mod:`sdk.support.fonts`); an unknown family draws in the main CJK font.

It is how ``make docs-certificate-ofd`` shows a sandbox OFD certificate without using the data that
made it, and a check that the writer's output is drawable.
"""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from sdk.ofd.reader import OfdDocument, OfdPage, read_ofd
from sdk.ofd.ses import SesError, parse_seal
from sdk.support.fonts import cjk_font, fallback_font, font_face

__all__ = ["ofd_to_pdf"]

_MM = 72 / 25.4  # points per millimetre


def _font_for(doc: OfdDocument, font_id: str) -> str:
    family = doc.fonts.get(font_id, ("", "", None))[1]
    fallback = fallback_font()
    if fallback is not None and family == fallback.family:
        return fallback.name
    if family == font_face().family:
        return font_face().name
    return cjk_font()


def _path(c: canvas.Canvas, data: str, ox: float, oy: float, height: float) -> Any:
    path = c.beginPath()
    tokens = data.split()
    i = 0

    def point(k: int) -> tuple[float, float]:
        return (ox + float(tokens[k])) * _MM, height - (oy + float(tokens[k + 1])) * _MM

    while i < len(tokens):
        op = tokens[i]
        if op in ("M", "S"):
            path.moveTo(*point(i + 1))
            i += 3
        elif op == "L":
            path.lineTo(*point(i + 1))
            i += 3
        elif op == "B":
            path.curveTo(*point(i + 1), *point(i + 3), *point(i + 5))
            i += 7
        elif op == "Q":  # a quadratic as the cubic through the same control point
            (x1, y1), (x2, y2) = point(i + 1), point(i + 3)
            path.curveTo(x1, y1, x1, y1, x2, y2)
            i += 5
        elif op == "C":
            path.close()
            i += 1
        elif op == "A":  # arcs (§9.3 A rx ry angle large sweep x y) are skipped: the writer does not use them
            i += 8
        else:
            i += 1
    return path


def _page(c: canvas.Canvas, doc: OfdDocument, page: OfdPage) -> None:
    width, height = doc.page_area[2] * _MM, doc.page_area[3] * _MM
    c.setPageSize((width, height))
    for unit in page.paths:
        c.setLineWidth(unit.line_width * _MM)
        c.setStrokeColorRGB(*(v / 255 for v in unit.stroke_color))
        c.setFillColorRGB(*(v / 255 for v in unit.fill_color))
        c.drawPath(_path(c, unit.data, unit.boundary[0], unit.boundary[1], height),
                   stroke=int(unit.stroke), fill=int(unit.fill))  # fmt: skip
    for image in page.images:
        media = doc.media.get(image.resource_id)
        if media is None or media[2] not in doc.files:
            continue
        x, y, w, h = image.boundary
        c.drawImage(ImageReader(io.BytesIO(doc.files[media[2]])), x * _MM, height - (y + h) * _MM, w * _MM, h * _MM,
                    mask="auto")  # fmt: skip
    for run in page.texts:
        c.setFillColorRGB(*(v / 255 for v in run.fill))
        c.setFont(_font_for(doc, run.font_id), run.size * _MM)
        x = run.x
        for k, ch in enumerate(run.text):
            c.drawString(x * _MM, height - run.y * _MM, ch)
            x += run.delta_x[k] if k < len(run.delta_x) else run.size
    for signature in doc.signatures:
        if signature.seal_path is None or signature.seal_path not in doc.files:
            continue
        try:
            picture = parse_seal(doc.files[signature.seal_path]).picture
        except SesError:
            continue
        for annot in signature.stamp_annots:
            if annot.page_ref != page.id:
                continue
            x, y, w, h = annot.boundary
            c.drawImage(ImageReader(io.BytesIO(picture)), x * _MM, height - (y + h) * _MM, w * _MM, h * _MM,
                        mask="auto")  # fmt: skip


def ofd_to_pdf(data: bytes) -> bytes:
    """Every page of the OFD drawn into a PDF (one PDF page per OFD page).

    Raises:
        sdk.ofd.reader.OfdError: the OFD cannot be read.
    """
    doc = read_ofd(data)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=True)
    for page in doc.pages:
        _page(c, doc, page)
        c.showPage()
    c.save()
    return buf.getvalue()
