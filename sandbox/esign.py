"""The sandbox's test e-signature CA and signing helper: the "signing platform" of the demo and tests.

Seed 003 细则 (四): applicants e-sign the 申请书 / 询问笔录 on a third-party platform; the signed PDF
is what the bank sends (:mod:`sdk.esign` says what a signed document is and how it is checked).
The sandbox stands in for such a platform with its own **e-signature CA** — a separate CA from the
seal CA of :mod:`sandbox.pki` — which issues each signer a certificate whose subject carries the
signer's name (CN) and identity number (``serialNumber``), and signs with pyHanko (PAdES, P-256).

Kept like the centre's other keys (:class:`sandbox.pki.CentreKeys`): a centre with a data directory
keeps the CA key in its store encrypted (PKCS#8, scrypt/AES) under the centre's passphrase; an
in-memory centre keeps it in memory only — one CA per process for all in-memory centres, so the
tests' sample applications (:mod:`sandbox.samples`) are signed by a CA each such centre trusts.
Signer keys are made per signing and never kept.

``regbridge sandbox esign`` signs files from the command line (docs/sandbox.md).
"""

from __future__ import annotations

import datetime as _dt
import io
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .pki import KeysLocked
from .store import Store

__all__ = ["EsignAuthority", "check_declaration", "document_pdf", "memory_authority"]

CA_VALID_DAYS = 10 * 365
SIGNER_VALID_DAYS = 365
_LOCK = threading.Lock()
_MEMORY: EsignAuthority | None = None


@dataclass
class EsignAuthority:
    """The sandbox's e-signature CA (its key and certificate)."""

    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    @property
    def ca_pem(self) -> str:
        """The CA's certificate, PEM (what a bank's agent and the centre trust)."""
        return self.ca_cert.public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def generate(cls, name: str = "RegBridge 沙箱电子认证服务") -> EsignAuthority:
        """A new e-signature CA (P-256, ten years), in memory.

        Its subject carries its key's identifier (``serialNumber``): every sandbox, test process and demo makes
        its own CA, and two CAs sharing one name would let a checker pick the wrong one by name (a document
        signed under one reported as "not verified" under the other)."""
        now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        key = ec.generate_private_key(ec.SECP256R1())
        key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest.hex()[:16].upper()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name}电子签名根证书"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "RegBridge sandbox e-signature"),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, key_id),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _dt.timedelta(days=CA_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, store: Store, *, passphrase: bytes | None) -> EsignAuthority:
        """The centre's e-signature CA from ``store``, created on first use; an in-memory store's is
        :func:`memory_authority`.

        Raises:
            KeysLocked: a file-backed store without a passphrase, or the wrong passphrase.
        """
        if store.path is None:
            return memory_authority()
        if not passphrase:
            raise KeysLocked("a centre with a data directory keeps its e-signature CA key encrypted: give a passphrase")
        rows = {
            r["name"]: bytes(r["pem"])
            for r in store.all("SELECT name, pem FROM secrets WHERE name IN ('esign_ca_key', 'esign_ca_cert')")
        }
        if len(rows) == 2:
            try:
                key = serialization.load_pem_private_key(rows["esign_ca_key"], password=passphrase)
            except (ValueError, TypeError) as e:
                raise KeysLocked(f"cannot open the e-signature CA key: {e}") from None
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(key, x509.load_pem_x509_certificate(rows["esign_ca_cert"]))
        authority = cls.generate()
        pem = authority.ca_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
        with store.transaction():
            store.execute("INSERT OR REPLACE INTO secrets VALUES ('esign_ca_key', ?)", pem)
            store.execute(
                "INSERT OR REPLACE INTO secrets VALUES ('esign_ca_cert', ?)",
                authority.ca_cert.public_bytes(serialization.Encoding.PEM),
            )
        return authority

    def issue(
        self, name: str, id_number: str, *, valid_from: _dt.datetime | None = None, valid_days: int = SIGNER_VALID_DAYS
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A new signer key and its certificate: CN = ``name``, serialNumber = ``id_number``, valid ``valid_days``
        (a year) from ``valid_from`` (five minutes ago; an earlier start makes the expired certificate of a test)."""
        now = valid_from or _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                        x509.NameAttribute(NameOID.COMMON_NAME, name),
                        x509.NameAttribute(NameOID.SERIAL_NUMBER, id_number),
                    ]
                )
            )
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        return key, cert

    def sign(
        self,
        document: bytes,
        *,
        name: str,
        id_number: str,
        reason: str = "申请人电子签名",
        valid_from: _dt.datetime | None = None,
        valid_days: int = SIGNER_VALID_DAYS,
    ) -> bytes:
        """``document`` (a PDF) signed by ``name`` (``id_number``): the document's bytes unchanged, then a
        PAdES signature in an incremental update (what :func:`sdk.esign.verify_esignature` checks). The signer's
        certificate is valid ``valid_days`` from ``valid_from`` (:meth:`issue`).

        Raises:
            ValueError: ``document`` is not a PDF pyHanko can read.
        """
        from asn1crypto import keys as asn1_keys
        from asn1crypto import x509 as asn1_x509
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.pdf_utils.misc import PdfReadError
        from pyhanko.sign import fields, signers
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        key, cert = self.issue(name, id_number, valid_from=valid_from, valid_days=valid_days)
        der = serialization.Encoding.DER
        ca = asn1_x509.Certificate.load(self.ca_cert.public_bytes(der))
        signer = signers.SimpleSigner(
            signing_cert=asn1_x509.Certificate.load(cert.public_bytes(der)),
            signing_key=asn1_keys.PrivateKeyInfo.load(
                key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            ),
            cert_registry=SimpleCertificateStore.from_certs([ca]),  # type: ignore[no-untyped-call]  # unannotated upstream
        )
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(document))
        except (PdfReadError, ValueError, KeyError) as exc:
            raise ValueError(f"not a PDF that can be signed: {exc}") from None
        meta = signers.PdfSignatureMetadata(
            field_name="ApplicantSignature",
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=reason,
            md_algorithm="sha256",
        )
        out = signers.sign_pdf(writer, meta, signer=signer, bytes_reserved=8192)
        signed: bytes = out.getvalue()
        return signed


def memory_authority() -> EsignAuthority:
    """The e-signature CA of this process's in-memory centres (made once, kept in memory only)."""
    global _MEMORY
    with _LOCK:
        if _MEMORY is None:
            _MEMORY = EsignAuthority.generate()
        return _MEMORY


def document_pdf(title: str, lines: list[str] | None = None) -> bytes:
    """A small, valid, deterministic one-page PDF (ASCII text) standing in for a 申请书 or 询问笔录:
    the same arguments give the same bytes, so a document and its digest can be made again."""
    text = [title, *(lines or [])]
    ops = "BT /F1 11 Tf 50 780 Td 14 TL " + " ".join(f"({_escape(t)}) '" for t in text) + " ET"
    stream = zlib.compress(ops.encode("latin-1", "replace"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _escape(text: str) -> str:
    ascii_text = text.encode("ascii", "replace").decode()
    return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def check_declaration(
    app: Any, content: Callable[[str], bytes | None], trusted_cas: Sequence[str], *, require_documents: bool = True
) -> None:
    """The centre's check on receipt (at 提交, before 受理): every applicant's e-signature of ``app``.

    ``content(material_id)`` answers an uploaded material's bytes. With ``require_documents`` a
    reference without a signed document (``signature_id`` only) is refused: nothing can be checked of
    it. An entry for the applying bank (``/mortgagee/…``) without a document is its request signature's.

    Raises:
        CentreError: 422 ``esignature_refused``, with one error per failed check (``code`` from
            :data:`sdk.esign.ESIGNATURE_CODES` or ``esignature_missing``, a Chinese ``detail`` naming the
            material, ``pointer`` ``/declaration/signatures/N``); no notice number is spent on it.
    """
    from sdk.esign import verify_esignature

    from .errors import CentreError

    errors: list[dict[str, Any]] = []
    for i, sig in enumerate(app.declaration.signatures):
        pointer = f"/declaration/signatures/{i}"
        if sig.material_id is None or sig.document_id is None:
            if sig.party.startswith("/mortgagee/") or not require_documents:
                continue  # the applying bank's act is the request it signs
            detail = "电子签名须以签名文件提交（material_id 与 document_id），仅有签名编号无法核验"
            errors.append({"code": "esignature_missing", "detail": detail, "pointer": pointer})
            continue
        party = _party(app, sig.party)
        if party is None:
            errors.append(
                {"code": "esignature_missing", "detail": f"{sig.party} 不是本申请的当事人", "pointer": pointer}
            )
            continue
        signed, document = content(sig.material_id), content(sig.document_id)
        if signed is None or document is None:
            continue  # not uploaded: the materials check says so
        check = verify_esignature(signed, document, id_number=party.id_number, trusted_cas=trusted_cas)
        for problem in check.problems:
            errors.append(
                {
                    "code": problem.code,
                    "detail": f"材料 {sig.material_id}（{sig.party}）: {problem.reason}",
                    "pointer": pointer,
                }
            )
    if errors:
        raise CentreError(
            422,
            "esignature_refused",
            "申请人电子签名未通过核验: " + "；".join(e["detail"] for e in errors),
            errors=errors,
        )


def _party(app: Any, pointer: str) -> Any:
    """The party a JSON pointer such as ``/mortgagors/0`` names in ``app`` (``None`` when none)."""
    _, name, index = [*pointer.split("/"), "", ""][:3]
    value = getattr(app, name, None) if name and not name.startswith("_") else None
    items = value if isinstance(value, list) else [value] if value is not None else []
    if not index.isdigit() or int(index) >= len(items) or not hasattr(items[int(index)], "id_number"):
        return None
    return items[int(index)]
