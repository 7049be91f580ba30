"""The applications' records: load, save and the one way a status changes (:meth:`Ledger.transition`).

Every status change is checked against :data:`sdk.models.TRANSITIONS`, appended to the record's
history and announced on the event feed in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sdk.models import TRANSITIONS, ApplicationRecord, ApplicationStatus, StatusChange

from .errors import CentreError
from .events import EventFeed
from .store import Store, now_utc

__all__ = ["Ledger"]


#: the statuses whose event carries the decision's code and notice number
_DECIDED = frozenset({ApplicationStatus.NOT_ACCEPTED, ApplicationStatus.REFUSED, ApplicationStatus.VOIDED})


class Ledger:
    """The stored :class:`~sdk.models.ApplicationRecord` of every application, by institution."""

    def __init__(self, store: Store, events: EventFeed) -> None:
        self.store = store
        self.events = events

    def load(self, institution_id: str, application_id: str) -> ApplicationRecord:
        """The record of one of the institution's applications.

        Raises:
            CentreError: 404 when there is none (or it belongs to another institution).
        """
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

    def transition(
        self,
        institution_id: str,
        record: ApplicationRecord,
        status: ApplicationStatus,
        note: str | None = None,
        **changes: Any,
    ) -> ApplicationRecord:
        """Move an application to ``status``, recording history and emitting the event, atomically.

        Raises:
            CentreError: 409 ``invalid_state`` when ``status`` cannot follow the current one.
        """
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
            if record.decision is not None and status in _DECIDED:
                data = {"decision_code": record.decision.code, "notice_number": record.decision.notice_number}
            if status is ApplicationStatus.CERTIFICATE_ISSUED:
                data = {"certificate_ids": record.certificate_ids}
            self.events.emit(institution_id, "application.status_changed", record, data, previous)
        self.store.audit("centre", f"application.{status.value}", record.application_id, "ok")
        return record
