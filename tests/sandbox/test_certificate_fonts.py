"""Names outside GBK (𠮷 U+20BB7, 䶮 U+4DAE) are drawn, in both certificate formats: WenQuanYi lacks
them, HanaMinA (fonts-hanazono) draws them (issue 20 item 1: the PDF used to drop them silently)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sandbox.certificates import render_pdf
from sandbox.certificates_ofd import render_ofd
from sandbox.cli import issue_sample
from sandbox.seals import SealOffice
from sdk.certificates import pdf_text
from sdk.ofd.reader import read_ofd
from sdk.support.fonts import fallback_font, font_face

NAMES = ["王𠮷", "李䶮"]


def test_the_main_font_lacks_them_and_the_fallback_has_them() -> None:
    assert not font_face().covers("𠮷") and not font_face().covers("䶮")
    fallback = fallback_font()
    assert fallback is not None and fallback.covers("𠮷") and fallback.covers("䶮")


def test_pdf_and_ofd_show_characters_outside_gbk(tmp_path: Path) -> None:
    _, meta, centre = issue_sample("intl")
    meta = meta.model_copy(update={"obligors": NAMES})
    pdf = render_pdf(meta, authority=centre.name)
    (tmp_path / "c.pdf").write_bytes(pdf)
    pdftotext = shutil.which("pdftotext")
    assert pdftotext is not None
    rendered = subprocess.run([pdftotext, str(tmp_path / "c.pdf"), "-"], check=True, capture_output=True).stdout
    for name in NAMES:
        assert name in rendered.decode() and name in "".join(pdf_text(pdf).split())
    fonts = subprocess.run(["pdffonts", str(tmp_path / "c.pdf")], check=True, capture_output=True, text=True).stdout
    assert "HanaMinA" in fonts  # the fallback is embedded, so a viewer without it draws them too

    ofd = render_ofd(meta, authority=centre.name, seals=SealOffice.generate(centre.name))
    doc = read_ofd(ofd)
    assert "义务人王𠮷、李䶮" in doc.text
    fallback = fallback_font()
    assert fallback is not None
    for ch in "𠮷䶮":
        run = next(t for t in doc.pages[0].texts if ch in t.text)
        assert doc.fonts[run.font_id][1] == fallback.family  # drawn in the font that has it
    main_run = next(t for t in doc.pages[0].texts if "义务人" in t.text)
    assert doc.fonts[main_run.font_id][1] == font_face().family
