"""The bank's side of an application's life at the centre: create, upload materials, submit,
answer a 补正 (supplement), withdraw; read one or many."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from sdk.models import (
    TRANSITIONS,
    Application,
    ApplicationRecord,
    ApplicationStatus,
    Material,
    StatusChange,
    Supplement,
    Withdrawal,
)

from .accounts import Accounts
from .errors import CentreError
from .esign import check_declaration
from .ledger import Ledger
from .payload import check_payload
from .schedule import Schedule
from .store import Store, new_id, now_utc

__all__ = ["REQUIRE_ESIGN_DOCUMENTS", "Applications"]


def _dumped(value: Any) -> Any:
    """``value`` as JSON data (models and lists of models dumped)."""
    if isinstance(value, list):
        return [_dumped(v) for v in value]
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


#: whether a signature entry without its signed document (``signature_id`` only) is refused — as the rules have it
#: (seed 003 细则 (四): the applicant's e-signature is checked; an id alone proves nothing): 422 ``esignature_refused``
REQUIRE_ESIGN_DOCUMENTS = True


class Applications:
    """Applications as the bank sends and changes them; the workflow moves them after submission."""

    def __init__(
        self,
        store: Store,
        *,
        ledger: Ledger,
        schedule: Schedule,
        accounts: Accounts,
        esign_cas: Sequence[str] = (),
        require_esign_documents: bool = REQUIRE_ESIGN_DOCUMENTS,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.schedule = schedule
        self.accounts = accounts
        #: the e-signature CAs (PEM) whose signatures this centre accepts (its own test CA first)
        self.esign_cas = list(esign_cas)
        self.require_esign_documents = require_esign_documents

    def create(self, institution_id: str, app: Application) -> ApplicationRecord:
        """Create a draft (草稿).

        Raises:
            CentreError: 403 ``operator_not_authorised`` when the declaration's operator is not an active account of
                the institution (seed 001 §4.2); 409 ``duplicate_reference`` when the institution already used the
                client_reference; 403 ``filing_required`` / ``filing_expired`` when the institution's 银行信息备案
                (营业执照, 金融许可证) is not complete or has expired (seed 001 §5.2) — the documents are filed once,
                never carried by an application.
        """
        self.accounts.check_operator(institution_id, app.declaration.operator_id)
        self.accounts.check_filing(institution_id)
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
            self.ledger.save(institution_id, record, insert=True)
        self.store.audit(institution_id, "application.create", record.application_id, "ok")
        return record

    def find(self, institution_id: str, client_reference: str) -> ApplicationRecord:
        """The application with the institution's client_reference (raises CentreError 404 when none)."""
        row = self.store.one(
            "SELECT id FROM applications WHERE institution_id = ? AND client_reference = ?",
            institution_id,
            client_reference,
        )
        if row is None:
            raise CentreError(404, "not_found", f"no application with client_reference {client_reference}")
        return self.ledger.load(institution_id, row["id"])

    def list(self, institution_id: str, statuses: list[str], after: str | None, limit: int) -> list[ApplicationRecord]:
        """The institution's applications after the id ``after``, in id order, at most ``limit`` (1–500)."""
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
        """Receive one declared material (the same content again changes nothing).

        Raises:
            CentreError: 404 for an undeclared material, 422 ``payload_mismatch``, 409 after submission.
        """
        record = self.ledger.load(institution_id, application_id)
        declared: dict[str, Material] = {m.id: m for m in record.application.materials}
        material = declared.get(material_id)
        if material is None:
            raise CentreError(404, "not_found", f"material {material_id} is not declared in the application")
        digest = check_payload(material_id, material, content)
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
            self.ledger.save(institution_id, record)
        return record

    def submit(self, institution_id: str, application_id: str) -> ApplicationRecord:
        """Submit (已提交) a draft or a corrected application; the workflow takes it from here.

        Raises:
            CentreError: 409 in another status, 422 ``material_not_uploaded`` while a declared material is missing,
                403 ``operator_not_authorised`` when the operator is no longer (or never was) an active account of
                the institution — checked here too, before 受理, so no notice number is spent on it;
                422 ``esignature_refused`` when an applicant's e-signature fails its check against the e-signature
                CAs this centre trusts (:func:`sandbox.esign.check_declaration`: untrusted CA, altered, over
                another document, another signer), also before 受理; 403 ``filing_required`` /
                ``filing_expired`` likewise for the institution's 银行信息备案.
        """
        record = self.ledger.load(institution_id, application_id)
        if record.status not in (ApplicationStatus.DRAFT, ApplicationStatus.CORRECTION_REQUIRED):
            raise CentreError(409, "invalid_state", f"cannot submit an application in status {record.status.value}")
        self.accounts.check_operator(institution_id, record.application.declaration.operator_id)
        self.accounts.check_filing(institution_id)
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
        check_declaration(
            record.application,
            lambda mid: self._content(application_id, mid),
            self.esign_cas,
            require_documents=self.require_esign_documents,
        )
        record = self.ledger.transition(institution_id, record, ApplicationStatus.SUBMITTED, "已提交", correction=None)
        self.schedule.schedule(institution_id, record.application_id)
        return record

    def _content(self, application_id: str, material_id: str) -> bytes | None:
        row = self.store.one(
            "SELECT content FROM materials WHERE application_id = ? AND material_id = ?", application_id, material_id
        )
        return None if row is None else bytes(row["content"])

    def supplement(self, institution_id: str, application_id: str, supplement: Supplement) -> ApplicationRecord:
        """Answer a 补正: add or replace materials, and/or replace the application with a corrected one.

        Raises:
            CentreError: 409 when no 补正 is open, 422 when a correction changes the type or client_reference.
        """
        record = self.ledger.load(institution_id, application_id)
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
        update: dict[str, Any] = {"materials": list(materials.values())}
        rep = app.representation
        if rep is not None and rep.power_of_attorney.material_id in {m.id for m in supplement.materials}:
            # a clearer scan of the 委托书 replaces it: the reference follows the material the bank replaced
            new = materials[rep.power_of_attorney.material_id]
            poa = rep.power_of_attorney.model_copy(update={"sha256": new.sha256})
            update["representation"] = rep.model_copy(update={"power_of_attorney": poa})
        try:  # what the supplement leaves must still be an application (never store one that cannot be read back)
            dumped = {k: _dumped(v) for k, v in update.items()}
            app = type(app).model_validate({**app.model_dump(mode="json"), **dumped})
        except ValidationError as exc:
            errors = [{"code": "invalid", "detail": str(e["msg"]), "pointer": "/" + "/".join(map(str, e["loc"]))}
                      for e in exc.errors(include_url=False, include_input=False)]  # fmt: skip
            raise CentreError(422, "validation_failed", "the supplement leaves an invalid application",
                              errors=errors) from None  # fmt: skip
        record = record.model_copy(
            update={"application": app, "materials_received": sorted(received), "updated_at": now_utc()}
        )
        self.ledger.save(institution_id, record)
        self.store.audit(institution_id, "application.supplement", application_id, "ok")
        return record

    def withdraw(self, institution_id: str, application_id: str, withdrawal: Withdrawal) -> ApplicationRecord:
        """Withdraw (撤回) an application that may still be withdrawn (raises CentreError 409 otherwise)."""
        record = self.ledger.load(institution_id, application_id)
        if ApplicationStatus.WITHDRAWN not in TRANSITIONS[record.status]:
            raise CentreError(
                409, "invalid_state", f"an application in status {record.status.value} cannot be withdrawn"
            )
        self.schedule.unschedule(application_id)
        return self.ledger.transition(institution_id, record, ApplicationStatus.WITHDRAWN, f"撤回: {withdrawal.reason}")
