"""SM2 X.509: certificate requests, certificates and CRLs signed with SM2-with-SM3, and an SM2
checker for pyhanko-certvalidator's path validation.

``cryptography`` cannot load SM2 keys nor check SM2 signatures, so the DER is built and read with
asn1crypto and signed/checked with :mod:`sdk.gm.sm2` (GmSSL). Every signature here is
``SM2-with-SM3`` (OID ``1.2.156.10197.1.501``, GM/T 0006; no parameters), the signed value being
SM3(Z_A ‖ DER of the to-be-signed part) with the signer's user id — ``1234567812345678`` unless
agreed otherwise (GM/T 0009 §10; GM/T 0015 §7 for certificates) — exactly what OpenSSL 3 writes
and checks (``openssl req -verify``, ``openssl verify -crl_check``).

The shapes (GM/T 0015 — the RFC 5280 profile with SM2):

- :func:`build_request` / :func:`verify_request`: PKCS#10 (RFC 2986) requests;
- :func:`issue_certificate` / :func:`verify_certificate`: X.509 v3 certificates (CA or end-entity)
  with key usage, basic constraints, subject/authority key identifiers (SM3 of the public key,
  leftmost 160 bits: RFC 7093 §2 method 1 with SM3) and a CRL distribution point;
- :func:`build_crl` / :func:`verify_crl`: v2 CRLs (RFC 5280 §5) with CRL number and AKI;
- :class:`Sm2SignatureValidator` and :func:`validation_context`: pyhanko-certvalidator building and
  checking SM2 paths (validity, key usage, basic constraints, CRL revocation).

All functions take and return DER ``bytes`` (PEM is accepted where noted: :func:`load_der`), or
asn1crypto objects (``asn1crypto.x509.Certificate``, ``asn1crypto.crl.CertificateList``,
``asn1crypto.csr.CertificationRequest``). Needs the ``regbridge[gm]`` extra (gmssl-pyx, asn1crypto,
pyhanko-certvalidator).
"""

from __future__ import annotations

import datetime as _dt
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from asn1crypto import crl, csr, pem, x509
from cryptography.exceptions import InvalidSignature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.sig_validate import DefaultSignatureValidator

from .sm2 import DEFAULT_USER_ID, SM2_CURVE_OID, Sm2PrivateKey, Sm2PublicKey, _keys

__all__ = [
    "SM2_WITH_SM3",
    "KeyUsage",
    "Revoked",
    "Sm2SignatureValidator",
    "build_crl",
    "build_request",
    "certificate_public_key",
    "issue_certificate",
    "key_identifier",
    "load_certificate",
    "load_crl",
    "load_der",
    "load_request",
    "request_public_key",
    "revoked_serials",
    "to_pem",
    "validation_context",
    "verify_certificate",
    "verify_crl",
    "verify_request",
]

#: SM2 signature with SM3 (GM/T 0006 "sm2sign-with-sm3")
SM2_WITH_SM3 = "1.2.156.10197.1.501"

#: RFC 5280 §4.2.1.3 key usage names (asn1crypto's spelling)
KeyUsage = Literal[
    "digital_signature",
    "non_repudiation",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
]

_Subject: TypeAlias = Mapping[str, str] | x509.Name


def _utc(moment: _dt.datetime) -> _dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("certificate times must be timezone-aware (UTC)")
    return moment.astimezone(_dt.UTC).replace(microsecond=0)


def _time(moment: _dt.datetime) -> x509.Time:
    """UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5)."""
    moment = _utc(moment)
    return x509.Time(name="utc_time" if moment.year < 2050 else "general_time", value=moment)


def _name(subject: _Subject) -> x509.Name:
    """``{"country_name": "CN", "organization_name": "…", "common_name": "…"}`` (asn1crypto's names) as
    a Name, UTF8String except the country (PrintableString)."""
    if isinstance(subject, x509.Name):
        return subject
    if not subject:
        raise ValueError("a certificate subject needs at least one attribute (common_name)")
    return x509.Name.build(dict(subject))


def _algorithm() -> x509.SignedDigestAlgorithm:
    return x509.SignedDigestAlgorithm({"algorithm": SM2_WITH_SM3})


def _check_algorithm(algorithm: Any, what: str) -> None:
    if algorithm["algorithm"].dotted != SM2_WITH_SM3:
        raise InvalidSignature(f"{what} is signed with {algorithm['algorithm'].dotted}, not SM2-with-SM3")


def _spki_public_key(info: Any, user_id: bytes) -> Sm2PublicKey:
    algorithm = info["algorithm"]
    params = algorithm["parameters"]
    if algorithm["algorithm"].native != "ec" or params.name != "named" or params.chosen.dotted != SM2_CURVE_OID:
        raise ValueError("the public key is not an SM2 key (id-ecPublicKey on the SM2 curve)")
    return Sm2PublicKey(bytes(info["public_key"].native), user_id)


def _spki(public: Sm2PublicKey) -> Any:
    return _keys().PublicKeyInfo.load(public.spki_der())


def key_identifier(public: Sm2PublicKey) -> bytes:
    """The key identifier of ``public``: SM3 of the subjectPublicKey bits, leftmost 160 bits
    (RFC 7093 §2 method 1, with SM3 for SHA-256)."""
    from . import sm3

    return sm3(b"\x04" + public.raw)[:20]


# --- loading ---------------------------------------------------------------------------------------


def load_der(data: bytes) -> bytes:
    """DER of ``data`` given as DER or PEM (any label)."""
    data = bytes(data)
    return bytes(pem.unarmor(data)[2]) if pem.detect(data) else data


def load_certificate(data: bytes | x509.Certificate) -> x509.Certificate:
    """An X.509 certificate from DER or PEM. Raises ValueError when it does not parse."""
    if isinstance(data, x509.Certificate):
        return data
    try:
        cert = x509.Certificate.load(load_der(data))
        cert.native  # noqa: B018 - parse it all now
    except Exception as e:
        raise ValueError(f"not an X.509 certificate: {e}") from None
    return cert


def load_request(data: bytes | csr.CertificationRequest) -> csr.CertificationRequest:
    """A PKCS#10 request from DER or PEM. Raises ValueError when it does not parse."""
    if isinstance(data, csr.CertificationRequest):
        return data
    try:
        request = csr.CertificationRequest.load(load_der(data))
        request.native  # noqa: B018
    except Exception as e:
        raise ValueError(f"not a PKCS#10 certificate request: {e}") from None
    return request


def load_crl(data: bytes | crl.CertificateList) -> crl.CertificateList:
    """A CRL from DER or PEM. Raises ValueError when it does not parse."""
    if isinstance(data, crl.CertificateList):
        return data
    try:
        value = crl.CertificateList.load(load_der(data))
        value.native  # noqa: B018
    except Exception as e:
        raise ValueError(f"not a CRL: {e}") from None
    return value


def to_pem(value: bytes | x509.Certificate | crl.CertificateList | csr.CertificationRequest) -> bytes:
    """PEM of a certificate, CRL or request (labels CERTIFICATE, X509 CRL, CERTIFICATE REQUEST); DER
    bytes are recognised by parsing."""
    if isinstance(value, bytes):
        der = load_der(value)
        for loader in (load_certificate, load_crl, load_request):
            try:
                return to_pem(loader(der))
            except ValueError:
                continue
        raise ValueError("not a certificate, CRL or certificate request")
    if isinstance(value, x509.Certificate):
        label = "CERTIFICATE"
    elif isinstance(value, crl.CertificateList):
        label = "X509 CRL"
    else:
        label = "CERTIFICATE REQUEST"
    return bytes(pem.armor(label, value.dump()))


# --- PKCS#10 ---------------------------------------------------------------------------------------


def build_request(key: Sm2PrivateKey, subject: _Subject) -> bytes:
    """A PKCS#10 request (DER) for ``key``'s public key and ``subject``, signed by ``key``
    (SM2-with-SM3, the key's user id; no attributes).

    ``subject`` uses asn1crypto's attribute names, e.g. ``{"country_name": "CN",
    "organization_name": "某银行", "common_name": "bank-320100"}``.
    """
    info = csr.CertificationRequestInfo(
        {"version": "v1", "subject": _name(subject), "subject_pk_info": _spki(key.public), "attributes": []}
    )
    signature = key.sign(info.dump())
    request = csr.CertificationRequest(
        {"certification_request_info": info, "signature_algorithm": _algorithm(), "signature": signature}
    )
    return bytes(request.dump())


def request_public_key(request: bytes | csr.CertificationRequest, user_id: bytes = DEFAULT_USER_ID) -> Sm2PublicKey:
    """The SM2 public key a request asks to certify. Raises ValueError when it is not SM2."""
    return _spki_public_key(load_request(request)["certification_request_info"]["subject_pk_info"], user_id)


def verify_request(
    request: bytes | csr.CertificationRequest, user_id: bytes = DEFAULT_USER_ID
) -> csr.CertificationRequest:
    """Check a PKCS#10 request's self-signature (proof of possession); answers the parsed request.

    Raises:
        ValueError: not a request, or its key is not SM2.
        InvalidSignature: not signed with SM2-with-SM3, or the signature does not verify.
    """
    parsed = load_request(request)
    _check_algorithm(parsed["signature_algorithm"], "the certificate request")
    public = request_public_key(parsed, user_id)
    public.verify(parsed["signature"].native, parsed["certification_request_info"].dump())
    return parsed


# --- certificates ----------------------------------------------------------------------------------


def certificate_public_key(cert: bytes | x509.Certificate, user_id: bytes = DEFAULT_USER_ID) -> Sm2PublicKey:
    """The SM2 public key a certificate certifies. Raises ValueError when it is not SM2."""
    return _spki_public_key(load_certificate(cert)["tbs_certificate"]["subject_public_key_info"], user_id)


def issue_certificate(
    *,
    subject: _Subject,
    public_key: Sm2PublicKey,
    issuer_key: Sm2PrivateKey,
    issuer: bytes | x509.Certificate | None = None,
    serial: int | None = None,
    not_before: _dt.datetime,
    not_after: _dt.datetime,
    ca: bool = False,
    path_length: int | None = None,
    key_usage: Iterable[KeyUsage] | None = None,
    extended_key_usage: Sequence[str] = (),
    crl_url: str | None = None,
) -> bytes:
    """An X.509 v3 certificate (DER) for ``public_key`` signed by ``issuer_key`` (SM2-with-SM3).

    ``issuer`` is the issuer's certificate; ``None`` makes a self-signed certificate (then
    ``issuer_key`` must be the subject's key). ``serial`` defaults to 159 random bits (RFC 5280:
    positive, at most 20 octets). Extensions: basic constraints (critical; ``ca`` and
    ``path_length``), key usage (critical; default ``key_cert_sign`` + ``crl_sign`` for a CA,
    ``digital_signature`` + ``non_repudiation`` for an end entity), SKI, AKI (the issuer's SKI),
    extended key usage (dotted OIDs or asn1crypto names) and the CRL distribution point ``crl_url``.

    Raises:
        ValueError: times not timezone-aware or not_after ≤ not_before; a self-signed certificate
            whose key is not ``issuer_key``'s; an issuer certificate that is not a CA.
    """
    start, end = _utc(not_before), _utc(not_after)
    if end <= start:
        raise ValueError("not_after must be after not_before")
    if issuer is None:
        if issuer_key.public.raw != public_key.raw:
            raise ValueError("a self-signed certificate is signed by its own key")
        issuer_name = _name(subject)
        issuer_ski = key_identifier(public_key)
    else:
        issuer_cert = load_certificate(issuer)
        if not issuer_cert.ca:
            raise ValueError("the issuer certificate is not a CA (basic constraints cA false)")
        if certificate_public_key(issuer_cert).raw != issuer_key.public.raw:
            raise ValueError("the issuer key is not the issuer certificate's key")
        issuer_name = issuer_cert.subject
        issuer_ski = issuer_cert.key_identifier or key_identifier(issuer_key.public)
    usage = (
        set(key_usage)
        if key_usage is not None
        else ({"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "non_repudiation"})
    )
    extensions: list[dict[str, Any]] = [
        {
            "extn_id": "basic_constraints",
            "critical": True,
            "extn_value": {"ca": ca, "path_len_constraint": path_length if ca else None},
        },
        {"extn_id": "key_usage", "critical": True, "extn_value": x509.KeyUsage(usage)},
        {"extn_id": "key_identifier", "critical": False, "extn_value": key_identifier(public_key)},
        {"extn_id": "authority_key_identifier", "critical": False, "extn_value": {"key_identifier": issuer_ski}},
    ]
    if extended_key_usage:
        extensions.append({"extn_id": "extended_key_usage", "critical": False, "extn_value": list(extended_key_usage)})
    if crl_url:
        extensions.append(
            {
                "extn_id": "crl_distribution_points",
                "critical": False,
                "extn_value": [
                    {
                        "distribution_point": x509.DistributionPointName(
                            name="full_name",
                            value=[x509.GeneralName(name="uniform_resource_identifier", value=crl_url)],
                        )
                    }
                ],
            }
        )
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial if serial is not None else secrets.randbits(159) | 1 << 158,
            "signature": _algorithm(),
            "issuer": issuer_name,
            "validity": {"not_before": _time(start), "not_after": _time(end)},
            "subject": _name(subject),
            "subject_public_key_info": _spki(public_key),
            "extensions": extensions,
        }
    )
    signature = issuer_key.sign(tbs.dump())
    cert = x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": _algorithm(), "signature_value": signature})
    return bytes(cert.dump())


def verify_certificate(
    cert: bytes | x509.Certificate, issuer: bytes | x509.Certificate, user_id: bytes = DEFAULT_USER_ID
) -> None:
    """Check that ``issuer`` (a certificate; the certificate itself when self-signed) signed ``cert``:
    names chain and the SM2-with-SM3 signature verifies with the issuer's key. Validity, usage and
    revocation are the path validation's (:func:`validation_context`).

    Raises:
        InvalidSignature: another issuer's name, another algorithm, or a signature that does not verify.
        ValueError: not certificates, or the issuer's key is not SM2.
    """
    child, parent = load_certificate(cert), load_certificate(issuer)
    if child.issuer != parent.subject:
        raise InvalidSignature("the certificate's issuer is not the given issuer certificate's subject")
    _check_algorithm(child["signature_algorithm"], "the certificate")
    certificate_public_key(parent, user_id).verify(child["signature_value"].native, child["tbs_certificate"].dump())


# --- CRLs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revoked:
    """One revoked certificate on a CRL: its serial, when, and why (RFC 5280 §5.3.1 reason name)."""

    serial: int
    revoked_at: _dt.datetime
    reason: str | None = None


def build_crl(
    *,
    issuer_key: Sm2PrivateKey,
    issuer: bytes | x509.Certificate,
    revoked: Iterable[Revoked],
    this_update: _dt.datetime,
    next_update: _dt.datetime,
    number: int,
) -> bytes:
    """A v2 CRL (DER) by ``issuer`` listing ``revoked``, signed by ``issuer_key`` (SM2-with-SM3), with
    the CRL number ``number`` (monotonic per issuer) and the issuer's key identifier (AKI).

    Raises:
        ValueError: ``issuer_key`` is not the issuer certificate's key, or next_update ≤ this_update.
    """
    issuer_cert = load_certificate(issuer)
    if certificate_public_key(issuer_cert).raw != issuer_key.public.raw:
        raise ValueError("the CRL signing key is not the issuer certificate's key")
    if _utc(next_update) <= _utc(this_update):
        raise ValueError("next_update must be after this_update")
    entries = []
    for item in revoked:
        entry: dict[str, Any] = {"user_certificate": item.serial, "revocation_date": _time(item.revoked_at)}
        if item.reason:
            entry["crl_entry_extensions"] = [{"extn_id": "crl_reason", "critical": False, "extn_value": item.reason}]
        entries.append(entry)
    tbs = crl.TbsCertList(
        {
            "version": "v2",
            "signature": _algorithm(),
            "issuer": issuer_cert.subject,
            "this_update": _time(this_update),
            "next_update": _time(next_update),
            "revoked_certificates": entries or None,
            "crl_extensions": [
                {"extn_id": "crl_number", "critical": False, "extn_value": number},
                {
                    "extn_id": "authority_key_identifier",
                    "critical": False,
                    "extn_value": {"key_identifier": issuer_cert.key_identifier or key_identifier(issuer_key.public)},
                },
            ],
        }
    )
    if not entries:
        del tbs["revoked_certificates"]
    signature = issuer_key.sign(tbs.dump())
    value = crl.CertificateList({"tbs_cert_list": tbs, "signature_algorithm": _algorithm(), "signature": signature})
    return bytes(value.dump())


def verify_crl(
    value: bytes | crl.CertificateList, issuer: bytes | x509.Certificate, user_id: bytes = DEFAULT_USER_ID
) -> crl.CertificateList:
    """Check a CRL's signature by ``issuer`` (a CA certificate); answers the parsed CRL.

    Raises:
        InvalidSignature: another issuer, another algorithm, or the signature does not verify.
        ValueError: not a CRL or certificate.
    """
    parsed, parent = load_crl(value), load_certificate(issuer)
    if parsed["tbs_cert_list"]["issuer"] != parent.subject:
        raise InvalidSignature("the CRL's issuer is not the given issuer certificate's subject")
    _check_algorithm(parsed["signature_algorithm"], "the CRL")
    certificate_public_key(parent, user_id).verify(parsed["signature"].native, parsed["tbs_cert_list"].dump())
    return parsed


def revoked_serials(value: bytes | crl.CertificateList) -> set[int]:
    """The serial numbers a CRL lists (its signature is not checked here: :func:`verify_crl`)."""
    return {int(entry["user_certificate"].native) for entry in load_crl(value)["tbs_cert_list"]["revoked_certificates"]}


# --- pyhanko-certvalidator -------------------------------------------------------------------------


class Sm2SignatureValidator(DefaultSignatureValidator):
    """pyhanko-certvalidator's signature validator, with SM2-with-SM3 (GmSSL) beside its own algorithms.

    Certificates and CRLs signed with SM2-with-SM3 are checked with the signer's SM2 key and
    ``user_id``; everything else goes to pyhanko's default validator. Raises
    :class:`cryptography.exceptions.InvalidSignature` when an SM2 signature does not verify.
    """

    def __init__(self, user_id: bytes = DEFAULT_USER_ID) -> None:
        self.user_id = user_id

    def validate_signature(
        self,
        signature: bytes,
        signed_data: bytes,
        public_key_info: Any,
        signature_algorithm: Any,
        context: Any = None,
    ) -> None:
        if signature_algorithm["algorithm"].dotted != SM2_WITH_SM3:
            if context is None:
                super().validate_signature(signature, signed_data, public_key_info, signature_algorithm)
            else:
                super().validate_signature(signature, signed_data, public_key_info, signature_algorithm, context)
            return
        if context is not None and getattr(context, "prehashed", False):
            raise InvalidSignature("an SM2 signature signs SM3(Z ‖ message): a prehashed message cannot be checked")
        try:
            public = _spki_public_key(public_key_info, self.user_id)
        except ValueError as e:
            raise InvalidSignature(str(e)) from None
        public.verify(signature, signed_data)


def validation_context(
    trust_roots: Sequence[bytes | x509.Certificate],
    *,
    crls: Sequence[bytes | crl.CertificateList] = (),
    moment: _dt.datetime | None = None,
    intermediates: Sequence[bytes | x509.Certificate] = (),
    user_id: bytes = DEFAULT_USER_ID,
    revocation_mode: Literal["hard-fail", "soft-fail", "require"] = "hard-fail",
) -> ValidationContext:
    """A pyhanko-certvalidator ``ValidationContext`` that checks SM2 paths: trusted ``trust_roots``,
    the ``crls`` given (no fetching), validity at ``moment`` (default now) and
    :class:`Sm2SignatureValidator`. Use it with ``CertificateValidator(cert, validation_context=…)``
    or ``CertificatePathValidator``; a revoked certificate raises ``RevokedError``, an expired one
    ``ExpiredError`` (``pyhanko_certvalidator.errors``).
    """
    return ValidationContext(
        trust_roots=[load_certificate(c) for c in trust_roots],
        other_certs=[load_certificate(c) for c in intermediates],
        crls=[load_crl(c) for c in crls],
        moment=moment,
        allow_fetching=False,
        revocation_mode=revocation_mode,
        signature_validator=Sm2SignatureValidator(user_id),
    )
