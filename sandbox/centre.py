"""The centre's acts: accounts (admin side), enrolment, idempotency, applications.

HTTP lives in :mod:`sandbox.app`; this module is plain functions over the :class:`Store`, so the
admin CLI and the API share them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sdk._operations import encode_json
from sdk.identifiers import check_uscc
from sdk.models import (
    TRANSITIONS,
    ApplicationRecord,
    ApplicationStatus,
    Enrolment,
    EnrolmentResult,
    InstitutionProfile,
    Material,
    StatusChange,
)
from sdk.signing import algorithm_of, jwk_fingerprint, public_key_from_jwk

from .errors import CentreError
from .store import Store, new_id, now_utc, token_hash

__all__ = ["Centre", "IdempotentResult"]

IDEMPOTENCY_TTL = timedelta(hours=24)


@dataclass
class IdempotentResult:
    status: int
    body: bytes
    replayed: bool


class Centre:
    """One registration centre's state and rules."""

    def __init__(self, store: Store, *, name: str = "长丰县不动产登记中心") -> None:
        self.store = store
        self.name = name

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

    def create_operator(self, institution_id: str, display_name: str) -> str:
        oid = new_id("op")
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

    def set_channel(self, institution_id: str, status: str, reason: str | None = None) -> None:
        if status not in ("open", "suspended"):
            raise ValueError("status is open or suspended")
        self.store.execute(
            "UPDATE institutions SET channel_status = ?, channel_reason = ?, channel_since = ? WHERE id = ?",
            status,
            reason,
            now_utc().isoformat(),
            institution_id,
        )
        self.store.audit("admin", f"channel.{status}", institution_id, "ok")

    # --- enrolment ----------------------------------------------------------------------

    def enroll(self, enrolment: Enrolment) -> EnrolmentResult:
        public_key = public_key_from_jwk(enrolment.public_key)
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT institution_id, expires_at, used_at FROM enrolment_tokens WHERE token_hash = ?",
                (token_hash(enrolment.token),),
            ).fetchone()
            if row is None or row["used_at"] or datetime.fromisoformat(row["expires_at"]) < now_utc():
                raise CentreError(401, "enrolment_token_invalid", "the enrolment token is unknown, used or expired")
            key_id = new_id("key")
            algorithm = algorithm_of(public_key)
            db.execute(
                "INSERT INTO keys (key_id, institution_id, algorithm, jwk, label, fingerprint, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'active', ?)",
                (
                    key_id,
                    row["institution_id"],
                    algorithm,
                    enrolment.public_key.model_dump_json(exclude_none=True),
                    enrolment.label,
                    jwk_fingerprint(enrolment.public_key),
                    now_utc().isoformat(),
                ),
            )
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

    def _save(self, institution_id: str, record: ApplicationRecord, *, insert: bool = False) -> None:
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

    def _event(self, institution_id: str, record: ApplicationRecord, previous: ApplicationStatus | None) -> None:
        self.store.append_event(
            institution_id,
            {
                "event_id": new_id("evt"),
                "type": "application.status_changed",
                "occurred_at": now_utc().isoformat(),
                "application_id": record.application_id,
                "client_reference": record.client_reference,
                "status": record.status.value,
                "previous_status": previous.value if previous else None,
                "data": {},
            },
        )

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
            self._save(institution_id, record, insert=True)
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
        digest = hashlib.sha256(content).hexdigest()
        if len(content) != material.size or digest != material.sha256:
            raise CentreError(
                422,
                "payload_mismatch",
                f"material {material_id}: received {len(content)} bytes with sha256 {digest[:12]}…, "
                f"declared {material.size} bytes with sha256 {material.sha256[:12]}…",
            )
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO materials VALUES (?, ?, ?, ?, ?)",
                (application_id, material_id, digest, len(content), content),
            )
            received = sorted({*record.materials_received, material_id})
            record = record.model_copy(update={"materials_received": received, "updated_at": now_utc()})
            self._save(institution_id, record)
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
        return self.transition(institution_id, record, ApplicationStatus.SUBMITTED)

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
            self._save(institution_id, record)
            self._event(institution_id, record, previous)
        return record


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Method, path and the canonical JSON of the body: the same request gives the same print."""
    canonical = body
    if body:
        try:
            canonical = encode_json(json.loads(body))
        except (ValueError, TypeError):
            canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()
