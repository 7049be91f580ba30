"""Trust what arrives: a certificate's seal, its signed metadata, and its fields against the application.

A certificate is stored only when all three hold:

1. the metadata's detached signature verifies with the centre key from the enrolment bundle;
2. the PDF's PAdES seal is intact, covers the whole file, and chains to the seal CA from the
   bundle (pyHanko + pyhanko-certvalidator), and the file's SHA-256 is the one the metadata signs;
3. the metadata agrees with what the bank applied for: 不动产单元号, the mortgagee is this bank,
   the amount, the obligors, and a 证明号 of the right shape (:func:`reconcile`).

Anything else is quarantined and alerted, never silently stored.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sdk.identifiers import parse_certificate_number
from sdk.models import CertificateMetadata, SignedCertificateMetadata
from sdk.signing import public_key_from_jwk

__all__ = ["CertificateRejected", "TrustAnchors", "reconcile", "verify_metadata", "verify_seal"]


class CertificateRejected(Exception):
    """The certificate failed a check; ``reasons`` says which."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class TrustAnchors:
    """What the enrolment bundle says to trust: the seal CA and the centre's signing key."""

    seal_ca_pem: str
    centre_key_id: str
    centre_key: dict[str, Any]


def verify_metadata(signed: SignedCertificateMetadata, trust: TrustAnchors) -> CertificateMetadata:
    sig = signed.signature
    if sig.keyid != trust.centre_key_id:
        raise CertificateRejected([f"metadata signed by key {sig.keyid}, not the centre's {trust.centre_key_id}"])
    doc = signed.metadata.model_dump(mode="json")
    canonical = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    key = public_key_from_jwk(trust.centre_key)
    try:
        key.verify(base64.b64decode(sig.value), canonical)  # type: ignore[call-arg]
    except Exception:
        raise CertificateRejected(["the metadata's signature does not verify with the centre key"]) from None
    return signed.metadata


def verify_seal(pdf: bytes, meta: CertificateMetadata, trust: TrustAnchors) -> None:
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    reasons = []
    if hashlib.sha256(pdf).hexdigest() != meta.sha256:
        reasons.append("the file's SHA-256 differs from the one in the signed metadata")
    try:
        _, _, der = asn1_pem.unarmor(trust.seal_ca_pem.encode())
        root = asn1_x509.Certificate.load(der)
        signatures = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
        if not signatures:
            raise CertificateRejected([*reasons, "the PDF carries no seal (no embedded signature)"])
        status = validate_pdf_signature(signatures[0], ValidationContext(trust_roots=[root]))
    except CertificateRejected:
        raise
    except Exception as exc:  # a damaged PDF can fail anywhere in the parser
        raise CertificateRejected([*reasons, f"the PDF cannot be read or validated: {type(exc).__name__}"]) from None
    if not status.intact:
        reasons.append("the seal is broken: the signed content was changed")
    elif not status.valid:
        reasons.append("the seal's signature is not valid")
    if not status.trusted:
        reasons.append("the seal does not chain to the centre's CA from the enrolment bundle")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        reasons.append("the seal does not cover the whole file (content was appended after sealing)")
    if reasons:
        raise CertificateRejected(reasons)


def _amount(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def reconcile(meta: CertificateMetadata, payload: dict[str, Any], *, bank_uscc: str, bank_name: str) -> None:
    """The certificate's fields against the application; raises with every disagreement."""
    reasons = []
    try:
        if not parse_certificate_number(meta.certificate_number).is_proof:
            reasons.append(f"{meta.certificate_number} is not a 不动产登记证明号")
    except ValueError as exc:
        reasons.append(f"the 证明号 is malformed: {exc}")
    applied = {p["unit_id"] for p in payload.get("properties", [])}
    if not set(meta.unit_ids) <= applied or not set(meta.unit_ids):
        reasons.append("the 不动产单元号 on the certificate are not those applied for")
    if "抵押" in meta.right_or_matter:
        if bank_name not in meta.right_holders or meta.holder_code != bank_uscc:
            reasons.append("the mortgagee (权利人) on the certificate is not this bank")
        terms = dict(payload.get("terms") or {})
        for change in payload.get("changes") or []:
            if change.get("kind") == "secured_debt" and change.get("new_amount"):
                terms["secured_amount"] = change["new_amount"]
            if change.get("kind") == "maximum_amount":
                terms["maximum_amount"] = change["new_amount"]
        checked = ["maximum_amount"] if "determined_amount" in payload else ["secured_amount", "maximum_amount"]
        for name in checked:
            want, got = _amount(terms.get(name)), _amount(getattr(meta, name))
            if want is not None and got is not None and want != got:
                reasons.append(f"{name} on the certificate ({got}) differs from the application ({want})")
        obligors = {p["name"] for p in payload.get("mortgagors") or []}
        if obligors and not obligors <= set(meta.obligors):
            reasons.append("the 义务人 on the certificate are not the mortgagors applied for")
    else:  # a purchase notice: the buyers hold it
        buyers = {p["name"] for p in payload.get("buyers") or payload.get("mortgagors") or []}
        if not set(meta.right_holders) <= buyers or not meta.right_holders:
            reasons.append("the 权利人 on the certificate are not the buyers applied for")
    if reasons:
        raise CertificateRejected(reasons)
