"""登记资料查询: a bank's query of a unit's current rights, on the right holder's authorisation.

Names of owners the query does not concern are masked (:func:`sdk.privacy.mask_name`).
"""

from __future__ import annotations

from sdk.models import PropertyQuery, PropertyQueryResult, PropertyRight
from sdk.privacy import mask_name

from .accounts import Accounts
from .errors import CentreError
from .register import Register
from .store import Store, new_id, now_utc

__all__ = ["PropertyQueries"]


class PropertyQueries:
    def __init__(self, store: Store, *, register: Register, accounts: Accounts) -> None:
        self.store = store
        self.register = register
        self.accounts = accounts

    def query_property(self, institution_id: str, query: PropertyQuery) -> PropertyQueryResult:
        """Answer the unit's current rights.

        Raises:
            CentreError: 403 when the operator is not the institution's or the applicant holds no right of the
                unit, 422 for an expired authorisation, 404 for an unknown unit or title certificate.
        """
        self.accounts.check_operator(institution_id, query.operator_id, "/operator_id")
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
            named = r.holder_code == applicant or r.holder_code == self.accounts.institution_row(institution_id)["uscc"]
            rights.append(
                PropertyRight(
                    kind=r.kind,
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
            property_type=unit.property_type,
            rights=rights,
            seized=any(r.kind == "seizure" for r in rights),
            objection=any(r.kind == "objection" for r in rights),
            mortgaged=any(r.kind == "mortgage" for r in rights),
            answered_at=now_utc(),
        )
