"""Checking an applicant's electronic signature (电子签名, seed 002 §1.6.2; seed 003 细则 (四)(五)).

Seed 003 (四): the 申请书, 询问笔录 and 承诺书 an applicant fills online are e-signed on a signing
platform the government recognises, and become the basis of the registration. Here such an
e-signature is a *signed document*: the signing platform returns the document (a PDF) with the
applicant's PAdES signature (ETSI EN 319 142, ISO 32000-2 §12.8) appended as an incremental update
— the document's bytes unchanged, then the signature. The signer's certificate, issued by the
platform's CA, carries the applicant's identity number (居民身份证号码 or 统一社会信用代码) in its
subject ``serialNumber`` (X.520 2.5.4.5).

The application declares the signed PDF and the document it signs as two of its materials (each
with its SHA-256 and size) and refers to both from the declaration
(:class:`sdk.models.ElectronicSignatureRef`). The bank's agent checks every signature before
sending, the centre on receipt, with the same function::

    from sdk.esign import verify_esignature

    problems = verify_esignature(signed_pdf, document_pdf, id_number=party.id_number, trusted_cas=[ca_pem])
    # [] when the signature holds; else one EsignatureProblem per failed check

Each check has its own code:

``esignature_unreadable``     not a PDF, or no signature in it
``esignature_altered``        the bytes were changed after signing (the signed digest no longer matches)
``esignature_other_document`` the signature is not over the document referenced (another document signed)
``esignature_untrusted``      the signer's certificate does not chain to a trusted e-signature CA
``esignature_expired``        the signer's certificate is outside its validity (expired, or not yet valid) now
``esignature_wrong_signer``   the certificate is someone else's than the applicant named

Needs pyHanko (``pip install 'regbridge[certificates]'``), imported only when called.
Identity numbers are compared, never shown in full (:func:`sdk.privacy.mask_id`); pyHanko's own log
records of a failed validation (which print the signer's certificate subject: the applicant's name and
identity number in full) are dropped while a check runs — the check's result says what failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import logging
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .privacy import mask_id

__all__ = ["ESIGNATURE_CODES", "EsignatureCheck", "EsignatureProblem", "verify_esignature"]

#: every refusal code of :func:`verify_esignature`, with its meaning (Chinese, as shown to staff)
ESIGNATURE_CODES = {
    "esignature_unreadable": "电子签名文件无法读取或不含签名",
    "esignature_altered": "电子签名文件在签名后被改动",
    "esignature_other_document": "电子签名不是对所引用文件的签名",
    "esignature_untrusted": "电子签名证书不是受信任的电子认证机构签发",
    "esignature_expired": "电子签名证书不在有效期内",
    "esignature_wrong_signer": "电子签名人不是所列申请人",
}


@dataclass(frozen=True)
class EsignatureProblem:
    """One failed check: ``code`` (a key of :data:`ESIGNATURE_CODES`) and a Chinese ``reason``."""

    code: str
    reason: str


@dataclass(frozen=True)
class EsignatureCheck:
    """What :func:`verify_esignature` found: ``problems`` (empty when the signature holds), the time the
    signer reported (``signed_at``, aware, or ``None``) and the signer's masked identity number."""

    problems: tuple[EsignatureProblem, ...]
    signed_at: datetime | None = None
    signer: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


_QUIET = threading.local()


class _DuringCheck(logging.Filter):
    """Drops pyHanko's records on the thread of a running check: its validation failures name the signer's
    certificate subject (the applicant's name and 证件号码, in full) and would reach stderr, the journal or a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_QUIET, "on", False)


_FILTER = _DuringCheck()


@contextmanager
def _quiet_pyhanko() -> Iterator[None]:
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        # pyhanko_certvalidator's loggers too
        if name.startswith("pyhanko") and isinstance(logger, logging.Logger) and _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = False


def _norm(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().upper()


def verify_esignature(signed: bytes, document: bytes, *, id_number: str, trusted_cas: Sequence[str]) -> EsignatureCheck:
    """Check ``signed`` (the signed PDF) as the applicant ``id_number``'s e-signature over ``document``.

    Args:
        signed: the signed PDF's bytes, as uploaded.
        document: the bytes of the document the declaration says was signed (the 申请书/询问笔录 material).
        id_number: the applicant's identity number from the application (居民身份证号码/统一社会信用代码).
        trusted_cas: the e-signature CAs' certificates (PEM) the checker trusts.

    Returns:
        An :class:`EsignatureCheck`; its ``problems`` list every failed check (empty: the signature holds).

    Raises:
        ImportError: pyHanko is not installed (``pip install 'regbridge[certificates]'``).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _quiet_verify(signed, document, id_number, trusted_cas)
    # pyHanko's validation runs its own event loop: from inside one (an async server), run it on a thread
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_quiet_verify, signed, document, id_number, trusted_cas).result()


def _quiet_verify(signed: bytes, document: bytes, id_number: str, trusted_cas: Sequence[str]) -> EsignatureCheck:
    with suppress(ImportError):  # pyHanko's loggers exist once it is imported (else _verify says what to install)
        import pyhanko.sign.validation  # noqa: F401
    with _quiet_pyhanko():
        return _verify(signed, document, id_number, trusted_cas)


def _verify(signed: bytes, document: bytes, id_number: str, trusted_cas: Sequence[str]) -> EsignatureCheck:
    try:
        from asn1crypto import pem as asn1_pem
        from asn1crypto import x509 as asn1_x509
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.validation import validate_pdf_signature
        from pyhanko.sign.validation.status import SignatureCoverageLevel
        from pyhanko_certvalidator import ValidationContext
    except ImportError as exc:  # the SDK's own install has no pyHanko
        raise ImportError("checking an e-signature needs pyHanko: pip install 'regbridge[certificates]'") from exc

    def problem(code: str, detail: str = "") -> EsignatureProblem:
        return EsignatureProblem(code, ESIGNATURE_CODES[code] + (f"（{detail}）" if detail else ""))

    try:
        roots = []
        for pem in trusted_cas:
            _, _, der = asn1_pem.unarmor(pem.encode())
            roots.append(asn1_x509.Certificate.load(der))
        embedded = PdfFileReader(io.BytesIO(signed), strict=False).embedded_signatures
        if not embedded:
            return EsignatureCheck((problem("esignature_unreadable", "文件中没有签名"),))
        sig = embedded[0]
        status = validate_pdf_signature(sig, ValidationContext(trust_roots=roots, allow_fetching=False))
        serial = sig.signer_cert.subject.native.get("serial_number")
    except Exception as exc:  # a damaged or hostile PDF can fail anywhere in the parser
        return EsignatureCheck((problem("esignature_unreadable", type(exc).__name__),))
    problems: list[EsignatureProblem] = []
    if not status.intact or not status.valid:
        problems.append(problem("esignature_altered", "签名所保护的内容摘要不符"))
    elif status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        problems.append(problem("esignature_altered", "签名后又追加了内容"))
    # the platform appends the signature to the document: what was signed starts with the document's bytes
    head = signed[: len(document)]
    if not document or hashlib.sha256(head).digest() != hashlib.sha256(document).digest():
        problems.append(problem("esignature_other_document", "签名文件不是在所引用文件之上签署的"))
    if status.intact and status.valid and not status.trusted:  # a broken signature's chain is not judged
        validity = sig.signer_cert["tbs_certificate"]["validity"]
        start, end = validity["not_before"].native, validity["not_after"].native
        now = datetime.now(UTC)
        trusted = False
        if not start <= now <= end:
            when = f"已于 {end:%Y-%m-%d} 过期" if now > end else f"自 {start:%Y-%m-%d} 起才生效"
            problems.append(problem("esignature_expired", f"签名证书{when}，有效期 {start:%Y-%m-%d} 至 {end:%Y-%m-%d}"))
            # apart from its dates, does it chain to a trusted CA? judged at a moment inside its validity
            moment = end - timedelta(seconds=1) if now > end else start + timedelta(seconds=1)
            context = ValidationContext(trust_roots=roots, allow_fetching=False, moment=moment)
            try:
                trusted = validate_pdf_signature(sig, context).trusted
            except Exception:  # judged as untrusted below
                trusted = False
        if not trusted:
            issuer = sig.signer_cert.issuer.native.get("common_name", "?")
            # a trusted CA of the same name that did not verify it is another CA (another key) under that name
            namesake = any(root.subject == sig.signer_cert.issuer for root in roots)
            clash = "；受信任的同名 CA 不是签发它的那个（名称相同、密钥不同）" if namesake else ""
            problems.append(problem("esignature_untrusted", f"签发者 {issuer}{clash}"))
    signer = _norm(str(serial)) if serial else ""
    if not signer or signer != _norm(id_number):
        shown = mask_id(signer) if signer else "证书未载明证件号码"
        problems.append(problem("esignature_wrong_signer", f"签名证书 {shown}，申请人 {mask_id(_norm(id_number))}"))
    return EsignatureCheck(tuple(problems), status.signer_reported_dt, mask_id(signer) if signer else None)
