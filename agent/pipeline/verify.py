"""Trust what arrives: a certificate's seal, its signed metadata, and its fields against the application.

A certificate is stored only when all three hold:

1. the metadata's detached signature verifies with the centre key from the enrolment bundle;
2. the file's seal: a PDF's PAdES seal is intact, covers the whole file, and chains to the seal CA
   from the bundle (pyHanko + pyhanko-certvalidator); an OFD's GB/T 38540 seal passes every check
   of :func:`sdk.ofd.verify.verify_ofd` (digests, coverage, seal, SM2 signature, chain to the
   bundle's SM2 seal CA, revocation); either way the file's SHA-256 is the one the metadata signs
   and its visible text shows the metadata's names, 单元号, 证明号 and amounts;
3. the metadata agrees with what the bank applied for: 不动产单元号, the mortgagee is this bank,
   the amount, the obligors, and a 证明号 of the right shape (:func:`reconcile`).

Anything else is quarantined and alerted, never silently stored. Checks 1 and 2 are the SDK's
(:mod:`sdk.certificates`, which a bank's own system can use too); :func:`reconcile` is the agent's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sdk.certificates import (
    CertificateRejected,
    TrustAnchors,
    certificate_expectations,
    fetch_crls,
    fetch_seal_crls,
    notice_expectations,
    verify_metadata,
    verify_notice_metadata,
    verify_pades,
    verify_seal,
)
from sdk.identifiers import parse_certificate_number
from sdk.models import CertificateMetadata, NoticeMetadata

__all__ = [
    "CertificateRejected",
    "TrustAnchors",
    "reconcile",
    "verify_document",
    "verify_metadata",
    "verify_notice_metadata",
    "verify_seal",
]


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


def verify_document(
    content: bytes, meta: CertificateMetadata | NoticeMetadata, trust: TrustAnchors, *, timeout: float
) -> str:
    """Check a sealed certificate or notice file per its media type (PDF/PAdES or OFD/GB/T 38540), the
    CRLs its seal certificates name fetched first (hard-fail); answers what was checked, for the sidecar.

    Raises:
        CertificateRejected: a check failed (every reason).
        sdk.TransportError: a named CRL is out of reach for now (retried later, never stored unchecked).
    """
    import sdk

    expected = certificate_expectations(meta) if isinstance(meta, CertificateMetadata) else notice_expectations(meta)
    try:
        if meta.media_type == "application/ofd":
            from sdk.ofd.verify import ofd_crl_urls, verify_ofd

            urls = ofd_crl_urls(content)
            crls = fetch_crls(urls, timeout=timeout) if urls else None
            verify_ofd(content, trust, expected_sha256=meta.sha256, expected_text=expected, crls=crls)
            return "OFD sealed per GB/T 38540 (SM2/SM3), chains to the enrolment bundle's SM2 seal CA"
        crls = fetch_seal_crls(content, timeout=timeout)
    except CertificateRejected as exc:
        if any("cannot be fetched" in r for r in exc.reasons):  # the CRL is out of reach: retried later
            raise sdk.TransportError("; ".join(exc.reasons)) from None
        raise
    verify_pades(content, trust, expected_sha256=meta.sha256, expected_text=expected, crls=crls)
    return "PAdES, chains to the enrolment bundle's seal CA"
