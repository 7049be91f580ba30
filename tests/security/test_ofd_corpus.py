"""The OFD corpus (issue 20): every sandbox-issued OFD certificate verifies; each hostile variant is
refused with its own reason; a valid GM/T 0031 (v1) seal is accepted; and OpenSSL 3's command line
checks one sandbox signature independently (SM3 of Signature.xml is the signed hash; the SM2
signature verifies with the certificate inside).

Sizes: ``make test`` issues 2 certificates and runs 21 hostile variants; ``make proof``
(``REGBRIDGE_PROOF=full``) issues 12 certificates and the same variants.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from sandbox.certificates_ofd import render_ofd
from sandbox.cli import issue_sample
from sandbox.ofd_writer import make_seal, zip_package
from sandbox.seals import SealOffice, seal_picture
from sdk.certificates import CertificateRejected, TrustAnchors
from sdk.gm import sm3
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.gm.x509 import issue_certificate, load_certificate, to_pem
from sdk.models import CertificateMetadata
from sdk.ofd import ses
from sdk.ofd.reader import read_ofd
from sdk.ofd.verify import certificate_expectations, verify_ofd
from tests.proof import size

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    ofd: bytes
    meta: CertificateMetadata
    centre: Any
    trust: TrustAnchors

    @property
    def seals(self) -> SealOffice:
        seals: SealOffice = self.centre.seals
        return seals

    def crls(self) -> list[bytes]:
        return [self.seals.crl(self.centre.store)]

    def verify(self, data: bytes, meta: CertificateMetadata | None = None) -> None:
        meta = meta or self.meta
        sha = hashlib.sha256(data).hexdigest()  # hostile variants are judged on their content, not the file hash
        verify_ofd(data, self.trust, expected_sha256=sha, expected_text=certificate_expectations(meta),
                   crls=self.crls())  # fmt: skip

    def files(self) -> dict[str, bytes]:
        return dict(read_ofd(self.ofd).files)

    def unsigned(self) -> dict[str, bytes]:
        """The package as it was before sealing (the signature's files dropped, Signatures.xml empty)."""
        files = {k: v for k, v in self.files().items() if not k.startswith("Doc_0/Signs/Sign_")}
        listing = etree.fromstring(files["Doc_0/Signs/Signatures.xml"])
        for node in listing.findall("{http://www.ofdspec.org/2016}Signature"):
            listing.remove(node)
        files["Doc_0/Signs/Signatures.xml"] = etree.tostring(listing, xml_declaration=True, encoding="UTF-8")
        return files

    def reseal(self, **overrides: Any) -> bytes:
        page = int(read_ofd(self.ofd).pages[0].id)
        stamp_page = overrides.pop("stamp_page", page)
        return zip_package(self.seals.seal(self.unsigned(), stamp_page=stamp_page, stamp_box=(130, 200, 40, 40),
                                           **overrides))  # fmt: skip


def _issue() -> Issued:
    ofd, meta, centre = issue_sample("gm")
    iid = centre.store.one("SELECT id FROM institutions")["id"]
    bundle = centre.enrolment_bundle(iid, "http://127.0.0.1:8600", valid_for=dt.timedelta(days=1))["bundle"]
    trust = TrustAnchors(
        seal_ca_pem=bundle["trust"]["seal_ca_pem"],
        centre_key_id=bundle["trust"]["centre_key_id"],
        centre_key=bundle["trust"]["centre_key"],
        centre_name=centre.name,
    )
    return Issued(ofd, meta, centre, trust)


@pytest.fixture(scope="module")
def issued() -> Issued:
    return _issue()


def test_every_sandbox_issued_ofd_verifies(issued: Issued) -> None:
    corpus = [issued] + [_issue() for _ in range(size(1, 11))]
    for item in corpus:
        assert item.meta.media_type == "application/ofd"
        verify_ofd(item.ofd, item.trust, expected_sha256=item.meta.sha256,
                   expected_text=certificate_expectations(item.meta), crls=item.crls())  # fmt: skip
        doc = read_ofd(item.ofd)
        assert doc.custom_data["证照标识"] == item.meta.licence_id
        assert item.meta.certificate_number in doc.text


def _rezip(files: dict[str, bytes]) -> bytes:
    return zip_package(files)


def _other_office(name: str = "长丰县不动产登记中心") -> SealOffice:
    return SealOffice.generate(name)


def _page_changed(it: Issued) -> bytes:
    files = it.files()
    page = "Doc_0/Pages/Page_0/Content.xml"
    files[page] = files[page].replace(b"1,500,000.00", b"9,500,000.00")
    return _rezip(files)


def _resource_added(it: Issued) -> bytes:
    files = it.files()
    files["Doc_0/Res/image_99.png"] = seal_picture("伪造")
    return _rezip(files)


def _file_removed(it: Issued) -> bytes:
    files = it.files()
    del files["Doc_0/Signs/Sign_0/Seal.esl"]
    return _rezip(files)


def _reference_dropped(it: Issued) -> bytes:
    files = it.files()
    path = "Doc_0/Signs/Sign_0/Signature.xml"
    root = etree.fromstring(files[path])
    ns = {"ofd": "http://www.ofdspec.org/2016"}
    ref = root.find(".//ofd:Reference[@FileRef='/Doc_0/PublicRes.xml']", ns)
    ref.getparent().remove(ref)
    files[path] = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return _rezip(files)


def _other_ca(it: Issued) -> bytes:
    other = _other_office()
    page = int(read_ofd(it.ofd).pages[0].id)
    return zip_package(other.seal(it.unsigned(), stamp_page=page, stamp_box=(130, 200, 40, 40)))


def _expired_seal(it: Issued) -> bytes:
    seal = it.seals.make_seal(valid_start=NOW - dt.timedelta(days=400), valid_end=NOW - dt.timedelta(days=30))
    return it.reseal(seal=seal)


def _picture_swapped(it: Issued) -> bytes:
    files = it.files()
    swapped = it.seals.make_seal(valid_start=NOW - dt.timedelta(days=1), valid_end=NOW + dt.timedelta(days=300),
                                 picture=seal_picture("另一个机构"))  # fmt: skip
    files["Doc_0/Signs/Sign_0/Seal.esl"] = swapped
    return _rezip(files)


def _seal_info_altered(it: Issued) -> bytes:
    seal = ses.SealV4.load(it.seals.seal_der)
    info = seal["e_seal_info"]
    info["property"]["valid_end"] = NOW + dt.timedelta(days=3650 * 3)  # the holder stretches its seal
    altered = ses.SealV4(
        {
            "e_seal_info": info,
            "cert": seal["cert"],
            "sign_alg_id": seal["sign_alg_id"],
            "signed_value": seal["signed_value"],
        }
    ).dump(force=True)
    return it.reseal(seal=altered)


def _text_disagrees(it: Issued) -> bytes:
    forged = it.meta.model_copy(update={"obligors": ["王五", *it.meta.obligors[1:]]})
    return render_ofd(forged, authority=it.centre.name, seals=it.seals)


def _signer_not_listed(it: Issued) -> bytes:
    key = Sm2PrivateKey.generate()
    cert = issue_certificate(
        subject={"country_name": "CN", "organization_name": it.centre.name, "common_name": "另一枚印章"},
        public_key=key.public, issuer_key=it.seals.ca_key, issuer=it.seals.ca_cert,
        not_before=NOW - dt.timedelta(minutes=5), not_after=NOW + dt.timedelta(days=30),
    )  # fmt: skip
    return it.reseal(signer_key=key, signer_cert=cert)


def _signature_altered(it: Issued) -> bytes:
    files = it.files()
    path = "Doc_0/Signs/Sign_0/SignedValue.dat"
    obj = ses.SignatureV4.load(files[path])
    other = Sm2PrivateKey.generate().sign(b"something else")
    obj["signature"] = other
    files[path] = obj.dump(force=True)
    return _rezip(files)


def _stamp_off_page(it: Issued) -> bytes:
    return it.reseal(stamp_page=9999)


def _maker_from_other_ca(it: Issued) -> bytes:
    other = _other_office()
    seal = make_seal(
        es_id="1", name="伪造", picture=seal_picture("伪造"), picture_size_mm=(40, 40),
        signer_certs=[it.seals.seal_cert], valid_start=NOW - dt.timedelta(days=1),
        valid_end=NOW + dt.timedelta(days=30), maker_key=other.maker_key, maker_cert=other.maker_cert,
    )  # fmt: skip
    return it.reseal(seal=seal)


def _other_holder(it: Issued) -> bytes:
    key = Sm2PrivateKey.generate()
    cert = issue_certificate(
        subject={"country_name": "CN", "organization_name": "某某公司", "common_name": "某某公司公章"},
        public_key=key.public, issuer_key=it.seals.ca_key, issuer=it.seals.ca_cert,
        not_before=NOW - dt.timedelta(minutes=5), not_after=NOW + dt.timedelta(days=30),
    )  # fmt: skip
    seal = it.seals.make_seal(valid_start=NOW - dt.timedelta(days=1), valid_end=NOW + dt.timedelta(days=30),
                              signer_cert=cert)  # fmt: skip
    return it.reseal(seal=seal, signer_key=key, signer_cert=cert)


def _path_escape(it: Issued) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, content in it.files().items():
            archive.writestr(name, content)
        archive.writestr("../../etc/cron.d/x", b"* * * * * root true")
    return buf.getvalue()


def _no_seal(it: Issued) -> bytes:
    return _rezip(it.unsigned())


def _sm3_replaced(it: Issued) -> bytes:
    files = it.files()
    path = "Doc_0/Signs/Sign_0/Signature.xml"
    files[path] = files[path].replace(ses.SM3_OID.encode(), b"2.16.840.1.101.3.4.2.1", 1)
    return _rezip(files)


def _ten_thousand_pages(it: Issued) -> bytes:
    files = it.files()
    doc = files["Doc_0/Document.xml"].decode()
    page = re.search(r"<ofd:Page [^>]*/>", doc)
    assert page is not None
    pages = "".join(page.group(0).replace('ID="', f'ID="9{i}', 1) for i in range(10_000))
    files["Doc_0/Document.xml"] = doc.replace(page.group(0), page.group(0) + pages).encode()
    return _rezip(files)


def _delta_repeat_bomb(it: Issued) -> bytes:
    files = it.files()
    page = "Doc_0/Pages/Page_0/Content.xml"
    files[page] = re.sub(rb'DeltaX="[^"]*"', b'DeltaX="g 5000000000 1"', files[page], count=1)
    return _rezip(files)


def _entity_expansion(it: Issued) -> bytes:
    files = it.files()
    page = "Doc_0/Pages/Page_0/Content.xml"
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    body = re.sub(rb"(<ofd:TextCode[^>]*>)", rb"\1&a9;", files[page].split(b"?>", 1)[1], count=1)
    files[page] = f'<?xml version="1.0"?><!DOCTYPE x [{entities}]>'.encode() + body
    return _rezip(files)


def _truncated(it: Issued) -> bytes:
    return it.ofd[: len(it.ofd) // 2]


#: name → (how the variant is made, the reason it must be refused with)
VARIANTS: dict[str, tuple[Callable[[Issued], bytes], str]] = {
    "a page changed": (_page_changed, "Doc_0/Pages/Page_0/Content.xml was changed after sealing"),
    "a resource added": (_resource_added, "Doc_0/Res/image_99.png was added after sealing"),
    "a sealed file removed": (_file_removed, "Seal.esl is listed by the seal but missing"),
    "a Signature.xml reference dropped": (_reference_dropped, "Signature.xml was changed after signing"),
    "a seal from another CA": (_other_ca, "the seal certificate does not chain to the centre's seal CA"),
    "an expired seal": (_expired_seal, "the seal was not valid when used"),
    "a seal whose picture was swapped": (_picture_swapped, "the seal's picture was swapped"),
    "SES_SealInfo altered after the maker signed": (_seal_info_altered, "SES_SealInfo was altered after its maker"),
    "text that disagrees with the metadata": (_text_disagrees, "the visible text does not show the 义务人"),
    "a signer the seal does not list": (_signer_not_listed, "not one of those the seal lists"),
    "an SM2 signature value swapped": (_signature_altered, "the SM2 signature does not verify"),
    "a seal stamped off the document's pages": (_stamp_off_page, "StampAnnot"),
    "a seal made by another CA's maker": (_maker_from_other_ca, "seal maker's certificate does not chain"),
    "a seal certificate of another holder": (_other_holder, "the seal is not the centre's"),
    "a ZIP entry escaping the package": (_path_escape, "is not a plain relative path"),
    "no seal at all": (_no_seal, "the OFD carries no seal"),
    "References digested with another algorithm": (_sm3_replaced, "the References are not checked with SM3"),
    # the reader's limits (break20): each refused at once, not after minutes and gigabytes
    "ten thousand pages": (_ten_thousand_pages, "lists 10001 pages, more than 200"),
    "a DeltaX repeat of five billion": (_delta_repeat_bomb, "at most 10000 advances per TextCode"),
    "a nested entity expansion": (_entity_expansion, "Content.xml is not well-formed XML"),
    "a file cut short": (_truncated, "not a ZIP package"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_hostile_variant_is_refused_with_its_own_reason(issued: Issued, name: str) -> None:
    make, reason = VARIANTS[name]
    with pytest.raises(CertificateRejected) as caught:
        issued.verify(make(issued))
    assert any(reason in r for r in caught.value.reasons), caught.value.reasons


def test_each_variant_has_a_reason_no_other_variant_is_named_by() -> None:
    reasons = [reason for _, reason in VARIANTS.values()]
    assert len(VARIANTS) >= 12
    assert len(set(reasons)) == len(reasons)


def test_revoked_seal_certificate_is_refused(issued: Issued) -> None:
    it = _issue()  # its own centre: the revocation must not touch the module's
    it.verify(it.ofd)
    it.seals.revoke_seal(it.centre.store, "key_compromise")
    with pytest.raises(CertificateRejected) as caught:
        it.verify(it.ofd)
    assert any("the seal certificate is revoked" in r for r in caught.value.reasons), caught.value.reasons


def test_v1_seal_from_older_systems_is_accepted(issued: Issued) -> None:
    seal = issued.seals.make_seal(valid_start=NOW - dt.timedelta(days=1), valid_end=NOW + dt.timedelta(days=30),
                                  version=1)  # fmt: skip
    data = issued.reseal(seal=seal)
    signature = read_ofd(data).signatures[0]
    assert ses.parse_signature(read_ofd(data).files[signature.signed_value_path]).version == 1
    issued.verify(data)
    # and a v1 seal altered after its maker signed is refused like a v4 one
    obj = ses.SealV1.load(seal)
    obj["eseal_info"]["property"]["name"] = "篡改的印章"
    with pytest.raises(CertificateRejected, match="SES_SealInfo was altered"):
        issued.verify(issued.reseal(seal=obj.dump(force=True)))


def test_openssl_checks_the_sandbox_signature_independently(issued: Issued, tmp_path: Path) -> None:
    doc = read_ofd(issued.ofd)
    signature = doc.signatures[0]
    parsed = ses.parse_signature(doc.files[signature.signed_value_path])
    (tmp_path / "Signature.xml").write_bytes(doc.files[signature.path])
    digest = subprocess.run(["openssl", "dgst", "-sm3", "-binary", str(tmp_path / "Signature.xml")],
                            check=True, capture_output=True).stdout  # fmt: skip
    assert digest == parsed.data_hash == sm3(doc.files[signature.path])
    (tmp_path / "signer.pem").write_bytes(to_pem(parsed.signer_cert))
    (tmp_path / "tbs.der").write_bytes(parsed.to_sign)
    (tmp_path / "sig.der").write_bytes(parsed.signature)
    subprocess.run(["openssl", "x509", "-in", str(tmp_path / "signer.pem"), "-pubkey", "-noout", "-out",
                    str(tmp_path / "signer.pub")], check=True)  # fmt: skip
    verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "signer.pub"), "-rawin",
              "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", str(tmp_path / "tbs.der"),
              "-sigfile", str(tmp_path / "sig.der")]  # fmt: skip
    result = subprocess.run(verify, capture_output=True, text=True)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stderr
    # the check can fail: the same command refuses a TBS_Sign one byte off
    (tmp_path / "tbs.der").write_bytes(parsed.to_sign[:-1] + bytes([parsed.to_sign[-1] ^ 1]))
    assert subprocess.run(verify, capture_output=True).returncode != 0
    assert load_certificate(parsed.signer_cert).subject.native["organization_name"] == issued.centre.name
