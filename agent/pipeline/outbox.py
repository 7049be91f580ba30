"""The outbox: what the stages write into the state store about an application, each in one transaction.

- :func:`admit`: a built application enters the outbox (stage ``queued``) with its idempotency
  keys, or answers an open 补正, or is recognised as a duplicate, or is refused as a second
  application for the same loan operation;
- :func:`quarantine_row`: a row that cannot be sent is held with its reasons, and the loan system
  hears of it;
- :func:`queue_receipt`: one receipt line for the loan system (once per application and kind);
- :func:`finish_if_done`: an application is done when the centre finished it and every
  certificate is stored.

Nothing here reaches the network: the stages that do (submit, track, deliver) act on what was
committed here first (persist first, act second).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agent.config import InboxConfig
from agent.mapping import FieldError
from agent.messages import error_value, field_line
from agent.pipeline.build import BuiltApplication, payload_digest
from agent.pipeline.context import StageContext
from agent.pipeline.operators import operator_of
from agent.state.store import AppRow, now_iso
from sdk import new_idempotency_key
from sdk.models import APPLICATION_TYPES, ApplicationStatus
from sdk.privacy import mask_text

S = ApplicationStatus

__all__ = [
    "COLLATERAL_STATUS",
    "NOTICE_EVENTS",
    "IngestReport",
    "admit",
    "broken_loans",
    "collateral_alert",
    "columns_of",
    "event_kind",
    "finish_if_done",
    "quarantine_row",
    "queue_receipt",
    "record_excerpt",
    "report_collateral",
]


@dataclass
class IngestReport:
    file: str
    sha256: str
    queued: list[str] = field(default_factory=list)
    supplements: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    file_error: str | None = None
    skipped: bool = False
    encoding: str | None = None
    #: records (rows) read, and where each went: the accounting of the export
    records: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {"queue": 0, "supplement": 0, "duplicate": 0, "quarantine": 0})

    @property
    def rows_bad(self) -> int:
        return len(self.quarantined)

    def balanced(self) -> bool:
        """records read = rows queued + rows answering a 补正 + rows named as duplicates + rows quarantined."""
        return self.records == sum(self.rows.values())


def columns_of(built: BuiltApplication, provenance: dict[str, Any]) -> dict[str, list[Any]]:
    out = {}
    for path, prov in provenance.items():
        pointer = "/" + path.replace("[", ".").replace("]", "").replace(".", "/")
        out[pointer] = [prov.row, prov.column]
    return out


def queue_receipt(ctx: StageContext, app: AppRow, kind: str, event: str, **fields: Any) -> bool:
    """Queue one receipt line for the loan system (once per application and kind); False when that application
    had a line of that kind already (nothing is queued)."""
    source = app.source[-1] if app.source else {}
    payload = {
        "loan_no": app.loan_no,
        "reference": app.reference,
        "type": app.type,
        "type_name": APPLICATION_TYPES[app.type].business_name if app.type in APPLICATION_TYPES else app.type,
        "event": event,
        "application_id": app.application_id,
        "file": source.get("file"),
        "rows": source.get("rows", []),  # written as 第N行 (agent.pipeline.receipts)
        "at": now_iso(),
        **{k: v for k, v in fields.items() if v is not None},
    }
    return ctx.store.add_receipt(app.reference, kind, ctx.receipts_inbox(app), payload)


#: a collateral event → the receipt line's 状态
COLLATERAL_STATUS = {
    "seized": "查封",
    "released": "解封",
    "objection": "异议",
    "later_mortgage": "后顺位抵押",
    "not_current": "抵押权已注销或变更",
}


def event_kind(unit_id: str, subject: str, event: str) -> str:
    """The identity of one collateral event, and the kind of its receipt line: ``collateral:<unit>:<subject>:<event>``
    — ``subject`` the restriction's id (a 查封's, an 异议's: PropertyRight.right_id, NoticeMetadata.restriction_id)
    or the mortgage's 证明号. Whoever sees the event first (the centre's pushed notice, the scheduled query) reports
    it; the other finds the line there and reports nothing (one event, one line, per loan)."""
    return f"collateral:{unit_id}:{subject}:{event}"


#: a collateral notice's kind (docs/api.md §9a) → the event it reports
NOTICE_EVENTS = {"seizure": "seized", "seizure_release": "released", "objection": "objection"}


def collateral_alert(ctx: StageContext, app: AppRow, reason: str) -> str:
    """The alert of a collateral event (查封, 解封, 异议, 产权变动 …) on ``app``'s unit, naming the branch whose loan it
    is first — ``【长丰支行】LN-1 (ref) reason`` (its ``[branches]`` name, else the enrolled institution's name) —
    so a head office's ``regbridge status`` and console say whose collateral it is (``ALERT_BRANCH`` reads it)."""
    branch = ctx.branch_of(app) or ctx.institution_of(app)[0]
    return f"【{branch}】{app.loan_no} ({app.reference}) {reason}"


def report_collateral(
    ctx: StageContext,
    app: AppRow,
    number: str,
    unit_id: str,
    subject: str,
    what: str,
    reason: str,
    *,
    event: str = "collateral",
    **fields: Any,
) -> bool:
    """Report one collateral event to the loan system once (receipt line, alert, audit); answers whether it was new.

    ``what`` is ``seized``, ``released``, ``objection``, ``later_mortgage`` or ``not_current``; ``event`` the receipt
    line's 事件 (``collateral`` from the watch, ``notice_<kind>`` from a pushed notice). Call inside a transaction.
    """
    status = fields.pop("status", None) or COLLATERAL_STATUS[what]
    if not queue_receipt(ctx, app, event_kind(unit_id, subject, what), event, status=status, reason=reason,
                         application_id=app.application_id, **fields):  # fmt: skip
        return False
    if what == "released":
        ctx.store.clear_alert(f"collateral:{number}:seized")
    else:
        ctx.store.raise_alert(f"collateral:{number}:{what}", collateral_alert(ctx, app, reason))
    ctx.audit.append(f"collateral.{what}", app.reference, "reported", certificate=number, unit=unit_id)
    return True


def quarantine_row(
    ctx: StageContext,
    inbox: InboxConfig,
    report: IngestReport,
    b: BuiltApplication,
    errors: list[dict[str, Any]],
    sha: str,
    label: str,
) -> None:
    qid = ctx.store.quarantine(
        "row",
        errors,
        file_sha256=sha,
        path=label,
        row=b.rows[0],
        loan_no=b.loan_no or None,
        reference=b.reference or None,
    )
    report.quarantined.append({"id": qid, "row": b.rows[0], "loan_no": b.loan_no, "errors": errors})
    reason = "；".join(
        field_line(e.get("row"), e.get("line"), e["field"], error_value(e), e["expected"]) for e in errors
    )
    ctx.store.add_receipt(
        b.reference or f"row-{sha[:8]}-{b.rows[0]}",
        f"quarantined:{qid}",
        inbox.name,
        {
            "loan_no": b.loan_no,
            "reference": b.reference,
            "type": b.type,
            "type_name": APPLICATION_TYPES[b.type].business_name if b.type in APPLICATION_TYPES else b.type,
            "event": "quarantined",
            "status": "数据有误，未提交",
            "reason": reason,
            "file": label,
            "rows": b.rows,
            "at": now_iso(),
        },
    )
    ctx.audit.append("row.quarantined", b.reference or label, "quarantined", row=b.rows[0], errors=len(errors),
                     operator=b.operator)  # fmt: skip


def admit(
    ctx: StageContext,
    inbox: InboxConfig,
    report: IngestReport,
    b: BuiltApplication,
    columns: dict[str, list[Any]],
    sha: str,
    label: str,
) -> str:
    """Queue a built application, or answer the 补正 it corrects; the accounting bucket its rows go to."""
    store = ctx.store
    digest = payload_digest(b.payload)
    source = {"file": label, "sha256": sha, "rows": b.rows, "columns": columns}
    if b.authorisation:
        source["authorisation"] = b.authorisation
    if b.branch:
        source["branch"] = b.branch
    existing = store.application(b.reference)
    if existing is None:
        store.add_application(
            {
                "reference": b.reference,
                "loan_no": b.loan_no,
                "type": b.type,
                "inbox": inbox.name,
                "profile": ctx.profiles[inbox.name].name,
                "source": [source],
                "payload": b.payload,
                "payload_sha256": digest,
                "idem_create": new_idempotency_key(),
                "idem_submit": new_idempotency_key(),
                "materials": b.materials,
            }
        )
        store.resolve_quarantine_for(b.loan_no, b.reference)
        report.queued.append(b.reference)
        ctx.audit.append(
            "application.queued", b.reference, "ok", type=b.type, file=label, row=b.rows[0],
            operator=operator_of(b.payload),
        )  # fmt: skip
        return "queue"
    if existing.centre_status == "correction_required" and existing.stage == "tracking":
        answer = _supplement_from_row(ctx, existing, b, digest)
        if answer:
            store.update_application(
                b.reference,
                stage="supplementing",
                next_attempt_at=0,
                attempts=0,
                supplement=answer,
                idem_supplement=new_idempotency_key(),
                source=json.dumps([*existing.source, source], ensure_ascii=False),
                note="补正 answered by a corrected row",
            )
            store.resolve_quarantine_for(b.loan_no, b.reference)
            report.supplements.append(b.reference)
            ctx.audit.append("correction.answer_queued", b.reference, "ok", file=label, row=b.rows[0],
                             operator=operator_of(b.payload))  # fmt: skip
            return "supplement"
    if store.payload_sha256(b.reference) == digest:
        report.duplicates.append(b.reference)
        ctx.audit.append("row.duplicate", b.reference, "skipped", file=label, row=b.rows[0])
        return "duplicate"
    state = existing.centre_status or existing.stage
    quarantine_row(
        ctx,
        inbox,
        report,
        b,
        [
            FieldError(
                b.rows[0],
                ctx.profiles[inbox.name].identity.loan_no,
                b.loan_no,
                f"a new operation: {b.reference} was already sent and is {state}; a different application for "
                "the same loan needs its own operation number"
                + (
                    " (after a refusal: `regbridge reapply` applies for it again as a new operation, or the "
                    "profile's [identity] reapply_after_refusal)"
                    if existing.stage == "rejected"
                    else ""
                ),
                file=label,
            ).as_dict()
        ],
        sha,
        label,
    )
    return "quarantine"


def _supplement_from_row(ctx: StageContext, existing: Any, b: BuiltApplication, digest: str) -> dict[str, Any] | None:
    """What a corrected row adds: the corrected application (if it differs) and new or changed materials."""
    old = {m["material_id"]: m for m in ctx.store.materials(existing.reference)}
    changed = [m for m in b.materials if m["id"] not in old or old[m["id"]]["sha256"] != m["sha256"]]
    corrected = b.payload if ctx.store.payload_sha256(existing.reference) != digest else None
    if corrected is None and not changed:
        return None
    if corrected is not None:
        # keep the materials the centre already holds that the corrected row does not carry
        listed = {m["id"] for m in corrected["materials"]}
        corrected["materials"] += [m for m in existing.payload["materials"] if m["id"] not in listed]
    return {
        "corrected": corrected,
        "materials": changed,
        "payload_sha256": digest,
        "idem_submit": new_idempotency_key(),
        "at": now_iso(),
    }


def finish_if_done(ctx: StageContext, reference: str) -> None:
    """An application is done when the centre finished it and every certificate is stored.

    Asked from two sides (the event that says completed, the delivery that stored the last certificate),
    maybe by two instances at once: the application's row is locked first (an UPDATE), so one of them waits
    for the other's commit and sees both facts (at ``READ COMMITTED`` neither would see the other's)."""
    with ctx.store.transaction():
        ctx.store.flag(reference, "updated_at", now_iso())  # the row lock
        app = ctx.store.application(reference)
        if app is None or app.stage in ("done", "rejected", "quarantined") or app.centre_status != S.COMPLETED.value:
            return
        certs = ctx.store.certificates(reference=reference)
        if any(c["stage"] != "stored" for c in certs):
            return
        if not certs and app.type != "mortgage_discharge":
            ctx.store.flag(reference, "needs_refresh", 1)  # a certificate id we have not heard of yet
            return
        ctx.store.update_application(reference, stage="done", note="办结")
        if app.type == "mortgage_discharge":
            queue_receipt(ctx, app, "completed", "registered", status="注销登记已办结")
    ctx.audit.append("application.done", reference, "ok", certificates=len(certs), operator=operator_of(app.payload))


def broken_loans(errors: list[Any], loans: list[str]) -> dict[str, int]:
    """The loans a record that could not be read belongs to (its loan number is in its text): loan → row."""
    found: dict[str, int] = {}
    if not errors:
        return found
    for loan in sorted({x for x in loans if x}, key=len, reverse=True):
        pattern = re.compile(r"(?<![A-Za-z0-9_.:-])" + re.escape(loan) + r"(?![A-Za-z0-9_.:-])")
        for err in errors:
            if pattern.search(err.raw):
                found.setdefault(loan, err.row)
    return found


def record_excerpt(raw: str) -> str:
    """A broken record as reports may show it: its leading key (the loan number, usually) and its size.

    The rest can hold names and ID numbers in any position, so it is not shown; the whole record is
    kept, sealed, in the stored copy of the export.
    """
    head = re.match(r"[A-Za-z0-9_.:-]{0,32}", raw.strip())
    key = mask_text(head.group(0)) if head else ""  # a record can start with an ID number: masked
    return f"{key}… ({len(raw)} characters; the rest is not shown, it may hold personal data)"


#: the state's meta key holding the sealed notices announced and not yet stored: {notice_id: reference}
NOTICES_PENDING = "notices_pending"


#: centre statuses of an application still moving: its notices wait until it settles (they never hold it up)
_MOVING = frozenset({"submitted", "accepted", "under_review", "recorded", "certificate_issued"})


def pending_notices(ctx: StageContext, *, due_only: bool = False) -> dict[str, str]:
    """The notices announced and not yet stored or quarantined (agent.pipeline.notices delivers them); with
    ``due_only``, those whose application is not moving through the centre any more (settled, refused, or
    waiting on a 补正): a 受理凭证 is fetched once its application is done."""
    raw = ctx.store.get_meta(NOTICES_PENDING)
    pending = dict(json.loads(raw)) if raw else {}
    if not due_only:
        return pending
    due = {}
    for notice_id, reference in pending.items():
        app = ctx.store.application(reference)
        moving = app is not None and app.stage not in ("done", "rejected", "quarantined") and (
            app.centre_status in _MOVING or app.centre_status is None
        )
        if not moving:
            due[notice_id] = reference
    return due


def notice_announced(ctx: StageContext, notice_id: str, reference: str) -> None:
    """Record a notice to fetch (called inside the event's transaction: never lost, never doubled)."""
    pending = pending_notices(ctx)
    if notice_id and notice_id not in pending and ctx.store.get_meta(f"notice:{notice_id}") is None:
        pending[notice_id] = reference
        ctx.store.set_meta(NOTICES_PENDING, json.dumps(pending, sort_keys=True))
