"""Checking a certificate from the centre: its signed metadata and its sealed PDF (seed 000 arts. 7–11).

The centre signs what it says about a certificate and about itself *detached*: the signature is
over the document's canonical JSON — UTF-8, keys sorted, no whitespace (``separators=(",", ":")``),
non-ASCII kept as is — with the centre key named in the enrolment bundle (Ed25519, or ECDSA P-256
with SHA-256). The same form signs the enrolment bundle. The PDF carries a PAdES seal (ISO 32000-2
§12.8, ETSI EN 319 142) by the centre's seal certificate, which chains to the seal CA of the bundle.

A bank's system that embeds the SDK verifies a certificate as the agent does::

    from sdk.certificates import TrustAnchors, verify_metadata, verify_seal

    trust = TrustAnchors(seal_ca_pem=..., centre_key_id=..., centre_key=...)  # from the enrolment bundle
    meta = verify_metadata(client.certificates.get(certificate_id), trust)   # raises CertificateRejected
    verify_seal(pdf_bytes, meta, trust)                                      # needs the [certificates] extra

:func:`canonical_json`, :func:`sign_detached` and :func:`verify_detached` need only the SDK's own
dependencies; :func:`verify_seal` needs pyHanko (``pip install 'regbridge[certificates]'``), imported
only when it is called, so ``import sdk`` stays light.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .errors import SignatureError
from .gm.sm2 import DEFAULT_USER_ID, Sm2PrivateKey, Sm2PublicKey
from .models import (
    CertificateMetadata,
    NoticeMetadata,
    PropertyQueryResult,
    PublicJwk,
    SignedCertificateMetadata,
    SignedNoticeMetadata,
)
from .privacy import mask_name
from .signing import PrivateKey, PublicKey, algorithm_of, public_key_from_jwk

__all__ = [
    "CertificateRejected",
    "TrustAnchors",
    "canonical_json",
    "certificate_expectations",
    "fetch_crls",
    "fetch_seal_crls",
    "notice_expectations",
    "pdf_text",
    "reconcile_text",
    "seal_crl_urls",
    "sign_detached",
    "verify_detached",
    "verify_metadata",
    "verify_notice_metadata",
    "verify_pades",
    "verify_query_result",
    "verify_seal",
]


class CertificateRejected(Exception):
    """The certificate failed a check; ``reasons`` says which (one plain sentence each)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class TrustAnchors:
    """What the enrolment bundle says to trust (its ``trust`` object).

    Args:
        seal_ca_pem: the seal CA's certificate, PEM.
        centre_key_id: the id the centre's detached signatures name (``keyid``).
        centre_key: the centre's public key, a JWK (RFC 7517) as a mapping.
        sm2_user_id: the gm suite's SM2 user id (GM/T 0009) the centre signs with (default ``1234567812345678``).
        bank_ca_pem: the CA of the institution certificates the centre issues to banks' keys (PEM;
            absent from a centre that issues none): :mod:`sdk.csr`.
        centre_encryption_key: the SM2 key a gm centre that asks for the personal-field envelope
            wants the per-body SM4 keys wrapped to (JWK; :class:`sdk.FieldEncryption`).
    """

    seal_ca_pem: str
    centre_key_id: str
    centre_key: dict[str, Any]
    sm2_user_id: bytes | None = None
    #: the centre named in the bundle (``centre.name``): a seal certificate must be this centre's (its
    #: subject's organisation), not any holder's under the same CA; ``None`` skips that check
    centre_name: str | None = None
    #: the e-signature CAs (PEM) whose applicant signatures the centre accepts (``trust.esign_ca_pems``,
    #: :func:`sdk.esign.verify_esignature`)
    esign_ca_pems: Sequence[str] = ()
    bank_ca_pem: str | None = None
    #: gm centres asking for the personal-field envelope: their SM2 encryption key, a JWK
    centre_encryption_key: dict[str, Any] | None = None

    def centre_public_key(self) -> PublicKey:
        """The centre's public key (an SM2 key with the user id its signatures are made with).

        Raises:
            ValueError: the JWK is not a valid key.
        """
        key = public_key_from_jwk(self.centre_key)
        if isinstance(key, Sm2PublicKey) and self.sm2_user_id:
            return key.with_user_id(self.sm2_user_id)
        return key


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The bytes a detached signature covers: UTF-8 JSON, keys sorted, no whitespace, non-ASCII as is."""
    return json.dumps(dict(document), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def sign_detached(document: Mapping[str, Any], key: PrivateKey, key_id: str) -> dict[str, str]:
    """The detached signature (``{"alg", "keyid", "value"}``, value base64) of ``document``'s canonical JSON."""
    data = canonical_json(document)
    if isinstance(key, Sm2PrivateKey):  # the gm suite: SM2 over SM3(Z_A ‖ data), DER
        return {"alg": "sm2-sm3", "keyid": key_id, "value": base64.b64encode(key.sign(data)).decode()}
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return {"alg": "ed25519", "keyid": key_id, "value": base64.b64encode(key.sign(data)).decode()}
    value = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return {"alg": "ecdsa-p256-sha256", "keyid": key_id, "value": base64.b64encode(value).decode()}


def verify_detached(
    document: Mapping[str, Any],
    signature: Mapping[str, Any],
    key: PublicJwk | Mapping[str, Any],
    *,
    sm2_user_id: bytes | None = None,
) -> bool:
    """Whether ``signature`` (``{"alg", "keyid", "value"}``) is ``key``'s over ``document``'s canonical JSON.

    The caller checks ``signature["keyid"]`` names the key it expects. Never raises for a bad or
    malformed signature (answers ``False``); an ``alg`` that is not the key's is a bad signature.
    An SM2 key (the gm suite) verifies with ``sm2_user_id`` (default ``1234567812345678``).

    Raises:
        ValueError: ``key`` is not a valid Ed25519, P-256 or SM2 public key.
    """
    public = public_key_from_jwk(key)
    if signature.get("alg") not in (None, algorithm_of(public)):
        return False
    try:
        value = base64.b64decode(str(signature["value"]), validate=True)
        if isinstance(public, Sm2PublicKey):
            public.with_user_id(sm2_user_id or DEFAULT_USER_ID).verify(value, canonical_json(document))
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(value, canonical_json(document))
        else:
            public.verify(value, canonical_json(document), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, KeyError, TypeError, ValueError):
        return False
    return True


def verify_query_result(result: PropertyQueryResult, trust: TrustAnchors) -> PropertyQueryResult:
    """A 查询结果 (登记资料查询), once the centre's detached signature over the rest of it verifies.

    Raises:
        SignatureError: unsigned, signed by another key than the centre's, or the signature does not verify.
    """
    sig = result.signature
    if sig is None:
        raise SignatureError("the query result is not signed by the centre")
    if sig.keyid != trust.centre_key_id:
        raise SignatureError(f"query result signed by key {sig.keyid}, not the centre's {trust.centre_key_id}")
    doc = result.model_dump(mode="json", exclude={"signature"})
    if not verify_detached(doc, sig.model_dump(), trust.centre_key, sm2_user_id=trust.sm2_user_id):
        raise SignatureError("the query result's signature does not verify with the centre key")
    return result


def verify_metadata(signed: SignedCertificateMetadata, trust: TrustAnchors) -> CertificateMetadata:
    """The certificate's metadata, once the centre's detached signature over it verifies.

    Raises:
        CertificateRejected: signed by another key than the centre's, or the signature does not verify.
        ValueError: the trusted centre key itself is not a valid public key (a configuration error).
    """
    sig = signed.signature
    if sig.keyid != trust.centre_key_id:
        raise CertificateRejected([f"metadata signed by key {sig.keyid}, not the centre's {trust.centre_key_id}"])
    doc = signed.metadata.model_dump(mode="json")
    if not verify_detached(doc, sig.model_dump(), trust.centre_key, sm2_user_id=trust.sm2_user_id):
        raise CertificateRejected(["the metadata's signature does not verify with the centre key"])
    return signed.metadata


def verify_notice_metadata(signed: SignedNoticeMetadata, trust: TrustAnchors) -> NoticeMetadata:
    """A sealed notice's metadata, once the centre's detached signature over it verifies (as :func:`verify_metadata`).

    Raises:
        CertificateRejected: signed by another key than the centre's, or the signature does not verify.
    """
    sig = signed.signature
    if sig.keyid != trust.centre_key_id:
        wrong = f"notice metadata signed by key {sig.keyid}, not the centre's {trust.centre_key_id}"
        raise CertificateRejected([wrong])
    doc = signed.metadata.model_dump(mode="json")
    if not verify_detached(doc, sig.model_dump(), trust.centre_key, sm2_user_id=trust.sm2_user_id):
        raise CertificateRejected(["the notice metadata's signature does not verify with the centre key"])
    return signed.metadata


def notice_expectations(meta: NoticeMetadata) -> list[tuple[str, str]]:
    """What a notice's visible text must show from its signed metadata: its title, 文书编号 and 不动产单元号."""
    return [("文书名称", meta.title), ("文书编号", meta.notice_number)] + [("不动产单元号", u) for u in meta.unit_ids]


def verify_seal(
    pdf: bytes, meta: CertificateMetadata, trust: TrustAnchors, *, crls: Sequence[bytes] | None = None
) -> None:
    """The PDF is the one the metadata signs (SHA-256), and its PAdES seal is intact, valid, chains to
    the bundle's seal CA, covers the whole file, is the bundle's centre's seal (its certificate's
    organisation is ``trust.centre_name``), shows the metadata's names, 单元号, 证明号 and amounts in
    its visible text (:func:`reconcile_text`, text by pypdf) and — given the CA's ``crls`` (DER, e.g. from
    :func:`fetch_seal_crls`) — is not revoked: with ``crls`` the revocation check is hard-fail (a seal
    certificate the CRLs do not vouch for is refused).

    Raises:
        CertificateRejected: with every failed check.
        ImportError: pyHanko is not installed (``pip install 'regbridge[certificates]'``).
    """
    verify_pades(pdf, trust, expected_sha256=meta.sha256, expected_text=certificate_expectations(meta), crls=crls)


def verify_pades(
    pdf: bytes,
    trust: TrustAnchors,
    *,
    expected_sha256: str,
    expected_text: Iterable[tuple[str, str]],
    crls: Sequence[bytes] | None = None,
) -> None:
    """:func:`verify_seal` for any sealed PDF the centre sends (certificates, notices): its SHA-256, the
    PAdES seal (integrity, chain, CRL, coverage, the centre's) and the (what, value) pairs its visible
    text must show.

    Raises:
        CertificateRejected: with every failed check.
        ImportError: pyHanko or pypdf is not installed.
    """
    try:
        from asn1crypto import crl as asn1_crl
        from asn1crypto import pem as asn1_pem
        from asn1crypto import x509 as asn1_x509
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.validation import validate_pdf_signature
        from pyhanko.sign.validation.status import SignatureCoverageLevel
        from pyhanko_certvalidator import ValidationContext
    except ImportError as exc:  # the SDK's own install has no pyHanko
        hint = "verifying a certificate's seal needs pyHanko: pip install 'regbridge[certificates]'"
        raise ImportError(hint) from exc

    reasons = []
    if hashlib.sha256(pdf).hexdigest() != expected_sha256:
        reasons.append("the file's SHA-256 differs from the one in the signed metadata")
    try:
        _, _, der = asn1_pem.unarmor(trust.seal_ca_pem.encode())
        root = asn1_x509.Certificate.load(der)
        signatures = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
        if not signatures:
            raise CertificateRejected([*reasons, "the PDF carries no seal (no embedded signature)"])
        if crls is None:
            context = ValidationContext(trust_roots=[root])
        else:
            context = ValidationContext(
                trust_roots=[root],
                crls=[asn1_crl.CertificateList.load(c) for c in crls],
                revocation_mode="hard-fail",
                allow_fetching=False,
            )
        status = validate_pdf_signature(signatures[0], context)
        holder = signatures[0].signer_cert.subject.native.get("organization_name")
    except CertificateRejected:
        raise
    except Exception as exc:  # a damaged PDF can fail anywhere in the parser
        raise CertificateRejected([*reasons, f"the PDF cannot be read or validated: {type(exc).__name__}"]) from None
    if not status.intact:
        reasons.append("the seal is broken: the signed content was changed")
    elif not status.valid:
        reasons.append("the seal's signature is not valid")
    if getattr(status, "revoked", False):
        reasons.append("the seal certificate is revoked (the CA's CRL lists it)")
    elif not status.trusted:
        reasons.append(
            "the seal does not chain to the centre's CA from the enrolment bundle"
            + ("" if crls is None else ", or the CA's CRL does not vouch for it")
        )
    if trust.centre_name is not None and holder != trust.centre_name:
        reasons.append(f"the seal is not the centre's: its certificate is {holder!r}'s, not {trust.centre_name!r}'s")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        reasons.append("the seal does not cover the whole file (content was appended after sealing)")
    try:  # the visible text against the signed metadata (names, 单元号, 证明号, amounts)
        reasons.extend(reconcile_text(pdf_text(pdf), expected_text))
    except ImportError:
        raise
    except Exception as exc:  # a PDF pyHanko validated but pypdf cannot read: its text is unknown
        reasons.append(f"the PDF's visible text cannot be read to compare with the metadata: {type(exc).__name__}")
    if reasons:
        raise CertificateRejected(reasons)


def seal_crl_urls(pdf: bytes) -> list[str]:
    """The CRL distribution point URLs (http/https) the PDF's seal certificate names; ``[]`` when none.

    Raises:
        ImportError: pyHanko is not installed.
    """
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        signatures = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
        cert = signatures[0].signer_cert if signatures else None
        points = cert.crl_distribution_points if cert is not None else []
    except Exception:  # a damaged PDF: verify_seal says why
        return []
    urls = [p.url for p in points if p.url]
    return [u for u in urls if u.startswith(("http://", "https://"))]


def fetch_seal_crls(pdf: bytes, *, timeout: float = 10.0) -> list[bytes] | None:
    """The CRLs the PDF's seal certificate names, fetched (DER); ``None`` when it names none.

    Raises:
        CertificateRejected: a named CRL cannot be fetched (the revocation status is unknown).
    """
    urls = seal_crl_urls(pdf)
    return fetch_crls(urls, timeout=timeout) if urls else None


#: the largest CRL fetched (a seal CA's CRL is a few KB) and the most CRL points one document may name
MAX_CRL_BYTES = 16 * 1024 * 1024
MAX_CRL_URLS = 8


def fetch_crls(urls: Sequence[str], *, timeout: float = 10.0, max_bytes: int = MAX_CRL_BYTES) -> list[bytes]:
    """The CRLs at ``urls``, fetched (DER), for :func:`verify_seal` and :func:`sdk.ofd.verify.verify_ofd`: at
    most :data:`MAX_CRL_URLS` of them, each read to at most ``max_bytes`` and within ``timeout`` seconds in all
    (a slow or endless answer is not waited on for ever).

    Raises:
        CertificateRejected: a CRL cannot be fetched (the revocation status is unknown), or more CRL points
            are named than a seal certificate has.
    """
    import time

    import httpx

    if len(urls) > MAX_CRL_URLS:
        raise CertificateRejected([f"the seal names {len(urls)} CRL points, more than {MAX_CRL_URLS}"])
    crls = []
    for url in urls:
        deadline = time.monotonic() + timeout
        try:
            with httpx.stream("GET", url, timeout=timeout, follow_redirects=False) as response:
                response.raise_for_status()
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes or time.monotonic() > deadline:
                        why = f"larger than {max_bytes} bytes" if len(body) > max_bytes else f"over {timeout:g} s"
                        raise CertificateRejected(
                            [f"the seal's revocation status is unknown: its CRL ({url}) cannot be fetched ({why})"]
                        )
        except httpx.HTTPError as exc:
            raise CertificateRejected(
                [f"the seal's revocation status is unknown: its CRL ({url}) cannot be fetched ({type(exc).__name__})"]
            ) from None
        crls.append(bytes(body))
    return crls


def _squash(text: str) -> str:
    return "".join(text.split())


def reconcile_text(text: str, expected: Iterable[tuple[str, str]]) -> list[str]:
    """The (what, value) pairs whose value the visible ``text`` does not show (whitespace ignored);
    one reason each, the value masked when it is a name."""
    body = _squash(text)
    reasons = []
    for what, value in expected:
        if value and _squash(value) not in body:
            shown = mask_name(value) if what in ("权利人", "义务人") else value
            reasons.append(f"the visible text does not show the {what} of the signed metadata ({shown})")
    return reasons


def _money(value: Decimal | str | None) -> str | None:
    return None if value in (None, "") else f"{Decimal(str(value)):,.2f}元"


def certificate_expectations(meta: CertificateMetadata) -> list[tuple[str, str]]:
    """What a certificate's visible text must show from its signed metadata: 不动产登记证明号, 编号,
    证照标识, every 权利人 and 义务人, every 不动产单元号, 坐落, and the amounts (元, two decimals)."""
    pairs: list[tuple[str, str]] = [
        ("不动产登记证明号", meta.certificate_number),
        ("编号", meta.serial_number),
        ("证照标识", meta.licence_id),
        ("坐落", meta.location),
        ("证明权利或事项", meta.right_or_matter),
    ]
    pairs += [("权利人", name) for name in meta.right_holders]
    pairs += [("义务人", name) for name in meta.obligors]
    pairs += [("不动产单元号", unit) for unit in meta.unit_ids]
    for what, value in (("被担保主债权数额", meta.secured_amount), ("最高债权额", meta.maximum_amount)):
        shown = _money(value)
        if shown:
            pairs.append((what, shown))
    return pairs


def pdf_text(pdf: bytes) -> str:
    """The visible text of a PDF's pages (pypdf), pages joined by newlines.

    Raises:
        ImportError: pypdf is not installed (``pip install 'regbridge[certificates]'``).
    """
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(pdf), strict=False)
    return "\n".join(page.extract_text() or "" for page in reader.pages)
