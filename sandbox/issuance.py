"""The centre's certificates: 缮证 (issue), 注销 (supersede), reading, download links and 在线核验.

Rendering and sealing the PDF is :mod:`sandbox.certificates`; this module numbers, keeps and
serves what it produces. The metadata kept is signed detached with the centre's key
(:meth:`sandbox.pki.CentreKeys.sign_detached`) again whenever it changes.
"""

from __future__ import annotations

import json
import secrets
import time

from sdk.codes import LicenceStatus
from sdk.identifiers import LICENCE_TYPE_PROOF, licence_id
from sdk.models import ApplicationRecord, CertificateMetadata, SignedCertificateMetadata, VerificationResult

from . import certificates as certs
from .certificates_ofd import render_ofd
from .errors import CentreError
from .events import EventFeed
from .pki import CentreKeys
from .register import CHANGFENG, PROVINCE, County
from .review import Issue
from .seals import SealOffice
from .store import Store, new_id, now_utc, token_hash

__all__ = ["DOWNLOAD_SECONDS", "CertificateOffice"]

#: how long a download link (``/v1/downloads/{token}``) lives, in seconds
DOWNLOAD_SECONDS = 300


class CertificateOffice:
    """Issues, keeps and serves the centre's certificates (不动产登记证明).

    Args:
        name, code: the issuing authority's name and 统一社会信用代码.
        public_url: the base URL the certificates' QR codes point at (set later when learnt from a request).
    """

    def __init__(
        self,
        store: Store,
        *,
        keys: CentreKeys,
        events: EventFeed,
        name: str,
        code: str,
        public_url: str | None,
        seals: SealOffice | None = None,
        county: County = CHANGFENG,
    ) -> None:
        self.store = store
        self.county = county
        self.keys = keys
        self.events = events
        self.name = name
        self.code = code
        self.public_url = public_url
        #: the electronic seal system's seal (gm suite): certificates are then OFD, else PDF/PAdES
        self.seals = seals

    def verification_url(self, licence: str) -> str:
        base = (self.public_url or "http://127.0.0.1:8600").rstrip("/")
        return f"{base}/v1/verification?licence_id={licence}"

    def issue_certificate(self, institution_id: str, record: ApplicationRecord, issue: Issue) -> str:
        """缮证: number, render, seal and keep one certificate; supersede what it replaces; answer its id."""
        now = now_utc()
        cid = new_id("cert")
        seq = self.store.next_number(f"certificate:{now:%Y}", start=100001)
        number = f"{PROVINCE}({now:%Y}){self.county.name}不动产证明第{seq:07d}号"
        licence = licence_id(LICENCE_TYPE_PROOF, self.code, f"{self.county.district}{now:%Y}{seq:07d}", 1)
        units = [p.unit_id for p in record.application.properties]
        meta = certs.build_metadata(
            certificate_id=cid,
            application_id=record.application_id,
            authority=self.name,
            authority_code=self.code,
            licence=licence,
            serial_number=f"{self.county.district}{now:%Y}{seq:07d}",
            certificate_number=number,
            verification_url=self.verification_url(licence),
            right_or_matter=issue.right_or_matter,
            holders=issue.holders,
            obligors=issue.obligors,
            location="；".join(p.location for p in record.application.properties),
            unit_ids=units,
            terms=issue.terms,
            notes=issue.notes,
            issued_at=now,
        )
        if self.seals is not None:  # the gm suite: OFD sealed per GB/T 38540 with the SM2 seal
            meta = meta.model_copy(update={"media_type": "application/ofd"})
            pdf = render_ofd(meta, authority=self.name, seals=self.seals)
        else:
            pdf = certs.seal_pdf(certs.render_pdf(meta, authority=self.name), self.keys, authority=self.name)
        meta = certs.finish(meta, pdf)
        with self.store.transaction():  # all or nothing (joins the caller's transaction when there is one)
            self._keep(institution_id, meta, pdf)
            for right_id in issue.rights:
                self.store.execute(
                    "UPDATE rights SET certificate_number = ?, certificate_id = ? WHERE id = ?", number, cid, right_id
                )
            self.events.emit(
                institution_id, "certificate.issued", record, {"certificate_id": cid, "licence_id": licence}
            )
            self.store.audit("centre", "certificate.issue", cid, "ok")
            for old in issue.supersedes:
                self.supersede(old, cid)
        return cid

    def _keep(self, institution_id: str, meta: CertificateMetadata, pdf: bytes) -> None:
        doc = meta.model_dump(mode="json")
        self.store.execute(
            "INSERT OR REPLACE INTO certificates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            meta.certificate_id,
            institution_id,
            meta.application_id,
            meta.licence_id,
            meta.certificate_number,
            meta.sha256,
            json.dumps(doc, ensure_ascii=False),
            json.dumps(self.keys.sign_detached(doc)),
            pdf,
        )

    def supersede(self, certificate_number: str, successor: str | None) -> None:
        """Mark the certificates bearing ``certificate_number`` 注销 (status 2), pointing at the successor."""
        rows = self.store.all("SELECT id, institution_id, metadata FROM certificates WHERE certificate_number = ?",
                              certificate_number)  # fmt: skip
        for row in rows:
            meta = CertificateMetadata.model_validate_json(row["metadata"])
            if meta.status.value == "2":
                continue
            meta = meta.model_copy(update={"status": LicenceStatus.CANCELLED, "superseded_by": successor})
            doc = meta.model_dump(mode="json")
            self.store.execute(
                "UPDATE certificates SET metadata = ?, signature = ? WHERE id = ?",
                json.dumps(doc, ensure_ascii=False),
                json.dumps(self.keys.sign_detached(doc)),
                row["id"],
            )
            app_row = self.store.one("SELECT record FROM applications WHERE id = ?", meta.application_id)
            record = ApplicationRecord.model_validate_json(app_row["record"]) if app_row else None
            self.events.emit(row["institution_id"], "certificate.superseded", record,
                             {"certificate_id": row["id"], "superseded_by": successor})  # fmt: skip
            self.store.audit("centre", "certificate.supersede", row["id"], "ok")

    def certificate(self, institution_id: str, certificate_id: str) -> SignedCertificateMetadata:
        """The certificate's metadata with the centre's detached signature.

        Raises:
            CentreError: 404 for an unknown certificate or another institution's.
        """
        row = self.store.one(
            "SELECT institution_id, metadata, signature FROM certificates WHERE id = ?", certificate_id
        )
        if row is None or row["institution_id"] != institution_id:
            raise CentreError(404, "not_found", f"no certificate {certificate_id}")
        self.store.audit(institution_id, "certificate.read", certificate_id, "ok")
        return SignedCertificateMetadata.model_validate(
            {"metadata": json.loads(row["metadata"]), "signature": json.loads(row["signature"])}
        )

    def download_token(self, institution_id: str, certificate_id: str) -> str:
        """A one-time download token valid for :data:`DOWNLOAD_SECONDS`."""
        self.certificate(institution_id, certificate_id)
        token = secrets.token_urlsafe(24)
        self.store.execute(
            "INSERT INTO downloads VALUES (?, ?, ?)", token_hash(token), certificate_id, time.time() + DOWNLOAD_SECONDS
        )
        return token

    def download(self, token: str) -> tuple[CertificateMetadata, bytes]:
        """The certificate a download token points at, and its sealed file (PDF, or OFD in the gm suite).

        Raises:
            CentreError: 404 for an unknown or expired token, or one that is a notice's (:meth:`download_target`).
        """
        cert = self.store.one("SELECT institution_id, metadata, content FROM certificates WHERE id = ?",
                              self.download_target(token))  # fmt: skip
        if cert is None:  # a token outlives nothing it points at: certificates are never deleted
            raise CentreError(404, "not_found", "this download link is unknown or has expired")
        row = {"certificate_id": CertificateMetadata.model_validate_json(cert["metadata"]).certificate_id}
        self.store.audit(cert["institution_id"], "certificate.download", row["certificate_id"], "ok")
        return CertificateMetadata.model_validate_json(cert["metadata"]), bytes(cert["content"])

    def download_target(self, token: str) -> str:
        """The id (a certificate's or a notice's) a live download token points at.

        Raises:
            CentreError: 404 for an unknown or expired token.
        """
        row = self.store.one("SELECT certificate_id, expires_at FROM downloads WHERE token_hash = ?", token_hash(token))
        if row is None or row["expires_at"] < time.time():
            raise CentreError(404, "not_found", "this download link is unknown or has expired")
        return str(row["certificate_id"])

    def verify(self, licence: str | None, sha256: str | None) -> VerificationResult:
        """在线核验 by 证照标识 or by the file's SHA-256.

        Raises:
            CentreError: 422 when neither is given.
        """
        if licence:
            row = self.store.one("SELECT metadata FROM certificates WHERE licence_id = ?", licence.strip())
        elif sha256:
            row = self.store.one("SELECT metadata FROM certificates WHERE sha256 = ?", sha256.strip().lower())
        else:
            raise CentreError(422, "validation_failed", "give licence_id or sha256")
        self.store.audit("public", "certificate.verify", licence or sha256, "found" if row else "unknown")
        if row is None:
            return VerificationResult(result="unknown", checked_at=now_utc())
        meta = CertificateMetadata.model_validate_json(row["metadata"])
        current = meta.status.value == "1"
        return VerificationResult(
            result="valid" if current else "superseded",
            licence_id=meta.licence_id,
            certificate_number=meta.certificate_number,
            status=meta.status,
            superseded_by=meta.superseded_by,
            checked_at=now_utc(),
        )
