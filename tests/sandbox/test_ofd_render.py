"""An OFD certificate drawn from its file alone (sandbox.ofd_render): the text where the writer put it,
the seal picture at its StampAnnot; the sample kept in docs/ (make docs-certificate-ofd)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image

from sandbox.cli import issue_sample
from sandbox.ofd_render import ofd_to_pdf
from sdk.ofd.reader import read_ofd

ROOT = Path(__file__).resolve().parents[2]


def _pixels(image: Image.Image) -> list[tuple[int, int, int]]:
    data = image.tobytes()
    return [(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)]


def test_an_ofd_certificate_is_drawn_from_its_file_alone(tmp_path: Path) -> None:
    ofd, meta, _ = issue_sample("gm")
    (tmp_path / "c.pdf").write_bytes(ofd_to_pdf(ofd))
    text = subprocess.run(["pdftotext", str(tmp_path / "c.pdf"), "-"], check=True, capture_output=True).stdout.decode()
    flat = "".join(text.split())
    for value in (meta.certificate_number, meta.serial_number, *meta.obligors, *meta.unit_ids, "不动产登记证明(电子)"):
        assert value in flat, value
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-singlefile", str(tmp_path / "c.pdf"), str(tmp_path / "p")],
                   check=True)  # fmt: skip
    image = Image.open(tmp_path / "p.png").convert("RGB")
    width, height = image.size
    annot = read_ofd(ofd).signatures[0].stamp_annots[0]
    x, y, w, h = annot.boundary  # the seal picture is drawn there: red pixels inside, none in the page's margin
    box = (int(x / 210 * width), int(y / 297 * height), int((x + w) / 210 * width), int((y + h) / 297 * height))
    red = [p for p in _pixels(image.crop(box)) if p[0] > 150 and p[1] < 90 and p[2] < 90]
    assert len(red) > 50
    margin = [p for p in _pixels(image.crop((0, 0, width, int(height * 0.05)))) if p[0] > 150 and p[1] < 90]
    assert not margin


def test_the_sample_ofd_page_is_kept_in_docs() -> None:
    sample = ROOT / "docs" / "certificate-sample-ofd.png"
    assert sample.read_bytes().startswith(b"\x89PNG"), "run: make docs-certificate-ofd"
    assert read_ofd((ROOT / "docs" / "certificate-sample-ofd.ofd").read_bytes()).signatures
