"""The CJK font the PDFs use (certificates, transmittal lists): an embedded TrueType font when
the machine has one (WenQuanYi from Debian, or ``$REGBRIDGE_CJK_FONT``), else reportlab's
standard ``STSong-Light``."""

from __future__ import annotations

import os
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont

__all__ = ["FONT_CANDIDATES", "cjk_font"]

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "C:/Windows/Fonts/simsun.ttc",
    "C:/Windows/Fonts/simhei.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
)
_font_name: str | None = None


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
