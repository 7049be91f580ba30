"""SM2 X.509 (:mod:`sdk.gm.x509`): PKCS#10 requests, certificates, CRLs and pyhanko-certvalidator
path validation, each checked by our code and by the OpenSSL 3 command line.

OpenSSL 3 gives its distinguishing id (``-vfyopt distid:…``) only to the request or the leaf
certificate it checks; a CA certificate's or a CRL's SM2 signature it checks with an empty id
(openssl/openssl#23471, #32744). So the CRL we sign with the GM/T 0009 id is checked with
``openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:…`` over its tbsCertList, and
``openssl verify -crl_check`` runs on a CRL signed with the id OpenSSL uses (empty).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.exceptions import InvalidSignature
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import ExpiredError, PathBuildingError, PathValidationError, RevokedError

from sdk.gm.sm2 import DEFAULT_USER_ID, Sm2PrivateKey, load_pem_private_key
from sdk.gm.x509 import (
    SM2_WITH_SM3,
    Revoked,
    build_crl,
    build_request,
    certificate_public_key,
    issue_certificate,
    key_identifier,
    load_certificate,
    load_crl,
    load_request,
    request_public_key,
    revoked_serials,
    to_pem,
    validation_context,
    verify_certificate,
    verify_crl,
    verify_request,
)

OPENSSL = shutil.which("openssl")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DISTID = "distid:" + DEFAULT_USER_ID.decode()
CA_NAME = {"country_name": "CN", "organization_name": "测试不动产登记中心", "common_name": "RegBridge Sandbox SM2 CA"}
BANK_NAME = {"country_name": "CN", "organization_name": "某某银行股份有限公司", "common_name": "bank-320100-001"}


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL, "the openssl command line is part of the build environment (make system-deps)"
    return subprocess.run([OPENSSL, *args], capture_output=True, timeout=30, check=False, text=True)


class Pki:
    """A CA, a bank key with its request and certificate (serial 42), and CRLs."""

    def __init__(self, *, ca_user_id: bytes = DEFAULT_USER_ID) -> None:
        self.ca_key = Sm2PrivateKey.generate(ca_user_id)
        self.ca = issue_certificate(
            subject=CA_NAME,
            public_key=self.ca_key.public,
            issuer_key=self.ca_key,
            not_before=NOW - dt.timedelta(days=1),
            not_after=NOW + dt.timedelta(days=3650),
            ca=True,
            path_length=0,
        )
        self.bank_key = Sm2PrivateKey.generate()
        self.request = build_request(self.bank_key, BANK_NAME)
        self.bank = self.issue(serial=42)

    def issue(self, *, serial: int, not_after: dt.datetime | None = None) -> bytes:
        parsed = verify_request(self.request)
        return issue_certificate(
            subject=parsed["certification_request_info"]["subject"],
            public_key=request_public_key(parsed),
            issuer_key=self.ca_key,
            issuer=self.ca,
            serial=serial,
            not_before=NOW - dt.timedelta(hours=1),
            not_after=not_after or NOW + dt.timedelta(days=365),
            crl_url="http://127.0.0.1:8080/pki/banks.crl",
        )

    def crl(self, revoked: list[int], number: int = 1) -> bytes:
        return build_crl(
            issuer_key=self.ca_key,
            issuer=self.ca,
            revoked=[Revoked(serial, NOW - dt.timedelta(minutes=5), "key_compromise") for serial in revoked],
            this_update=NOW - dt.timedelta(minutes=1),
            next_update=NOW + dt.timedelta(days=1),
            number=number,
        )


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _write(tmp: Path, **files: bytes) -> dict[str, str]:
    paths = {}
    for name, der in files.items():
        (tmp / f"{name}.pem").write_bytes(to_pem(der))
        paths[name] = str(tmp / f"{name}.pem")
    return paths


# --- our code: round trips and refusals -------------------------------------------------------------


def test_request_round_trip_and_tampering(pki: Pki) -> None:
    parsed = verify_request(pki.request)
    assert parsed["signature_algorithm"]["algorithm"].dotted == SM2_WITH_SM3
    assert parsed["certification_request_info"]["subject"].native["organization_name"] == "某某银行股份有限公司"
    assert request_public_key(pki.request).raw == pki.bank_key.public.raw
    tampered = bytearray(pki.request)
    tampered[tampered.index(b"bank-320100-001")] ^= 1
    with pytest.raises(InvalidSignature):
        verify_request(bytes(tampered))
    with pytest.raises(InvalidSignature):
        verify_request(pki.request, user_id=b"ALICE123@YAHOO.COM")
    with pytest.raises(ValueError, match="not a PKCS#10"):
        verify_request(b"not a request")


def test_certificates_carry_the_profile_and_verify_by_their_issuer(pki: Pki) -> None:
    ca, bank = load_certificate(pki.ca), load_certificate(pki.bank)
    verify_certificate(pki.ca, pki.ca)
    verify_certificate(pki.bank, pki.ca)
    assert ca.ca and ca.max_path_length == 0 and ca.key_usage_value.native == {"key_cert_sign", "crl_sign"}
    assert not bank.ca and bank.key_usage_value.native == {"digital_signature", "non_repudiation"}
    assert bank.serial_number == 42 and bank.issuer == ca.subject
    assert bank.key_identifier == key_identifier(pki.bank_key.public)
    assert bank.authority_key_identifier == ca.key_identifier == key_identifier(pki.ca_key.public)
    assert bank.crl_distribution_points[0]["distribution_point"].native == ["http://127.0.0.1:8080/pki/banks.crl"]
    assert certificate_public_key(pki.bank).raw == pki.bank_key.public.raw
    same_name = Pki()  # another CA key under the same name: names chain, the signature does not
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_certificate(pki.bank, same_name.ca)
    other_key = Sm2PrivateKey.generate()
    other_ca = issue_certificate(
        subject={"common_name": "Another CA"},
        public_key=other_key.public,
        issuer_key=other_key,
        not_before=NOW,
        not_after=NOW + dt.timedelta(days=1),
        ca=True,
    )
    with pytest.raises(InvalidSignature, match="issuer"):
        verify_certificate(pki.bank, other_ca)


def test_issuance_refuses_inconsistent_input(pki: Pki) -> None:
    with pytest.raises(ValueError, match="self-signed"):
        issue_certificate(
            subject=CA_NAME,
            public_key=pki.bank_key.public,
            issuer_key=pki.ca_key,
            not_before=NOW,
            not_after=NOW + dt.timedelta(days=1),
        )
    with pytest.raises(ValueError, match="not a CA"):
        issue_certificate(
            subject=BANK_NAME,
            public_key=pki.bank_key.public,
            issuer_key=pki.bank_key,
            issuer=pki.bank,
            not_before=NOW,
            not_after=NOW + dt.timedelta(days=1),
        )
    with pytest.raises(ValueError, match="not the issuer certificate's key"):
        issue_certificate(
            subject=BANK_NAME,
            public_key=pki.bank_key.public,
            issuer_key=pki.bank_key,
            issuer=pki.ca,
            not_before=NOW,
            not_after=NOW + dt.timedelta(days=1),
        )
    with pytest.raises(ValueError, match="after"):
        issue_certificate(
            subject=BANK_NAME,
            public_key=pki.bank_key.public,
            issuer_key=pki.ca_key,
            issuer=pki.ca,
            not_before=NOW,
            not_after=NOW,
        )
    with pytest.raises(ValueError, match="timezone"):
        issue_certificate(
            subject=BANK_NAME,
            public_key=pki.bank_key.public,
            issuer_key=pki.ca_key,
            issuer=pki.ca,
            not_before=NOW.replace(tzinfo=None),
            not_after=NOW + dt.timedelta(days=1),
        )


def test_crl_round_trip(pki: Pki) -> None:
    crl = pki.crl([42, 7], number=3)
    parsed = verify_crl(crl, pki.ca)
    assert revoked_serials(crl) == {42, 7}
    assert parsed.crl_number_value.native == 3
    assert parsed.authority_key_identifier == key_identifier(pki.ca_key.public)
    assert revoked_serials(pki.crl([])) == set()
    with pytest.raises(InvalidSignature):
        verify_crl(crl, Pki().ca)
    tampered = bytearray(crl)
    tampered[-80] ^= 1
    with pytest.raises((InvalidSignature, ValueError)):
        verify_crl(bytes(tampered), pki.ca)
    assert load_crl(to_pem(crl)).dump() == crl


# --- pyhanko-certvalidator ---------------------------------------------------------------------------


def _validate(
    pki: Pki, cert: bytes, *, crls: list[bytes], moment: dt.datetime | None = None, roots: list[bytes] | None = None
) -> object:
    context = validation_context(roots or [pki.ca], crls=crls, moment=moment)
    validator = CertificateValidator(asn1_x509.Certificate.load(cert), validation_context=context)
    return asyncio.run(validator.async_validate_usage({"digital_signature"}))  # type: ignore[no-untyped-call]


def test_certvalidator_builds_and_checks_sm2_paths(pki: Pki) -> None:
    path = _validate(pki, pki.bank, crls=[pki.crl([7])])
    assert [c.serial_number for c in path] == [load_certificate(pki.ca).serial_number, 42]  # type: ignore[attr-defined]
    with pytest.raises(RevokedError, match="revoked"):
        _validate(pki, pki.bank, crls=[pki.crl([42])])
    with pytest.raises(ExpiredError):
        _validate(
            pki,
            pki.issue(serial=43, not_after=NOW + dt.timedelta(days=1)),
            crls=[pki.crl([])],
            moment=NOW + dt.timedelta(days=2),
        )
    with pytest.raises(PathBuildingError):
        _validate(pki, pki.bank, crls=[pki.crl([])], roots=[Pki().ca])


def test_certvalidator_refuses_a_bad_sm2_signature_and_a_crl_by_another_key(pki: Pki) -> None:
    bank = load_certificate(pki.bank)
    forged = asn1_x509.Certificate(
        {
            "tbs_certificate": bank["tbs_certificate"],
            "signature_algorithm": bank["signature_algorithm"],
            "signature_value": Sm2PrivateKey.generate().sign(bank["tbs_certificate"].dump()),
        }
    ).dump()
    with pytest.raises(PathValidationError, match="signature"):
        _validate(pki, forged, crls=[pki.crl([])])
    impostor = Pki()  # the CRL names pki's CA but is signed by another key
    foreign = build_crl(
        issuer_key=pki.ca_key,
        issuer=pki.ca,
        revoked=[],
        this_update=NOW - dt.timedelta(minutes=1),
        next_update=NOW + dt.timedelta(days=1),
        number=1,
    )
    forged_crl = load_crl(foreign)
    forged_crl = type(forged_crl)(
        {
            "tbs_cert_list": forged_crl["tbs_cert_list"],
            "signature_algorithm": forged_crl["signature_algorithm"],
            "signature": impostor.ca_key.sign(forged_crl["tbs_cert_list"].dump()),
        }
    )
    with pytest.raises(PathValidationError):
        _validate(pki, pki.bank, crls=[forged_crl.dump()])


# --- the OpenSSL 3 command line ------------------------------------------------------------------


def test_openssl_accepts_our_request_and_certificate(pki: Pki, tmp_path: Path) -> None:
    paths = _write(tmp_path, req=pki.request, ca=pki.ca, bank=pki.bank)
    ok = openssl("req", "-verify", "-noout", "-in", paths["req"], "-vfyopt", DISTID)
    assert ok.returncode == 0 and "verify OK" in ok.stdout + ok.stderr
    wrong = openssl("req", "-verify", "-noout", "-in", paths["req"], "-vfyopt", "distid:ALICE123@YAHOO.COM")
    assert "verify failure" in wrong.stdout + wrong.stderr
    verified = openssl("verify", "-vfyopt", DISTID, "-CAfile", paths["ca"], paths["bank"])
    assert verified.returncode == 0, verified.stderr
    text = openssl("x509", "-in", paths["bank"], "-noout", "-text").stdout
    for part in (
        "Signature Algorithm: SM2-with-SM3",
        "ASN1 OID: SM2",
        "CA:FALSE",
        "Digital Signature, Non Repudiation",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "URI:http://127.0.0.1:8080/pki/banks.crl",
        "Serial Number: 42",
    ):
        assert part in text, part
    ca_text = openssl("x509", "-in", paths["ca"], "-noout", "-text").stdout
    assert "CA:TRUE, pathlen:0" in ca_text and "Certificate Sign, CRL Sign" in ca_text


def test_openssl_checks_our_crl_signature_with_the_gmt_id(pki: Pki, tmp_path: Path) -> None:
    crl = load_crl(pki.crl([42]))
    (tmp_path / "tbs").write_bytes(crl["tbs_cert_list"].dump())
    (tmp_path / "sig").write_bytes(crl["signature"].native)
    (tmp_path / "pub.pem").write_bytes(pki.ca_key.public.to_pem())
    verify = [
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(tmp_path / "pub.pem"),
        "-rawin",
        "-digest",
        "sm3",
        "-in",
        str(tmp_path / "tbs"),
        "-sigfile",
        str(tmp_path / "sig"),
    ]
    assert openssl(*verify, "-pkeyopt", DISTID).returncode == 0
    assert openssl(*verify, "-pkeyopt", "distid:ALICE123@YAHOO.COM").returncode != 0
    listed = openssl("crl", "-in", _write(tmp_path, crl=crl.dump())["crl"], "-noout", "-text").stdout
    assert "Serial Number: 2A" in listed and "Key Compromise" in listed and "X509v3 CRL Number" in listed


def test_openssl_verify_crl_check_accepts_our_chain_and_crl(tmp_path: Path) -> None:
    """``openssl verify -crl_check``: OpenSSL 3 checks the CRL's signature with an empty id, so this
    CA signs with that id (the chain and CRL structure are what is under test here)."""
    pki = Pki(ca_user_id=b"")
    paths = _write(tmp_path, ca=pki.ca, bank=pki.bank, good=pki.crl([7]), bad=pki.crl([42], number=2))
    for cert, expected in ((pki.ca, pki.ca_key), (pki.bank, pki.ca_key)):
        verify_certificate(cert, pki.ca, user_id=expected.public.user_id)
    ok = openssl("verify", "-CAfile", paths["ca"], "-crl_check", "-CRLfile", paths["good"], paths["bank"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    revoked = openssl("verify", "-CAfile", paths["ca"], "-crl_check", "-CRLfile", paths["bad"], paths["bank"])
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr
    missing = openssl("verify", "-CAfile", paths["ca"], "-crl_check", paths["bank"])
    assert missing.returncode != 0 and "unable to get certificate CRL" in missing.stdout + missing.stderr


def test_openssl_made_request_and_certificate_verify_here(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert openssl("genpkey", "-algorithm", "SM2", "-out", str(key)).returncode == 0
    made = openssl(
        "req",
        "-new",
        "-key",
        str(key),
        "-subj",
        "/C=CN/O=Bank/CN=bank-openssl",
        "-sm3",
        "-sigopt",
        DISTID,
        "-out",
        str(tmp_path / "r.pem"),
    )
    assert made.returncode == 0, made.stderr
    request = (tmp_path / "r.pem").read_bytes()
    verify_request(request)
    assert load_request(request)["certification_request_info"]["subject"].native["common_name"] == "bank-openssl"
    signed = openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(key),
        "-subj",
        "/CN=openssl-ca",
        "-sm3",
        "-days",
        "2",
        "-sigopt",
        DISTID,
        "-out",
        str(tmp_path / "c.pem"),
    )
    assert signed.returncode == 0, signed.stderr
    cert = (tmp_path / "c.pem").read_bytes()
    verify_certificate(cert, cert)
    assert certificate_public_key(cert).raw == load_pem_private_key(key.read_bytes()).public.raw


def test_a_request_signed_with_another_user_id_is_refused_naming_the_expected_one() -> None:
    """break19: a bank whose SM2 user id is not the centre's got only "does not verify with its own key"."""
    from sdk import csr
    from sdk.signing import KeySigner

    key = Sm2PrivateKey.generate(b"ALICE123@YAHOO.COM")
    request = csr.build_request(KeySigner("k", key), {"common_name": "agent"})
    assert csr.verify_request(request, sm2_user_id=b"ALICE123@YAHOO.COM")
    with pytest.raises(ValueError, match="user id '1234567812345678'"):
        csr.verify_request(request)
