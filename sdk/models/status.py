"""The life of an application at the centre (seed 002 §1.5, §3.1).

    draft ─submit─► submitted ─► accepted ─► under_review ─► recorded ─► certificate_issued ─► completed
                                                               └──(注销登记: no certificate)──► completed
                       │  ▲          │              │
                       │  └─answer───┤ correction_required ─(deadline)─► cancelled
                       ├─► not_accepted                 └─► refused
    any non-final ─withdraw─► withdrawn
    recorded ─(the centre annuls the entry before 缮证)─► voided 撤销 (its fee cancelled or refunded)

The centre pushes an event at every step; final states never change again.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from ..codes import _Labelled
from ._base import Resource
from .applications import Application
from .delivery import CertificateDispatch

__all__ = [
    "FINAL_STATUSES",
    "TRANSITIONS",
    "UNSUCCESSFUL_STATUSES",
    "ApplicationRecord",
    "ApplicationStatus",
    "Correction",
    "CorrectionItem",
    "Decision",
    "StatusChange",
]


class ApplicationStatus(_Labelled):
    DRAFT = ("draft", "草稿")
    SUBMITTED = ("submitted", "已提交")
    ACCEPTED = ("accepted", "受理")
    CORRECTION_REQUIRED = ("correction_required", "补正")
    NOT_ACCEPTED = ("not_accepted", "不予受理")
    UNDER_REVIEW = ("under_review", "审核")
    RECORDED = ("recorded", "登簿")
    CERTIFICATE_ISSUED = ("certificate_issued", "缮证")
    COMPLETED = ("completed", "办结")
    REFUSED = ("refused", "不予登记")
    WITHDRAWN = ("withdrawn", "撤回")
    CANCELLED = ("cancelled", "作废")
    VOIDED = ("voided", "撤销")

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


S = ApplicationStatus
FINAL_STATUSES = frozenset({S.NOT_ACCEPTED, S.COMPLETED, S.REFUSED, S.WITHDRAWN, S.CANCELLED, S.VOIDED})
#: final statuses that owe no fee and get no certificate: the application did not register
UNSUCCESSFUL_STATUSES = frozenset({S.NOT_ACCEPTED, S.REFUSED, S.WITHDRAWN, S.CANCELLED, S.VOIDED})

#: Which status may follow which. Withdrawal is allowed from every non-final status up to 登簿.
TRANSITIONS: dict[ApplicationStatus, frozenset[ApplicationStatus]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.WITHDRAWN}),
    S.SUBMITTED: frozenset({S.ACCEPTED, S.CORRECTION_REQUIRED, S.NOT_ACCEPTED, S.WITHDRAWN}),
    S.CORRECTION_REQUIRED: frozenset({S.SUBMITTED, S.CANCELLED, S.WITHDRAWN}),
    S.ACCEPTED: frozenset({S.UNDER_REVIEW, S.CORRECTION_REQUIRED, S.WITHDRAWN}),
    S.UNDER_REVIEW: frozenset({S.RECORDED, S.REFUSED, S.CORRECTION_REQUIRED, S.WITHDRAWN}),
    # a discharge issues no certificate; the centre may annul (撤销) an entry before 缮证
    S.RECORDED: frozenset({S.CERTIFICATE_ISSUED, S.COMPLETED, S.VOIDED}),
    S.CERTIFICATE_ISSUED: frozenset({S.COMPLETED}),
    **{s: frozenset() for s in FINAL_STATUSES},
}


class CorrectionItem(Resource):
    """One thing a 补正 asks for: a material to supply, or a field to correct."""

    code: str = Field(description="material code, or 'field' for a data correction")
    reason: str
    pointer: str | None = Field(default=None, description="JSON pointer into the application")


class Correction(Resource):
    """A 补正 request: what to supplement, and by when."""

    requested_at: datetime
    deadline: datetime
    items: list[CorrectionItem]
    message: str = ""


class Decision(Resource):
    """The reasons for 不予受理 or 不予登记, with the notice number."""

    code: str
    reason: str
    notice_number: str | None = Field(default=None, description="不予受理/不予登记告知书编号")
    decided_at: datetime


class StatusChange(Resource):
    status: ApplicationStatus
    at: datetime
    note: str | None = None


class ApplicationRecord(Resource):
    """An application as the centre holds it."""

    application_id: str
    client_reference: str
    type: str
    status: ApplicationStatus
    created_at: datetime
    updated_at: datetime
    application: Application
    materials_received: list[str] = Field(default_factory=list, description="ids of uploaded materials")
    correction: Correction | None = None
    decision: Decision | None = None
    fee_status: str | None = Field(
        default=None, description="unpaid / paid / waived / cancelled / refunded; absent before 登簿 (sdk.models.fees)"
    )
    certificate_ids: list[str] = Field(default_factory=list)
    dispatch: CertificateDispatch | None = Field(
        default=None, description="how the certificate goes to the applicant, recorded at 缮证 (post: tracking number)"
    )
    history: list[StatusChange] = Field(default_factory=list)
    next_poll_seconds: int | None = Field(default=None, description="poll hint; absent once the application is final")

    @property
    def is_final(self) -> bool:
        return self.status.is_final
