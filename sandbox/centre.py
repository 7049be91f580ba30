"""The centre's acts: accounts (admin side), enrolment, idempotency, applications.

HTTP lives in :mod:`sandbox.app`; this module is plain functions over the :class:`Store`, so the
admin CLI and the API share them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from config import load_checklists, load_fees
from sdk._operations import encode_json
from sdk.codes import LicenceStatus
from sdk.identifiers import LICENCE_TYPE_PROOF, check_uscc, licence_id, uscc_check_char
from sdk.models import (
    TRANSITIONS,
    ApplicationRecord,
    ApplicationStatus,
    CertificateMetadata,
    CredentialRecord,
    Enrolment,
    EnrolmentResult,
    FeeNotice,
    InstitutionFiling,
    InstitutionProfile,
    Material,
    Operator,
    Payment,
    PaymentReceipt,
    PropertyQuery,
    PropertyQueryResult,
    PropertyRight,
    Rotation,
    SignedCertificateMetadata,
    StatusChange,
    Supplement,
    VerificationResult,
    Withdrawal,
)
from sdk.privacy import mask_name
from sdk.signing import algorithm_of, jwk_fingerprint, public_key_from_jwk

from . import certificates as certs
from .errors import CentreError
from .pki import CentreKeys
from .register import COUNTY, DISTRICT, PROVINCE, Register
from .review import Issue
from .store import Store, new_id, now_utc, token_hash
from .workflow import Timing, Workflow

__all__ = ["Centre", "IdempotentResult"]

IDEMPOTENCY_TTL = timedelta(hours=24)
DOWNLOAD_SECONDS = 300
BUNDLE_VERSION = 1
#: the sandbox centre's own 统一社会信用代码 (机关 1 1, 长丰县)
CENTRE_CODE = "11340121MB0000001" + uscc_check_char("11340121MB0000001")


@dataclass
class IdempotentResult:
    status: int
    body: bytes
    replayed: bool


class Centre:
    """One registration centre's state and rules."""

    def __init__(
        self,
        store: Store,
        *,
        name: str = "长丰县不动产登记中心",
        timing: Timing | None = None,
        passphrase: bytes | None = None,
        public_url: str | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.code = CENTRE_CODE
        self.public_url = public_url
        self.register = Register(store)
        self.register.seed()
        self.keys = CentreKeys.load_or_create(store, name=name, passphrase=passphrase)
        self.checklists = load_checklists()
        self.fees = load_fees()
        self.workflow = Workflow(self, timing or Timing())

    # --- admin side ---------------------------------------------------------------------

    def create_institution(self, *, name: str, uscc: str, licence_no: str, district: str) -> str:
        code = check_uscc(uscc)
        iid = new_id("inst")
        self.store.execute(
            "INSERT INTO institutions (id, name, uscc, licence_no, district, channel_since) VALUES (?, ?, ?, ?, ?, ?)",
            iid,
            name,
            code,
            licence_no,
            district,
            now_utc().isoformat(),
        )
        self.store.audit("admin", "institution.create", iid, "ok")
        return iid

    def create_operator(self, institution_id: str, display_name: str, operator_id: str | None = None) -> str:
        self.institution_row(institution_id)
        oid = operator_id or new_id("op")
        self.store.execute(
            "INSERT INTO operators (id, institution_id, display_name) VALUES (?, ?, ?)",
            oid,
            institution_id,
            display_name,
        )
        self.store.audit("admin", "operator.create", oid, "ok")
        return oid

    def issue_enrolment_token(self, institution_id: str, *, valid_for: timedelta = timedelta(days=7)) -> str:
        token = secrets.token_urlsafe(32)
        self.store.execute(
            "INSERT INTO enrolment_tokens VALUES (?, ?, ?, NULL)",
            token_hash(token),
            institution_id,
            (now_utc() + valid_for).isoformat(),
        )
        self.store.audit("admin", "enrolment_token.issue", institution_id, "ok")
        return token

    def create_admin_token(self, label: str) -> str:
        """A bearer token for the admin API (kept hashed; shown once)."""
        token = "rba_" + secrets.token_urlsafe(32)
        self.store.execute("INSERT INTO admin_tokens VALUES (?, ?, ?)", token_hash(token), label, now_utc().isoformat())
        self.store.audit("admin", "admin_token.create", label, "ok")
        return token

    def check_admin_token(self, token: str) -> str | None:
        row = self.store.one("SELECT label FROM admin_tokens WHERE token_hash = ?", token_hash(token))
        return row["label"] if row else None

    def list_institutions(self) -> list[InstitutionProfile]:
        return [self.profile(r["id"]) for r in self.store.all("SELECT id FROM institutions ORDER BY id")]

    def set_channel(self, institution_id: str, status: str, reason: str | None = None) -> None:
        if status not in ("open", "suspended"):
            raise ValueError("status is open or suspended")
        self.institution_row(institution_id)
        self.store.execute(
            "UPDATE institutions SET channel_status = ?, channel_reason = ?, channel_since = ? WHERE id = ?",
            status,
            reason,
            now_utc().isoformat(),
            institution_id,
        )
        self.store.audit("admin", f"channel.{status}", institution_id, "ok")
        self.emit(institution_id, "channel.suspended" if status == "suspended" else "channel.resumed", None,
                  {"reason": reason} if reason else {})  # fmt: skip

    # --- enrolment ----------------------------------------------------------------------

    def _register_key(self, institution_id: str, jwk: Any, label: str) -> tuple[str, str]:
        """Store a new active public key (inside the caller's transaction); answer its id and algorithm.

        Raises:
            CentreError: 422 for a key that is not a valid Ed25519/P-256 key, 409 for one already registered.
        """
        algorithm = algorithm_of(_public_key(jwk))
        fingerprint = jwk_fingerprint(jwk)
        if self.store.one("SELECT 1 FROM keys WHERE fingerprint = ?", fingerprint):
            raise CentreError(409, "key_exists", "this public key is already registered")
        key_id = new_id("key")
        self.store.execute(
            "INSERT INTO keys (key_id, institution_id, algorithm, jwk, label, fingerprint, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'active', ?)",
            key_id,
            institution_id,
            algorithm,
            jwk.model_dump_json(exclude_none=True),
            label,
            fingerprint,
            now_utc().isoformat(),
        )
        return key_id, algorithm

    def enroll(self, enrolment: Enrolment) -> EnrolmentResult:
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT institution_id, expires_at, used_at FROM enrolment_tokens WHERE token_hash = ?",
                (token_hash(enrolment.token),),
            ).fetchone()
            if row is not None and row["used_at"]:
                # the same enrolment again (its answer was lost): the key this token registered
                same = db.execute(
                    "SELECT key_id, algorithm FROM keys WHERE institution_id = ? AND fingerprint = ?",
                    (row["institution_id"], jwk_fingerprint(enrolment.public_key)),
                ).fetchone()
                if same is not None:
                    return EnrolmentResult(
                        key_id=same["key_id"], institution_id=row["institution_id"], algorithm=same["algorithm"]
                    )
            if row is None or row["used_at"] or datetime.fromisoformat(row["expires_at"]) < now_utc():
                raise CentreError(401, "enrolment_token_invalid", "the enrolment token is unknown, used or expired")
            key_id, algorithm = self._register_key(row["institution_id"], enrolment.public_key, enrolment.label)
            db.execute(
                "UPDATE enrolment_tokens SET used_at = ? WHERE token_hash = ?",
                (now_utc().isoformat(), token_hash(enrolment.token)),
            )
        self.store.audit(row["institution_id"], "key.enroll", key_id, "ok")
        return EnrolmentResult(key_id=key_id, institution_id=row["institution_id"], algorithm=algorithm)

    def profile(self, institution_id: str) -> InstitutionProfile:
        row = self.store.one("SELECT * FROM institutions WHERE id = ?", institution_id)
        if row is None:
            raise CentreError(404, "not_found", "no such institution")
        return InstitutionProfile(
            institution_id=row["id"],
            name=row["name"],
            uscc=row["uscc"],
            financial_licence_number=row["licence_no"],
            district=row["district"],
            channel={"status": row["channel_status"], "reason": row["channel_reason"], "since": row["channel_since"]},
            filing=json.loads(row["filing"]),
            webhook_url=row["webhook_url"],
        )

    # --- idempotency --------------------------------------------------------------------

    def idempotent(
        self,
        institution_id: str,
        key: str | None,
        fingerprint: str,
        act: Callable[[], tuple[int, bytes]],
    ) -> IdempotentResult:
        """Run ``act`` once per (institution, key); replay its stored answer for the same request.

        Same key + different request → 409 ``idempotency_conflict``. 5xx answers are not kept.
        """
        if not key or len(key) > 255 or not key.isprintable():
            raise CentreError(400, "malformed_request", "an Idempotency-Key (1–255 visible characters) is required")
        with self.store.transaction() as db:
            db.execute("DELETE FROM idempotency WHERE created_at < ?", ((now_utc() - IDEMPOTENCY_TTL).isoformat(),))
            row = db.execute(
                "SELECT fingerprint, status_code, body FROM idempotency WHERE institution_id = ? AND key = ?",
                (institution_id, key),
            ).fetchone()
            if row is not None:
                if row["fingerprint"] != fingerprint:
                    raise CentreError(409, "idempotency_conflict", "this Idempotency-Key was used for another request")
                return IdempotentResult(row["status_code"], bytes(row["body"]), True)
            try:
                status, body = act()
            except CentreError as e:
                if e.status >= 500:
                    raise
                status, body = e.status, json.dumps(e.problem(None), ensure_ascii=False).encode()
            if status < 500:
                db.execute(
                    "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)",
                    (institution_id, key, fingerprint, status, body, now_utc().isoformat()),
                )
            return IdempotentResult(status, body, False)

    # --- applications -------------------------------------------------------------------

    def _load(self, institution_id: str, application_id: str) -> ApplicationRecord:
        row = self.store.one("SELECT institution_id, record FROM applications WHERE id = ?", application_id)
        if row is None or row["institution_id"] != institution_id:
            raise CentreError(404, "not_found", f"no application {application_id}")
        return ApplicationRecord.model_validate_json(row["record"])

    def save(self, institution_id: str, record: ApplicationRecord, *, insert: bool = False) -> None:
        doc = record.model_dump_json()
        if insert:
            self.store.execute(
                "INSERT INTO applications VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                record.application_id,
                institution_id,
                record.client_reference,
                record.type,
                record.status.value,
                doc,
                record.created_at.isoformat(),
                record.updated_at.isoformat(),
            )
        else:
            self.store.execute(
                "UPDATE applications SET status = ?, record = ?, updated_at = ? WHERE id = ?",
                record.status.value,
                doc,
                record.updated_at.isoformat(),
                record.application_id,
            )

    def emit(
        self,
        institution_id: str,
        kind: str,
        record: ApplicationRecord | None,
        data: dict[str, Any] | None = None,
        previous: ApplicationStatus | None = None,
    ) -> int:
        """Append an event to the institution's feed (ids and codes only, never personal data)."""
        seq = self.store.append_event(
            institution_id,
            {
                "event_id": new_id("evt"),
                "type": kind,
                "occurred_at": now_utc().isoformat(),
                "application_id": record.application_id if record else None,
                "client_reference": record.client_reference if record else None,
                "status": record.status.value if record else None,
                "previous_status": previous.value if previous else None,
                "data": data or {},
            },
        )
        row = self.store.one("SELECT webhook_url FROM institutions WHERE id = ?", institution_id)
        if row is not None and row["webhook_url"]:
            self.store.execute(
                "INSERT OR IGNORE INTO deliveries (seq, institution_id, url, due_at) VALUES (?, ?, ?, ?)",
                seq,
                institution_id,
                row["webhook_url"],
                time.time(),
            )
        return seq

    def create_application(self, institution_id: str, app: Any) -> ApplicationRecord:
        existing = self.store.one(
            "SELECT id FROM applications WHERE institution_id = ? AND client_reference = ?",
            institution_id,
            app.client_reference,
        )
        if existing:
            raise CentreError(
                409,
                "duplicate_reference",
                f"application {existing['id']} already has client_reference {app.client_reference}",
            )
        now = now_utc()
        record = ApplicationRecord(
            application_id=new_id("app"),
            client_reference=app.client_reference,
            type=app.type,
            status=ApplicationStatus.DRAFT,
            created_at=now,
            updated_at=now,
            application=app,
            history=[StatusChange(status=ApplicationStatus.DRAFT, at=now)],
        )
        with self.store.transaction():
            self.save(institution_id, record, insert=True)
        self.store.audit(institution_id, "application.create", record.application_id, "ok")
        return record

    def get_application(self, institution_id: str, application_id: str) -> ApplicationRecord:
        return self._load(institution_id, application_id)

    def find_application(self, institution_id: str, client_reference: str) -> ApplicationRecord:
        row = self.store.one(
            "SELECT id FROM applications WHERE institution_id = ? AND client_reference = ?",
            institution_id,
            client_reference,
        )
        if row is None:
            raise CentreError(404, "not_found", f"no application with client_reference {client_reference}")
        return self._load(institution_id, row["id"])

    def list_applications(
        self, institution_id: str, statuses: list[str], after: str | None, limit: int
    ) -> list[ApplicationRecord]:
        sql = "SELECT record FROM applications WHERE institution_id = ? AND id > ?"
        args: list[Any] = [institution_id, after or ""]
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args += statuses
        rows = self.store.all(sql + " ORDER BY id LIMIT ?", *args, max(1, min(limit, 500)))
        return [ApplicationRecord.model_validate_json(r["record"]) for r in rows]

    def upload_material(
        self, institution_id: str, application_id: str, material_id: str, content: bytes
    ) -> ApplicationRecord:
        record = self._load(institution_id, application_id)
        declared: dict[str, Material] = {m.id: m for m in record.application.materials}
        material = declared.get(material_id)
        if material is None:
            raise CentreError(404, "not_found", f"material {material_id} is not declared in the application")
        digest = _check_payload(material_id, material, content)
        if material_id in record.materials_received:
            return record  # the same content again (a retried PUT): nothing changes
        if record.status not in (ApplicationStatus.DRAFT, ApplicationStatus.CORRECTION_REQUIRED):
            raise CentreError(409, "invalid_state", f"materials cannot change in status {record.status.value}")
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO materials VALUES (?, ?, ?, ?, ?)",
                (application_id, material_id, digest, len(content), content),
            )
            received = sorted({*record.materials_received, material_id})
            record = record.model_copy(update={"materials_received": received, "updated_at": now_utc()})
            self.save(institution_id, record)
        return record

    def submit(self, institution_id: str, application_id: str) -> ApplicationRecord:
        record = self._load(institution_id, application_id)
        if record.status not in (ApplicationStatus.DRAFT, ApplicationStatus.CORRECTION_REQUIRED):
            raise CentreError(409, "invalid_state", f"cannot submit an application in status {record.status.value}")
        missing = [m.id for m in record.application.materials if m.id not in record.materials_received]
        if missing:
            raise CentreError(
                422,
                "validation_failed",
                f"{len(missing)} declared material(s) not uploaded",
                errors=[
                    {
                        "code": "material_not_uploaded",
                        "detail": f"material {m} is declared but not uploaded",
                        "pointer": f"/materials/{i}",
                    }
                    for i, m in enumerate(record.application.materials)
                    if m.id in missing
                ],
            )
        record = self.transition(institution_id, record, ApplicationStatus.SUBMITTED, "已提交", correction=None)
        self.workflow.schedule(institution_id, record.application_id)
        return record

    def transition(
        self,
        institution_id: str,
        record: ApplicationRecord,
        status: ApplicationStatus,
        note: str | None = None,
        **changes: Any,
    ) -> ApplicationRecord:
        """Move an application to ``status``, recording history and emitting the event, atomically."""
        if status not in TRANSITIONS[record.status]:
            raise CentreError(409, "invalid_state", f"{record.status.value} cannot become {status.value}")
        now = now_utc()
        previous = record.status
        record = record.model_copy(
            update={
                "status": status,
                "updated_at": now,
                "history": [*record.history, StatusChange(status=status, at=now, note=note)],
                **changes,
            }
        )
        with self.store.transaction():
            self.save(institution_id, record)
            data: dict[str, Any] = {}
            if record.decision is not None and status in (ApplicationStatus.NOT_ACCEPTED, ApplicationStatus.REFUSED):
                data = {"decision_code": record.decision.code, "notice_number": record.decision.notice_number}
            if status is ApplicationStatus.CERTIFICATE_ISSUED:
                data = {"certificate_ids": record.certificate_ids}
            self.emit(institution_id, "application.status_changed", record, data, previous)
        self.store.audit("centre", f"application.{status.value}", record.application_id, "ok")
        return record

    # --- institution --------------------------------------------------------------------

    def institution_row(self, institution_id: str) -> Any:
        row = self.store.one("SELECT * FROM institutions WHERE id = ?", institution_id)
        if row is None:
            raise CentreError(404, "not_found", f"no institution {institution_id}")
        return row

    def operator_ids(self, institution_id: str) -> set[str]:
        rows = self.store.all("SELECT id FROM operators WHERE institution_id = ? AND active = 1", institution_id)
        return {r["id"] for r in rows}

    def list_operators(self, institution_id: str) -> list[Operator]:
        rows = self.store.all("SELECT * FROM operators WHERE institution_id = ? ORDER BY id", institution_id)
        return [Operator(operator_id=r["id"], display_name=r["display_name"], active=bool(r["active"])) for r in rows]

    def file_institution(self, institution_id: str, filing: InstitutionFiling) -> InstitutionProfile:
        """银行信息备案: declare the institution's documents (uploaded one by one after)."""
        docs = [m.model_dump(mode="json") for m in filing.documents]
        self.store.execute(
            "UPDATE institutions SET filing = ? WHERE id = ?", json.dumps(docs, ensure_ascii=False), institution_id
        )
        self.store.audit(institution_id, "institution.filing", institution_id, "ok")
        return self.profile(institution_id)

    def upload_filing_document(self, institution_id: str, material_id: str, content: bytes) -> InstitutionProfile:
        filing = [Material.model_validate(m) for m in json.loads(self.institution_row(institution_id)["filing"])]
        declared = next((m for m in filing if m.id == material_id), None)
        if declared is None:
            raise CentreError(404, "not_found", f"document {material_id} is not declared in the filing")
        _check_payload(material_id, declared, content)
        self.store.execute(
            "INSERT OR REPLACE INTO filing_documents VALUES (?, ?, ?, ?)",
            institution_id,
            material_id,
            declared.sha256,
            content,
        )
        return self.profile(institution_id)

    def set_webhook(self, institution_id: str, url: str) -> InstitutionProfile:
        self.store.execute("UPDATE institutions SET webhook_url = ? WHERE id = ?", url, institution_id)
        self.store.audit(institution_id, "institution.webhook", institution_id, "ok")
        return self.profile(institution_id)

    # --- credentials --------------------------------------------------------------------

    def _credential(self, row: Any) -> CredentialRecord:
        return CredentialRecord(
            key_id=row["key_id"],
            algorithm=row["algorithm"],
            label=row["label"],
            fingerprint=row["fingerprint"],
            status=row["status"],
            created_at=row["created_at"],
            revoke_at=row["revoke_at"],
            revoked_at=row["revoked_at"],
        )

    def list_credentials(self, institution_id: str) -> list[CredentialRecord]:
        rows = self.store.all("SELECT * FROM keys WHERE institution_id = ? ORDER BY created_at", institution_id)
        return [self._credential(r) for r in rows]

    def rotate(self, institution_id: str, signing_key_id: str, rotation: Rotation) -> CredentialRecord:
        """Register a new key; the key that signed the request is revoked after the grace period."""
        with self.store.transaction():
            key_id, _ = self._register_key(institution_id, rotation.public_key, rotation.label)
            self.store.execute(
                "UPDATE keys SET revoke_at = ? WHERE key_id = ?",
                (now_utc() + timedelta(seconds=rotation.grace_seconds)).isoformat(),
                signing_key_id,
            )
        self.store.audit(institution_id, "key.rotate", f"{signing_key_id}->{key_id}", "ok")
        row = self.store.one("SELECT * FROM keys WHERE key_id = ?", key_id)
        return self._credential(row)

    def revoke(self, institution_id: str | None, key_id: str, reason: str) -> CredentialRecord:
        """Revoke a key now (the institution its own keys; the admin any key: ``institution_id=None``)."""
        row = self.store.one("SELECT * FROM keys WHERE key_id = ?", key_id)
        if row is None or (institution_id is not None and row["institution_id"] != institution_id):
            raise CentreError(404, "not_found", f"no key {key_id}")
        self.store.execute(
            "UPDATE keys SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?",
            now_utc().isoformat(),
            key_id,
        )
        self.store.audit(institution_id or "admin", "key.revoke", key_id, reason[:100])
        return self._credential(self.store.one("SELECT * FROM keys WHERE key_id = ?", key_id))

    # --- enrolment bundle (admin) -------------------------------------------------------

    def enrolment_bundle(self, institution_id: str, api_base_url: str, *, valid_for: timedelta) -> dict[str, Any]:
        """A one-time token with everything the bank needs to trust this centre, signed by it."""
        inst = self.institution_row(institution_id)
        token = self.issue_enrolment_token(institution_id, valid_for=valid_for)
        now = now_utc()
        bundle = {
            "version": BUNDLE_VERSION,
            "api_base_url": api_base_url.rstrip("/"),
            "institution_id": institution_id,
            "institution_name": inst["name"],
            "institution_uscc": inst["uscc"],
            "token": token,
            "issued_at": now.isoformat(),
            "expires_at": (now + valid_for).isoformat(),
            "centre": {"name": self.name, "code": self.code},
            "trust": {
                "seal_ca_pem": self.keys.ca_pem,
                "centre_key_id": self.keys.centre_key_id,
                "centre_key": self.keys.centre_jwk.model_dump(exclude_none=True),
            },
        }
        return {"bundle": bundle, "signature": self.keys.sign_detached(bundle)}

    # --- supplements and withdrawal -----------------------------------------------------

    def supplement(self, institution_id: str, application_id: str, supplement: Supplement) -> ApplicationRecord:
        """Answer a 补正: add or replace materials, and/or replace the application with a corrected one."""
        record = self._load(institution_id, application_id)
        if record.status is not ApplicationStatus.CORRECTION_REQUIRED:
            raise CentreError(409, "invalid_state", f"no 补正 is open (status {record.status.value})")
        app = record.application
        if supplement.corrected is not None:
            if (supplement.corrected.type, supplement.corrected.client_reference) != (app.type, app.client_reference):
                raise CentreError(
                    422,
                    "validation_failed",
                    "a corrected application keeps its type and client_reference",
                    errors=[{"code": "immutable", "detail": "type and client_reference may not change",
                             "pointer": "/corrected/client_reference"}],
                )  # fmt: skip
            app = supplement.corrected
        materials = {m.id: m for m in app.materials}
        received = set(record.materials_received)
        for m in supplement.materials:
            old = materials.get(m.id)
            if old is None or (old.sha256, old.size) != (m.sha256, m.size):
                received.discard(m.id)
            materials[m.id] = m
        for mid in list(received):
            if mid not in materials:
                received.discard(mid)
        app = app.model_copy(update={"materials": list(materials.values())})
        record = record.model_copy(
            update={"application": app, "materials_received": sorted(received), "updated_at": now_utc()}
        )
        self.save(institution_id, record)
        self.store.audit(institution_id, "application.supplement", application_id, "ok")
        return record

    def withdraw(self, institution_id: str, application_id: str, withdrawal: Withdrawal) -> ApplicationRecord:
        record = self._load(institution_id, application_id)
        if ApplicationStatus.WITHDRAWN not in TRANSITIONS[record.status]:
            raise CentreError(
                409, "invalid_state", f"an application in status {record.status.value} cannot be withdrawn"
            )
        self.workflow.unschedule(application_id)
        return self.transition(institution_id, record, ApplicationStatus.WITHDRAWN, f"撤回: {withdrawal.reason}")

    # --- fees ---------------------------------------------------------------------------

    def fee_notice(self, institution_id: str, application_id: str) -> FeeNotice:
        self._load(institution_id, application_id)
        row = self.store.one("SELECT notice FROM fees WHERE application_id = ?", application_id)
        if row is None:
            raise CentreError(404, "not_found", "no fee has been assessed yet (fees are assessed at 受理)")
        return FeeNotice.model_validate_json(row["notice"])

    def pay(self, institution_id: str, application_id: str, payment: Payment) -> PaymentReceipt:
        notice = self.fee_notice(institution_id, application_id)
        if notice.status != "unpaid":
            raise CentreError(409, "invalid_state", f"the fee notice is {notice.status}")
        if payment.amount != notice.total:
            raise CentreError(
                422,
                "validation_failed",
                f"the amount must equal the notice's total {notice.total}",
                errors=[{"code": "amount_mismatch", "detail": f"expected {notice.total}", "pointer": "/amount"}],
            )
        now = now_utc()
        receipt = PaymentReceipt(
            payment_id=new_id("pay"),
            application_id=application_id,
            amount=payment.amount,
            method=payment.method,
            paid_at=now,
            receipt_number=f"{DISTRICT}{now:%Y}{self.store.next_number('receipt'):08d}",
        )
        with self.store.transaction():
            notice = notice.model_copy(update={"status": "paid", "payment_id": receipt.payment_id})
            self.store.execute(
                "UPDATE fees SET notice = ? WHERE application_id = ?", notice.model_dump_json(), application_id
            )
            self.store.execute(
                "INSERT INTO payments VALUES (?, ?, ?, ?)",
                receipt.payment_id,
                institution_id,
                application_id,
                receipt.model_dump_json(),
            )
            record = self._load(institution_id, application_id).model_copy(update={"fee_status": "paid"})
            self.save(institution_id, record)
            self.emit(
                institution_id, "fee.paid", record, {"payment_id": receipt.payment_id, "total": str(receipt.amount)}
            )
        self.store.audit(institution_id, "fee.pay", application_id, "ok")
        if record.status is ApplicationStatus.RECORDED:
            self.workflow.schedule(institution_id, application_id)
        return receipt

    def receipt(self, institution_id: str, payment_id: str) -> PaymentReceipt:
        row = self.store.one("SELECT institution_id, receipt FROM payments WHERE payment_id = ?", payment_id)
        if row is None or row["institution_id"] != institution_id:
            raise CentreError(404, "not_found", f"no payment {payment_id}")
        return PaymentReceipt.model_validate_json(row["receipt"])

    # --- certificates -------------------------------------------------------------------

    def verification_url(self, licence: str) -> str:
        base = (self.public_url or "http://127.0.0.1:8600").rstrip("/")
        return f"{base}/v1/verification?licence_id={licence}"

    def issue_certificate(self, institution_id: str, record: ApplicationRecord, issue: Issue) -> str:
        """缮证: number, render, seal and keep one certificate; supersede what it replaces."""
        now = now_utc()
        cid = new_id("cert")
        seq = self.store.next_number(f"certificate:{now:%Y}", start=100001)
        number = f"{PROVINCE}({now:%Y}){COUNTY}不动产证明第{seq:07d}号"
        licence = licence_id(LICENCE_TYPE_PROOF, self.code, f"{DISTRICT}{now:%Y}{seq:07d}", 1)
        units = [p.unit_id for p in record.application.properties]
        meta = certs.build_metadata(
            certificate_id=cid,
            application_id=record.application_id,
            authority=self.name,
            authority_code=self.code,
            licence=licence,
            serial_number=f"{DISTRICT}{now:%Y}{seq:07d}",
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
        pdf = certs.seal_pdf(certs.render_pdf(meta, authority=self.name), self.keys, authority=self.name)
        meta = certs.finish(meta, pdf)
        with self.store.transaction():  # all or nothing (joins the caller's transaction when there is one)
            self._store_certificate(institution_id, meta, pdf)
            for right_id in issue.rights:
                self.store.execute(
                    "UPDATE rights SET certificate_number = ?, certificate_id = ? WHERE id = ?", number, cid, right_id
                )
            self.emit(institution_id, "certificate.issued", record, {"certificate_id": cid, "licence_id": licence})
            self.store.audit("centre", "certificate.issue", cid, "ok")
            for old in issue.supersedes:
                self.supersede(old, cid)
        return cid

    def _store_certificate(self, institution_id: str, meta: CertificateMetadata, pdf: bytes) -> None:
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
            self.emit(row["institution_id"], "certificate.superseded", record,
                      {"certificate_id": row["id"], "superseded_by": successor})  # fmt: skip
            self.store.audit("centre", "certificate.supersede", row["id"], "ok")

    def certificate(self, institution_id: str, certificate_id: str) -> SignedCertificateMetadata:
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
        self.certificate(institution_id, certificate_id)
        token = secrets.token_urlsafe(24)
        self.store.execute(
            "INSERT INTO downloads VALUES (?, ?, ?)", token_hash(token), certificate_id, time.time() + DOWNLOAD_SECONDS
        )
        return token

    def download(self, token: str) -> tuple[CertificateMetadata, bytes]:
        row = self.store.one("SELECT certificate_id, expires_at FROM downloads WHERE token_hash = ?", token_hash(token))
        if row is None or row["expires_at"] < time.time():
            raise CentreError(404, "not_found", "this download link is unknown or has expired")
        cert = self.store.one("SELECT institution_id, metadata, content FROM certificates WHERE id = ?",
                              row["certificate_id"])  # fmt: skip
        self.store.audit(cert["institution_id"], "certificate.download", row["certificate_id"], "ok")
        return CertificateMetadata.model_validate_json(cert["metadata"]), bytes(cert["content"])

    def verify(self, licence: str | None, sha256: str | None) -> VerificationResult:
        """在线核验 by 证照标识 or by the file's SHA-256."""
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

    # --- property query (登记资料查询) ---------------------------------------------------

    def query_property(self, institution_id: str, query: PropertyQuery) -> PropertyQueryResult:
        if query.operator_id not in self.operator_ids(institution_id):
            raise CentreError(403, "forbidden", "the operator is not an account of this institution")
        if query.authorisation.valid_until is not None and query.authorisation.valid_until < now_utc().date():
            raise CentreError(422, "validation_failed", "the authorisation has expired",
                              errors=[{"code": "expired", "detail": "valid_until has passed",
                                       "pointer": "/authorisation/valid_until"}])  # fmt: skip
        unit = None
        if query.unit_id:
            unit = self.register.unit(query.unit_id)
        else:
            row = self.store.one("SELECT unit_id FROM units WHERE title_certificate = ?", query.title_certificate)
            unit = self.register.unit(row["unit_id"]) if row else None
        if unit is None:
            raise CentreError(404, "not_found", "no such unit or title certificate in the register")
        applicant = query.authorisation.applicant.id_number
        if applicant not in unit.owner_ids():
            raise CentreError(403, "forbidden", "the authorising applicant is not a right holder of this unit")
        rights = []
        for r in self.register.rights(unit.unit_id, current_only=True):
            named = r.holder_code == applicant or r.holder_code == self.institution_row(institution_id)["uscc"]
            rights.append(
                PropertyRight(
                    kind=r.kind,  # type: ignore[arg-type]
                    certificate_number=r.certificate_number,
                    holder=r.holder_name if named or r.kind != "ownership" else mask_name(r.holder_name or ""),
                    rank=r.rank,
                    amount=r.amount if r.method == "1" else r.maximum_amount,
                    registered_at=r.registered_at,
                    note=r.note,
                )
            )
        qid = new_id("qry")
        self.store.execute(
            "INSERT INTO queries VALUES (?, ?, ?, ?, ?, ?, ?)",
            qid,
            institution_id,
            query.operator_id,
            unit.unit_id,
            query.authorisation.reference,
            query.purpose,
            now_utc().isoformat(),
        )
        self.store.audit(institution_id, "property.query", qid, "ok")
        return PropertyQueryResult(
            query_id=qid,
            unit_id=unit.unit_id,
            location=unit.location,
            property_type=unit.property_type,  # type: ignore[arg-type]
            rights=rights,
            seized=any(r.kind == "seizure" for r in rights),
            objection=any(r.kind == "objection" for r in rights),
            mortgaged=any(r.kind == "mortgage" for r in rights),
            answered_at=now_utc(),
        )


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Method, path and the canonical JSON of the body: the same request gives the same print."""
    canonical = body
    if body:
        try:
            canonical = encode_json(json.loads(body))
        except (ValueError, TypeError):
            canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def _check_payload(material_id: str, material: Material, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != material.size or digest != material.sha256:
        raise CentreError(
            422,
            "payload_mismatch",
            f"material {material_id}: received {len(content)} bytes with sha256 {digest[:12]}…, "
            f"declared {material.size} bytes with sha256 {material.sha256[:12]}…",
        )
    return digest


def _public_key(jwk: Any) -> Any:
    try:
        return public_key_from_jwk(jwk)
    except (ValueError, TypeError) as e:
        raise CentreError(
            422,
            "validation_failed",
            "the public key is not a valid Ed25519 or P-256 key",
            errors=[{"code": "invalid_key", "detail": str(e), "pointer": "/public_key"}],
        ) from None
