"""The certificate PDF: sealed (PAdES) by a seal that chains to the centre's CA, checked by
independent validators, and its Chinese fields readable back out of it."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from sandbox.pki import CentreKeys
from tests import factories as f

from .conftest import Bank, Running, lodge, pay_and_finish

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """A poppler tool: `make test` installs poppler-utils first (`make system-deps`)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for the certificate tests: run `make system-deps` (Debian: poppler-utils)")
    return path


@pytest.fixture
def issued(sandbox: Running, bank: Bank) -> tuple[bytes, object]:
    data = f.application_dict("mortgage_first", "LN-PDF", n=7, complete=True)  # unit 7: two co-owners
    done = pay_and_finish(bank, lodge(bank, data))
    meta = bank.client.certificates.get(done.certificate_ids[0]).metadata
    return bank.client.certificates.download(meta.certificate_id, expected_sha256=meta.sha256), meta


def _ca(keys: CentreKeys) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(keys.ca_cert.public_bytes(serialization.Encoding.DER))


def test_pyhanko_validates_the_seal_given_only_the_centre_ca(sandbox: Running, issued: tuple[bytes, object]) -> None:
    pdf, _ = issued
    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[_ca(sandbox.centre.keys)]))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()  # type: ignore[no-untyped-call]
    assert "不动产登记专用章" in status.signing_cert.subject.human_friendly

    # another CA does not vouch for it
    stranger = validate_pdf_signature(sig, ValidationContext(trust_roots=[_ca(CentreKeys.generate("别的中心"))]))
    assert stranger.intact and not stranger.trusted

    # one byte changed inside the signed range breaks it
    signed_range = sig.sig_object["/ByteRange"]
    at = signed_range[0] + signed_range[1] // 2
    tampered = pdf[:at] + bytes([pdf[at] ^ 0x01]) + pdf[at + 1 :]
    broken = validate_pdf_signature(
        PdfFileReader(io.BytesIO(tampered)).embedded_signatures[0],
        ValidationContext(trust_roots=[_ca(sandbox.centre.keys)]),
    )
    assert not broken.intact


def test_pdfsig_finds_the_signature_valid(tmp_path: Path, issued: tuple[bytes, object]) -> None:
    pdf, _ = issued
    path = tmp_path / "cert.pdf"
    path.write_bytes(pdf)
    out = subprocess.run([tool("pdfsig"), str(path)], capture_output=True, text=True, timeout=60)
    assert "Signature is Valid" in out.stdout, out.stdout + out.stderr
    tampered = bytearray(pdf)
    i = pdf.index(b"%PDF") + 200
    tampered[i] ^= 0x01
    path.write_bytes(bytes(tampered))
    bad = subprocess.run([tool("pdfsig"), str(path)], capture_output=True, text=True, timeout=60)
    assert "Signature is Valid" not in bad.stdout


def test_pdftotext_reads_every_field_back(tmp_path: Path, issued: tuple[bytes, object]) -> None:
    pdf, meta = issued
    path = tmp_path / "cert.pdf"
    path.write_bytes(pdf)
    text = subprocess.run([tool("pdftotext"), str(path), "-"], capture_output=True, text=True, timeout=60).stdout
    flat = "".join(text.split())
    for value in (
        "不动产登记证明(电子)",
        meta.certificate_number,  # type: ignore[attr-defined]
        meta.right_or_matter,  # type: ignore[attr-defined]
        *meta.right_holders,  # type: ignore[attr-defined]
        *meta.obligors,  # type: ignore[attr-defined]
        *meta.unit_ids,  # type: ignore[attr-defined]
        meta.licence_id,  # type: ignore[attr-defined]
        meta.serial_number,  # type: ignore[attr-defined]
        "被担保主债权数额",
        "登记机构",
        "颁发时间",
    ):
        assert "".join(value.split()) in flat, value
    assert len(meta.obligors) == 2  # type: ignore[attr-defined]


def test_first_page_renders_and_a_sample_is_kept_in_docs(tmp_path: Path, issued: tuple[bytes, object]) -> None:
    pdf, _ = issued
    path = tmp_path / "cert.pdf"
    path.write_bytes(pdf)
    subprocess.run([tool("pdftoppm"), "-png", "-r", "60", "-singlefile", str(path), str(tmp_path / "page")], check=True)
    rendered = (tmp_path / "page.png").read_bytes()
    assert rendered.startswith(b"\x89PNG") and len(rendered) > 10_000
    sample = ROOT / "docs" / "certificate-sample.png"
    assert sample.read_bytes().startswith(b"\x89PNG"), "run: make docs-certificate"
