"""The seal check trusts the centre's seal only, and consults the CA's CRL (issue 17 item 9).

Before the fix the seal check accepted a certificate sealed by any holder the same CA certified,
and consulted no revocation. Now the sandbox's CA publishes a CRL on the centre's (loopback) URL,
named in the CRL distribution point of every seal certificate it issues; revoking the seal puts it
on the CRL; and the seal check (``sdk.certificates.verify_seal`` with the CRLs the seal names,
``fetch_seal_crls``) refuses a revoked seal and a seal held by someone other than the bundle's centre.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandbox import certificates as certs
from sandbox.pki import CentreKeys, crl_url_of
from sdk.certificates import CertificateRejected, TrustAnchors, fetch_seal_crls, verify_seal
from sdk.models import CertificateMetadata
from tests import factories as f
from tests.sandbox.conftest import Bank, Running, lodge, pay_and_finish


def _trust(sandbox: Running, name: str | None = None) -> TrustAnchors:
    keys = sandbox.centre.keys
    return TrustAnchors(seal_ca_pem=keys.ca_pem, centre_key_id=keys.centre_key_id,
                        centre_key=keys.centre_jwk.model_dump(exclude_none=True),
                        centre_name=name or sandbox.centre.name)  # fmt: skip


def _issued(sandbox: Running, bank: Bank, reference: str) -> tuple[bytes, CertificateMetadata]:
    record = pay_and_finish(bank, lodge(bank, f.application_dict("mortgage_first", reference, n=7, complete=True)))
    cid = record.certificate_ids[0]
    meta = bank.client.certificates.get(cid).metadata
    return bank.client.certificates.download(cid, expected_sha256=meta.sha256), meta


def test_the_seal_names_a_crl_that_is_consulted_and_a_revoked_seal_is_refused(sandbox: Running, bank: Bank) -> None:
    pdf, meta = _issued(sandbox, bank, "SEAL-CRL-1")
    url = crl_url_of(sandbox.centre.keys.seal_cert)
    assert url == f"{sandbox.url}/pki/ca.crl"
    crls = fetch_seal_crls(pdf)
    assert crls is not None and len(crls) == 1
    crl = x509.load_der_x509_crl(crls[0])
    assert crl.is_signature_valid(sandbox.centre.keys.ca_cert.public_key())  # type: ignore[arg-type]
    verify_seal(pdf, meta, _trust(sandbox), crls=crls)  # genuine: accepted

    token = sandbox.centre.create_admin_token("seal")
    with httpx.Client(base_url=sandbox.url) as http:
        revoked = http.post("/admin/v1/seal/revoke", json={"reason": "印章私钥泄露"},
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert revoked.status_code == 200
    crls = fetch_seal_crls(pdf)
    assert crls is not None
    serials = {r.serial_number for r in x509.load_der_x509_crl(crls[0])}
    assert int(revoked.json()["revoked_serial"]) in serials
    with pytest.raises(CertificateRejected) as exc:
        verify_seal(pdf, meta, _trust(sandbox), crls=crls)
    assert "revoked" in str(exc.value) or "CRL" in str(exc.value)

    # a certificate issued after the revocation carries the new seal, which the CRL vouches for
    pdf2, meta2 = _issued(sandbox, bank, "SEAL-CRL-2")
    verify_seal(pdf2, meta2, _trust(sandbox), crls=fetch_seal_crls(pdf2))


def test_a_seal_by_another_holder_under_the_same_ca_is_refused(sandbox: Running, bank: Bank) -> None:
    pdf, meta = _issued(sandbox, bank, "SEAL-HOLDER")
    keys = sandbox.centre.keys
    # the same CA certifies another holder's seal (another centre, or anyone the CA issued to)
    other_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    other_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "某某公司"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "某某公司 合同专用章")]))
        .issuer_name(keys.ca_cert.subject)
        .public_key(other_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(keys.ca_key.public_key()), critical=False)
        .sign(keys.ca_key, hashes.SHA256())
    )
    impostor = CentreKeys(keys.ca_key, keys.ca_cert, other_key, other_cert, keys.centre_key, keys.suite)
    forged = certs.seal_pdf(certs.render_pdf(meta, authority=sandbox.centre.name), impostor,
                            authority=sandbox.centre.name)  # fmt: skip
    forged_meta = meta.model_copy(update={"sha256": hashlib.sha256(forged).hexdigest()})
    with pytest.raises(CertificateRejected) as exc:
        verify_seal(forged, forged_meta, _trust(sandbox))
    assert "not the centre's" in str(exc.value)
    verify_seal(pdf, meta, _trust(sandbox))
