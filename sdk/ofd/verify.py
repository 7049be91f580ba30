"""Verifying a sealed OFD fully: package, coverage, seal, signature, chain, revocation and text.

:func:`verify_ofd` checks, and names every failure in its own sentence
(:class:`sdk.certificates.CertificateRejected`):

1. the package reads (GB/T 33190 §7, :mod:`sdk.ofd.reader`) and carries a seal signature (§18);
2. **digests**: the References use SM3 and every file they list is present with that SM3 — a file
   changed or removed after sealing is found;
3. **coverage**: every file of the package is referenced (except ``Signatures.xml``, which later
   signatures extend, and the signatures' own ``Signature.xml``/``SignedValue.dat``) — a page,
   resource or any file added after sealing is found — and each ``StampAnnot`` stands on a page;
4. **the signature** (``SignedValue.dat``): a GB/T 38540 v4 or GM/T 0031 v1 SES_Signature whose
   ``dataHash`` is SM3 of ``Signature.xml``, SM2-with-SM3 by the signer certificate it carries,
   over the DER of ``TBS_Sign`` (user id ``trust.sm2_user_id`` or ``1234567812345678``);
5. **the seal** (in the signature, and ``Seal.esl`` the same): header ``ES`` of the structure's
   version, the maker's SM2 signature over the seal info (an altered ``SES_SealInfo`` is found),
   the maker certificate from the seal CA, the validity window around the signing time, and the
   signer certificate among those the seal lists;
6. **the chain**: the signer certificate chains to an SM2 seal CA of the enrolment bundle
   (``trust.seal_ca_pem``; pyhanko-certvalidator with :class:`sdk.gm.x509.Sm2SignatureValidator`),
   valid now, not revoked per the CA's ``crls`` (hard-fail when given), and is the centre's own
   (subject O = ``trust.centre_name``);
7. **the visible text** shows what the signed metadata says (:func:`reconcile_text`).

Needs lxml, asn1crypto, gmssl-pyx and pyhanko-certvalidator (``regbridge[certificates,gm]``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature

from sdk.certificates import CertificateRejected, TrustAnchors, certificate_expectations, reconcile_text
from sdk.gm import sm3
from sdk.gm.sm2 import DEFAULT_USER_ID, SM2_CURVE_OID

from . import ses
from .reader import OfdDocument, OfdError, OfdSignature, read_ofd

__all__ = ["certificate_expectations", "ofd_crl_urls", "reconcile_text", "seal_ca_certificates", "verify_ofd"]


def seal_ca_certificates(pem_text: str) -> list[Any]:
    """The SM2 CA certificates of a PEM bundle (asn1crypto objects); other keys are skipped."""
    from asn1crypto import pem, x509

    found = []
    for _name, _headers, der in pem.unarmor(pem_text.encode(), multiple=True):
        cert = x509.Certificate.load(der)
        algorithm = cert.public_key["algorithm"]
        if algorithm["algorithm"].native == "ec" and algorithm["parameters"].chosen.native in (
            SM2_CURVE_OID,
            "sm2p256v1",
        ):
            found.append(cert)
    return found


def _run(coro: Any) -> Any:
    """Run a coroutine to its end, also from a thread whose event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _chain(cert_der: bytes, roots: list[Any], crls: Sequence[bytes] | None, user_id: bytes, what: str) -> list[str]:
    """Path validation of ``cert_der`` to ``roots``; answers the reasons it fails (none: it holds)."""
    from asn1crypto import x509
    from pyhanko_certvalidator import CertificateValidator
    from pyhanko_certvalidator.errors import ExpiredError, PathBuildingError, PathValidationError, RevokedError

    from sdk.gm.x509 import validation_context

    if not roots:
        return [f"the enrolment bundle has no SM2 seal CA to check the {what} against"]
    try:
        cert = x509.Certificate.load(cert_der)
        cert.native  # noqa: B018 - parse it all
    except Exception:
        return [f"the {what} is not an X.509 certificate"]
    context = validation_context(
        roots, crls=list(crls or ()), user_id=user_id, revocation_mode="hard-fail" if crls is not None else "soft-fail"
    )
    validator = CertificateValidator(cert, validation_context=context)
    try:
        _run(validator.async_validate_usage({"digital_signature"}))  # type: ignore[no-untyped-call]
    except RevokedError:
        return [f"the {what} is revoked (the seal CA's CRL lists it)"]
    except ExpiredError:
        return [f"the {what} has expired or is not yet valid"]
    except PathBuildingError:
        return [f"the {what} does not chain to the centre's seal CA from the enrolment bundle"]
    except PathValidationError as exc:
        text = str(exc)
        if "revocation" in text.lower() or "crl" in text.lower():
            return [f"the {what}'s revocation status is not vouched for by the seal CA's CRL"]
        return [f"the {what} does not validate to the centre's seal CA: {text[:120]}"]
    except Exception as exc:  # InvalidCertificateError (key usage…), a malformed path
        return [f"the {what} is not acceptable: {type(exc).__name__}: {str(exc)[:120]}"]
    return []


def _organisation(cert_der: bytes) -> str | None:
    from asn1crypto import x509

    try:
        value = x509.Certificate.load(cert_der).subject.native.get("organization_name")
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _verify_sm2(cert_der: bytes, signature: bytes, data: bytes, user_id: bytes) -> bool:
    from sdk.gm.x509 import certificate_public_key

    try:
        certificate_public_key(cert_der, user_id).verify(signature, data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _covered(doc: OfdDocument, signature: OfdSignature, reasons: list[str]) -> None:
    listed = {r.file for r in signature.references}
    own = {signature.path, signature.signed_value_path}
    later = {s.path for s in doc.signatures} | {s.signed_value_path for s in doc.signatures}
    for name in sorted(doc.files):
        if name in listed or name in own or name == doc.signatures_path:
            continue
        if name in later or (signature.seal_path and name == signature.seal_path):
            continue
        reasons.append(f"{name} was added after sealing (no Reference of the seal covers it)")
    page_ids = {p.id for p in doc.pages}
    for annot in signature.stamp_annots:
        if annot.page_ref not in page_ids:
            reasons.append(
                f"the seal's appearance (StampAnnot {annot.id}) stands on page {annot.page_ref!r}, "
                "not a page of the document"
            )


def _compare_seals(file_seal: ses.SealParts, signed: ses.SealParts, reasons: list[str]) -> None:
    if file_seal.der == signed.der:
        return
    if file_seal.picture != signed.picture:
        reasons.append("the seal's picture was swapped: Seal.esl shows another picture than the signed seal")
    elif file_seal.seal_info_der != signed.seal_info_der:
        reasons.append("Seal.esl's seal information differs from the seal the signature carries")
    else:
        reasons.append("Seal.esl is not the seal the signature carries")


def _check_seal(
    seal: ses.SealParts, sig: ses.SignatureParts, roots: list[Any], crls: Sequence[bytes] | None, reasons: list[str]
) -> None:
    if seal.header_id != "ES" or seal.header_version != seal.version:
        reasons.append(
            f"the seal's header is not ES version {seal.version} (ID {seal.header_id!r}, version {seal.header_version})"
        )
    if seal.maker_algorithm != ses.SM2_SM3_OID or not _verify_sm2(
        seal.maker_cert, seal.maker_signature, seal.maker_signed, DEFAULT_USER_ID
    ):
        reasons.append(
            "the seal's SES_SealInfo was altered after its maker signed it (the maker's signature does not verify)"
        )
    maker_reasons = _chain(seal.maker_cert, roots, crls, DEFAULT_USER_ID, "seal maker's certificate")
    reasons.extend(maker_reasons)
    when = sig.signed_at
    if when is None:
        reasons.append("the signature carries no signing time to check the seal's validity against")
    elif not seal.valid_start <= when <= seal.valid_end:
        reasons.append(
            f"the seal was not valid when used: valid {seal.valid_start:%Y-%m-%d} to {seal.valid_end:%Y-%m-%d}, "
            f"used {when:%Y-%m-%d %H:%M} UTC"
        )
    listed = sig.signer_cert in seal.certs or any(
        kind.lower() in ("sm3", ses.SM3_OID) and value == sm3(sig.signer_cert) for kind, value in seal.cert_digests
    )
    if not listed:
        reasons.append("the signing certificate is not one of those the seal lists (certList)")


def verify_ofd(
    data: bytes,
    trust: TrustAnchors,
    *,
    expected_sha256: str | None = None,
    expected_text: Iterable[tuple[str, str]] = (),
    crls: Sequence[bytes] | None = None,
) -> OfdDocument:
    """Verify a sealed OFD (every check above); answers the read document.

    Args:
        data: the .ofd file.
        trust: the enrolment bundle's anchors (its SM2 seal CA, the centre's name, the SM2 user id).
        expected_sha256: the file's SHA-256 from the signed metadata, when there is one.
        expected_text: (what, value) pairs the visible text must show (:func:`certificate_expectations`).
        crls: the seal CA's CRLs (DER); given, revocation is hard-fail.

    Raises:
        CertificateRejected: every check that failed, one sentence each.
        ImportError: a library of the ``certificates``/``gm`` extras is missing.
    """
    import hashlib

    reasons: list[str] = []
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        reasons.append("the file's SHA-256 differs from the one in the signed metadata")
    try:
        doc = read_ofd(data)
    except OfdError as exc:
        raise CertificateRejected([*reasons, f"the OFD cannot be read: {exc}"]) from None
    seals = [s for s in doc.signatures if s.type.lower() == "seal"]
    if not seals:
        raise CertificateRejected([*reasons, "the OFD carries no seal (Signatures.xml lists no seal signature)"])
    user_id = trust.sm2_user_id or DEFAULT_USER_ID
    roots = seal_ca_certificates(trust.seal_ca_pem)
    signature = seals[0]

    # 2. digests
    if signature.check_method not in (ses.SM3_OID, "SM3", "sm3"):
        reasons.append(f"the References are not checked with SM3 (CheckMethod {signature.check_method!r})")
    for ref in signature.references:
        content = doc.files.get(ref.file)
        if content is None:
            reasons.append(f"{ref.file} is listed by the seal but missing from the package (removed after sealing)")
        elif sm3(content) != ref.check_value:
            reasons.append(f"{ref.file} was changed after sealing (its SM3 differs from the seal's Reference)")
    # 3. coverage
    _covered(doc, signature, reasons)

    # 4. the signature
    raw = doc.files.get(signature.signed_value_path)
    if raw is None:
        raise CertificateRejected([*reasons, f"{signature.signed_value_path} (the signed value) is missing"])
    try:
        sig = ses.parse_signature(raw)
    except ses.SesError as exc:
        raise CertificateRejected([*reasons, f"SignedValue.dat is unreadable: {exc}"]) from None
    if sig.data_hash != sm3(doc.files[signature.path]):
        reasons.append("Signature.xml was changed after signing (its SM3 is not the signed dataHash)")
    if sig.algorithm != ses.SM2_SM3_OID:
        reasons.append(f"the signature algorithm {sig.algorithm} is not SM2-with-SM3")
    elif not _verify_sm2(sig.signer_cert, sig.signature, sig.to_sign, user_id):
        reasons.append("the SM2 signature does not verify with the signer's certificate")

    # 5. the seal
    if signature.seal_path is not None:
        file_seal_raw = doc.files.get(signature.seal_path)
        if file_seal_raw is not None:
            try:
                _compare_seals(ses.parse_seal(file_seal_raw), sig.seal, reasons)
            except ses.SesError as exc:
                reasons.append(f"Seal.esl is unreadable: {exc}")
    _check_seal(sig.seal, sig, roots, crls, reasons)

    # 6. the chain
    reasons.extend(_chain(sig.signer_cert, roots, crls, DEFAULT_USER_ID, "seal certificate"))
    holder = _organisation(sig.signer_cert)
    if trust.centre_name is not None and holder != trust.centre_name:
        reasons.append(f"the seal is not the centre's: its certificate is {holder!r}'s, not {trust.centre_name!r}'s")

    # 7. the text
    reasons.extend(reconcile_text(doc.text, expected_text))
    if reasons:
        raise CertificateRejected(list(dict.fromkeys(reasons)))
    return doc


def ofd_crl_urls(data: bytes) -> list[str]:
    """The CRL distribution point URLs (http/https) the OFD's seal and seal-maker certificates name; ``[]``
    when none (or when the file cannot be read: :func:`verify_ofd` says why)."""
    from asn1crypto import x509

    try:
        doc = read_ofd(data)
        signature = next(s for s in doc.signatures if s.type.lower() == "seal")
        parsed = ses.parse_signature(doc.files[signature.signed_value_path])
        certs = [x509.Certificate.load(parsed.signer_cert), x509.Certificate.load(parsed.seal.maker_cert)]
        urls = [p.url for cert in certs for p in cert.crl_distribution_points if p.url]
    except Exception:
        return []
    return [u for u in dict.fromkeys(urls) if u.startswith(("http://", "https://"))]
