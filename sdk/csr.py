"""Centre-issued institution certificates (机构证书), the bank's side and the centre's checks:
PKCS#10 requests (RFC 2986) signed by any RegBridge :class:`~sdk.signing.Signer` — a key in
memory, in the OS keyring or inside a PKCS#11 token — and the X.509 certificate the centre answers.

The request's signature is the key's own: ``sm2-sm3`` keys sign with SM2-with-SM3
(``1.2.156.10197.1.501``, the key's user id; :mod:`sdk.gm.x509`), ``ecdsa-p256-sha256`` with
ecdsa-with-SHA256 (the signer's r‖s re-encoded as DER), ``ed25519`` with Ed25519 (RFC 8410). The
request is built with asn1crypto over the signer's ``sign``, so a key that never leaves its token
can still ask for a certificate. Needs the ``gm`` extra (asn1crypto); ``cryptography`` checks the
intl algorithms, GmSSL the SM2 ones.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass

from asn1crypto import csr, keys, pem, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .gm import x509 as gm_x509
from .gm.sm2 import DEFAULT_USER_ID, Sm2PublicKey
from .signing import PublicKey, Signer

__all__ = [
    "CertificateInfo",
    "CrlInfo",
    "build_request",
    "check_crl",
    "check_issued_certificate",
    "read_certificate",
    "spki_der",
    "verify_request",
]

_SIGNATURE_OIDS = {
    "sm2-sm3": gm_x509.SM2_WITH_SM3,
    "ecdsa-p256-sha256": "1.2.840.10045.4.3.2",  # ecdsa-with-SHA256
    "ed25519": "1.3.101.112",  # id-Ed25519 (RFC 8410)
}


def spki_der(public: PublicKey) -> bytes:
    """The SubjectPublicKeyInfo DER of a RegBridge public key (Ed25519, P-256 or SM2)."""
    if isinstance(public, Sm2PublicKey):
        return public.spki_der()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def build_request(signer: Signer, subject: Mapping[str, str]) -> str:
    """A PEM PKCS#10 request for ``signer``'s public key, signed by it (see the module doc for the
    algorithm per key). ``subject`` uses asn1crypto's attribute names (``country_name``,
    ``organization_name``, ``organization_identifier``, ``common_name``…); the centre writes the
    certificate's subject from its own records, the request's only documents what was asked.
    """
    info = csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": x509.Name.build(dict(subject)),
            "subject_pk_info": keys.PublicKeyInfo.load(spki_der(signer.public_key())),
            "attributes": [],
        }
    )
    algorithm = signer.algorithm
    signature = signer.sign(info.dump())
    if algorithm == "ecdsa-p256-sha256":  # RFC 9421 r‖s → X.509's DER
        signature = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    request = csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": _SIGNATURE_OIDS[algorithm]},
            "signature": signature,
        }
    )
    return bytes(pem.armor("CERTIFICATE REQUEST", request.dump())).decode()


def verify_request(request: str | bytes, *, sm2_user_id: bytes = DEFAULT_USER_ID) -> PublicKey:
    """Check a PKCS#10 request's self-signature (proof of possession); answers the key it certifies.

    Raises:
        ValueError: not a request, a key or algorithm other than Ed25519, P-256 with SHA-256 or SM2
            with SM3, or a signature that does not verify (the message says which).
    """
    data = request.encode() if isinstance(request, str) else bytes(request)
    parsed = gm_x509.load_request(data)
    oid = parsed["signature_algorithm"]["algorithm"].dotted
    info, signature = parsed["certification_request_info"], parsed["signature"].native
    try:
        if oid == gm_x509.SM2_WITH_SM3:
            gm_x509.verify_request(parsed, sm2_user_id)
            return gm_x509.request_public_key(parsed, sm2_user_id)
        public = serialization.load_der_public_key(info["subject_pk_info"].dump())
        if oid == _SIGNATURE_OIDS["ecdsa-p256-sha256"] and isinstance(public, ec.EllipticCurvePublicKey):
            if not isinstance(public.curve, ec.SECP256R1):
                raise ValueError("an ECDSA request must be for a P-256 key")
            public.verify(signature, info.dump(), ec.ECDSA(hashes.SHA256()))
            return public
        if oid == _SIGNATURE_OIDS["ed25519"] and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, info.dump())
            return public
    except InvalidSignature:
        why = "the certificate request's signature does not verify with its own key"
        if oid == gm_x509.SM2_WITH_SM3:  # the usual cause: another user id than the centre's in Z_A
            why += f" (SM2 with SM3, Z_A with the user id {sm2_user_id.decode(errors='replace')!r})"
        raise ValueError(why) from None
    except (TypeError, ValueError, AssertionError) as e:
        raise ValueError(f"the certificate request cannot be checked: {e}") from None
    raise ValueError(f"the certificate request is signed with {oid}: Ed25519, P-256/SHA-256 or SM2/SM3 expected")


@dataclass(frozen=True)
class CertificateInfo:
    """What a bank reads of its certificate."""

    serial: int
    not_before: _dt.datetime
    not_after: _dt.datetime
    subject: str
    issuer: str
    #: SubjectPublicKeyInfo DER of the certified key
    spki: bytes

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def read_certificate(certificate: str | bytes) -> CertificateInfo:
    """Serial, validity, names and key of an X.509 certificate (PEM or DER; SM2 or not).

    Raises:
        ValueError: not a certificate.
    """
    data = certificate.encode() if isinstance(certificate, str) else bytes(certificate)
    cert = gm_x509.load_certificate(data)
    tbs = cert["tbs_certificate"]
    return CertificateInfo(
        serial=int(cert.serial_number),
        not_before=tbs["validity"]["not_before"].native,
        not_after=tbs["validity"]["not_after"].native,
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        spki=bytes(tbs["subject_public_key_info"].dump()),
    )


def check_issued_certificate(
    certificate: str | bytes, *, ca: str | bytes, public_key: PublicKey, at: _dt.datetime | None = None
) -> CertificateInfo:
    """Check the certificate the centre answered: issued (signed) by ``ca``, for ``public_key``, and
    valid at ``at`` (default now). Answers what it says.

    Raises:
        ValueError: another key's certificate, not signed by the CA, or outside its validity.
    """
    info = read_certificate(certificate)
    if info.spki != spki_der(public_key):
        raise ValueError("the certificate is for another key than the one enrolled")
    data = certificate.encode() if isinstance(certificate, str) else bytes(certificate)
    ca_data = ca.encode() if isinstance(ca, str) else bytes(ca)
    cert = gm_x509.load_certificate(data)
    if cert["signature_algorithm"]["algorithm"].dotted == gm_x509.SM2_WITH_SM3:
        try:
            gm_x509.verify_certificate(cert, ca_data)
        except InvalidSignature as e:
            raise ValueError(f"the certificate is not signed by the centre's CA: {e}") from None
    else:
        try:
            cx509.load_der_x509_certificate(cert.dump()).verify_directly_issued_by(
                cx509.load_der_x509_certificate(gm_x509.load_der(ca_data))
            )
        except (InvalidSignature, ValueError, TypeError) as e:
            raise ValueError(f"the certificate is not signed by the centre's CA: {e}") from None
    moment = at or _dt.datetime.now(_dt.UTC)
    if not info.not_before <= moment <= info.not_after:
        raise ValueError(
            f"the certificate is valid {info.not_before:%Y-%m-%d %H:%M} to {info.not_after:%Y-%m-%d %H:%M} UTC, not now"
        )
    return info


@dataclass(frozen=True)
class CrlInfo:
    """What a bank reads of its CA's CRL, once its signature is checked."""

    #: serial numbers the CRL lists
    revoked: frozenset[int]
    this_update: _dt.datetime
    #: when the CA promises the next CRL (None: it does not say); past it, the CRL is stale
    next_update: _dt.datetime | None


def check_crl(crl_der: bytes, *, ca: str | bytes) -> CrlInfo:
    """A CRL (DER or PEM) of the centre's institution CA, its signature checked by ``ca`` (SM2-with-SM3 with the
    GM/T 0009 default user id, or ECDSA P-256/SHA-256), read.

    Raises:
        ValueError: not a CRL, or not signed by ``ca``.
    """
    ca_data = ca.encode() if isinstance(ca, str) else bytes(ca)
    try:
        parsed = gm_x509.load_crl(gm_x509.load_der(bytes(crl_der)))
        if parsed["signature_algorithm"]["algorithm"].dotted == gm_x509.SM2_WITH_SM3:
            gm_x509.verify_crl(parsed, gm_x509.load_der(ca_data))
        else:
            crl = cx509.load_der_x509_crl(parsed.dump())
            issuer = cx509.load_der_x509_certificate(gm_x509.load_der(ca_data))
            if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise InvalidSignature("the CRL is not signed by the centre's institution CA")
    except InvalidSignature as e:
        raise ValueError(f"the CRL is not the centre's institution CA's: {e}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"not a CRL: {e}") from None
    tbs = parsed["tbs_cert_list"]
    return CrlInfo(
        revoked=frozenset(gm_x509.revoked_serials(parsed)),
        this_update=tbs["this_update"].native,
        next_update=tbs["next_update"].native,
    )
