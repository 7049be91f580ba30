"""The CJK fonts the PDFs and OFDs use (certificates, notices, transmittal lists).

The main font is an embedded TrueType CJK font when the machine has one (WenQuanYi Micro Hei from
Debian's ``fonts-wqy-microhei``, or ``$REGBRIDGE_CJK_FONT``), else reportlab's standard
``STSong-Light``. WenQuanYi covers GBK but not the CJK extensions (𠮷 U+20BB7 in Extension B,
䶮 U+4DAE in Extension A, both in names on real certificates): characters the main font lacks are
drawn with the fallback font, HanaMinA from Debian's ``fonts-hanazono`` (or
``$REGBRIDGE_CJK_FALLBACK_FONT``), which covers Unicode's CJK blocks through Extension B.
:func:`font_runs` splits a text into runs per font; :func:`draw_text` draws them on a reportlab
canvas. A character neither font has is drawn with the main font (a missing glyph box), never dropped.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont

__all__ = [
    "FALLBACK_CANDIDATES",
    "FONT_CANDIDATES",
    "FontFace",
    "cjk_font",
    "draw_text",
    "fallback_font",
    "font_face",
    "font_runs",
    "text_width",
]

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "C:/Windows/Fonts/simsun.ttc",
    "C:/Windows/Fonts/simhei.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
)
#: fonts covering the CJK extensions (A and B), tried in order for what the main font lacks
FALLBACK_CANDIDATES = (
    "/usr/share/fonts/truetype/hanazono/HanaMinA.ttf",
    "C:/Windows/Fonts/simsunb.ttf",
)
_font_name: str | None = None
_ASTRAL = re.compile(r"<([0-9A-F]{2})> <([0-9A-F]{5,6})>")
_reportlab_cmap = ttfonts.makeToUnicodeCMap


def _to_unicode_cmap(fontname: str, subset: list[int]) -> str:
    """reportlab's ToUnicode CMap with characters beyond the BMP written as UTF-16BE surrogate pairs
    (PDF 32000 §9.10.3): reportlab writes ``<20BB7>`` for 𠮷, an odd-length code readers reject, so the
    glyph shows but its text is lost (pdftotext answered ``₻``)."""

    def pair(match: re.Match[str]) -> str:
        code = int(match.group(2), 16) - 0x10000
        return f"<{match.group(1)}> <{0xD800 + (code >> 10):04X}{0xDC00 + (code & 0x3FF):04X}>"

    return _ASTRAL.sub(pair, str(_reportlab_cmap(fontname, subset)))


ttfonts.makeToUnicodeCMap = _to_unicode_cmap


class FontFace:
    """A registered font: its reportlab name, family (what an OFD ``Font`` names) and file."""

    def __init__(self, name: str, family: str, path: str | None, chars: frozenset[int] | None) -> None:
        self.name = name
        self.family = family
        self.path = path
        self._chars = chars

    def covers(self, ch: str) -> bool:
        return self._chars is None or ord(ch) in self._chars


def cjk_font() -> str:
    """Register (once) and name the CJK font the certificates use."""
    global _font_name
    if _font_name is not None:
        return _font_name
    for candidate in (os.environ.get("REGBRIDGE_CJK_FONT"), *FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            try:
                pdfmetrics.registerFont(TTFont("RegBridgeCJK", candidate, subfontIndex=0))
            except Exception:  # a font reportlab cannot embed (CFF outlines…): try the next one
                continue
            _font_name = "RegBridgeCJK"
            return _font_name
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    _font_name = "STSong-Light"
    return _font_name


def _face_of(name: str) -> FontFace:
    font: Any = pdfmetrics.getFont(name)
    face = getattr(font, "face", None)
    chars = frozenset(face.charToGlyph) if face is not None and hasattr(face, "charToGlyph") else None
    raw_family = getattr(face, "familyName", None)
    family = raw_family.decode("utf-8", "replace") if isinstance(raw_family, bytes) else str(raw_family or name)
    path = getattr(face, "filename", None)
    return FontFace(name, family, str(path) if path else None, chars)


@functools.cache
def font_face() -> FontFace:
    """The main font (:func:`cjk_font`) as a :class:`FontFace`."""
    return _face_of(cjk_font())


@functools.cache
def fallback_font() -> FontFace | None:
    """Register (once) the fallback font for the CJK extensions; ``None`` when none is installed."""
    for candidate in (os.environ.get("REGBRIDGE_CJK_FALLBACK_FONT"), *FALLBACK_CANDIDATES):
        if candidate and Path(candidate).is_file():
            try:
                pdfmetrics.registerFont(TTFont("RegBridgeCJKExt", candidate, subfontIndex=0))
            except Exception:
                continue
            return _face_of("RegBridgeCJKExt")
    return None


def font_runs(text: str) -> list[tuple[FontFace, str]]:
    """``text`` cut into runs, each with the font that draws it (main, else the fallback)."""
    main = font_face()
    runs: list[tuple[FontFace, str]] = []
    for ch in text:
        face = main
        if not main.covers(ch):  # the fallback is loaded only when a text needs it (HanaMinA: ~1 s)
            fallback = fallback_font()
            face = fallback if fallback is not None and fallback.covers(ch) else main
        if runs and runs[-1][0] is face:
            runs[-1] = (face, runs[-1][1] + ch)
        else:
            runs.append((face, ch))
    return runs


def text_width(text: str, size: float) -> float:
    """The width of ``text`` at ``size`` (points, or any unit ``size`` is in), fonts as :func:`font_runs`."""
    return sum(pdfmetrics.stringWidth(run, face.name, size) for face, run in font_runs(text))


def draw_text(canvas: Any, x: float, y: float, text: str, size: float, *, align: str = "left") -> None:
    """Draw ``text`` on a reportlab canvas at (x, y) with the fallback for characters the main font lacks;
    ``align``: ``left``, ``centre`` or ``right`` of x."""
    if align == "centre":
        x -= text_width(text, size) / 2
    elif align == "right":
        x -= text_width(text, size)
    for face, run in font_runs(text):
        canvas.setFont(face.name, size)
        canvas.drawString(x, y, run)
        x += pdfmetrics.stringWidth(run, face.name, size)
