"""Track: follow every application to its end through the centre's event feed.

- :func:`poll_events` reads the feed by cursor; each event's effects and its id are committed in
  one transaction, and the cursor advances only after (events are at-least-once: dedupe by id).
  Handling an event only writes state; the network follow-ups (read a 补正's reasons, pay a fee,
  fetch a certificate) are separate steps driven by that state.
- :func:`handle_event` is shared with the webhook receiver (:mod:`agent.daemon.webhook`).
- :func:`refresh_due` reads the application itself when an event asks for details, and as a
  fallback for stragglers an event may have missed.
- fees are :mod:`agent.pipeline.fees`' (paid only after 登簿, never after a refusal; refunds recorded).
- :func:`check_deadlines` warns of 补正 deadlines, and :func:`find_supplement_materials` answers
  a 补正 that asks for materials when the bank drops them in the materials folder.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sdk
from agent.messages import pointer_column
from agent.pipeline.build import MEDIA_BY_SUFFIX
from agent.pipeline.context import StageContext
from agent.pipeline.fees import not_due, pay_due, record_refund
from agent.pipeline.operators import operator_of
from agent.pipeline.outbox import finish_if_done, notice_announced, queue_receipt
from agent.state.store import AppRow, now_iso
from sdk.models import UNSUCCESSFUL_STATUSES, ApplicationRecord, ApplicationStatus, Event, EventType

__all__ = ["check_deadlines", "handle_event", "pay_due", "poll_events", "refresh_due"]

log = logging.getLogger("regbridge.agent.track")
S = ApplicationStatus
REJECTED = set(UNSUCCESSFUL_STATUSES)
#: final statuses whose reasons (a decision with its notice number) are read from the application
DECIDED = (S.NOT_ACCEPTED, S.REFUSED, S.VOIDED)
STATUS_LABEL = {s.value: s.label for s in S}


def poll_events(ctx: StageContext) -> float:
    """Read the feed to its end; returns the centre's hint of when to look again (seconds)."""
    store = ctx.store
    cursor = store.get_meta("event_cursor")
    handled = 0
    while True:
        page = ctx.centre.events(after=cursor, limit=200)
        with store.transaction():  # a page at a time: one commit (and its fsync), not one per event
            for event in page.events:
                # recorded first, in the transaction of its effects: an event a webhook (on any instance)
                # already handled records nothing here, and its effects do not run twice
                if not store.claim_event(event.event_id, event.sequence):
                    continue
                handle_event(ctx, event)
                handled += 1
            if page.next_cursor != cursor:
                store.set_meta("event_cursor", page.next_cursor)
                cursor = page.next_cursor
        if not page.has_more:
            if handled:
                ctx.supervisor.wake()  # what the events flagged is acted on now, not at the next round
            return float(page.poll_interval_seconds)


def _find(ctx: StageContext, event: Event) -> AppRow | None:
    if event.application_id:
        app = ctx.store.by_centre_id(event.application_id)
        if app is not None:
            return app
    if event.client_reference:
        app = ctx.store.application(event.client_reference)
        if app is not None and app.application_id in (None, event.application_id):
            if app.application_id is None and event.application_id:
                # created at the centre, but the agent stopped before recording it
                ctx.store.update_application(
                    app.reference,
                    application_id=event.application_id,
                    stage="created",
                    note="application id learnt from an event",
                )
            return app
    return None


def audit_status(ctx: StageContext, app: AppRow, status: str) -> None:
    """Each step the centre takes (受理, 补正, 登簿, 发证…) in the audit log, with the application's 经办人."""
    ctx.audit.append("centre.status", app.reference, status, operator=operator_of(app.payload), loan_no=app.loan_no)


def handle_event(ctx: StageContext, event: Event) -> None:
    """Apply one event to the state (no network). Runs inside the caller's transaction."""
    store = ctx.store
    kind = event.type
    if kind is EventType.CHANNEL_SUSPENDED:
        ctx.supervisor.pause("ChannelSuspended", str(event.data.get("reason") or "the centre suspended the channel"))
        return
    if kind is EventType.CHANNEL_RESUMED:
        ctx.supervisor.resume("the centre resumed the channel")
        return
    if kind is EventType.CERTIFICATE_SUPERSEDED:
        cid = str(event.data.get("certificate_id"))
        cert = store.certificate(cid)
        if cert is not None and cert["superseded_at"] is None:
            store.update_certificate(cid, supersede_pending=1, superseded_by=event.data.get("superseded_by"))
        return
    app = _find(ctx, event)
    if app is None:
        return
    later = time.time() + ctx.config.straggler_seconds
    if kind is EventType.APPLICATION_STATUS_CHANGED and event.status is not None:
        status = event.status
        if app.centre_status and S(app.centre_status).is_final:
            return  # final states never change again; a late duplicate must not undo them
        fields: dict[str, Any] = {"centre_status": status.value}
        if app.stage in ("tracking", "created", "queued") and status not in (S.DRAFT, S.SUBMITTED):
            fields["next_attempt_at"] = later
        if status is S.ACCEPTED:
            queue_receipt(ctx, app, "accepted", "accepted", status="受理", application_id=app.application_id)
        elif status is S.CORRECTION_REQUIRED or status in DECIDED:
            fields["needs_refresh"] = 1  # the reasons are in the application, not in the event
        elif status in (S.CANCELLED, S.WITHDRAWN):
            fields["stage"] = "rejected"
            queue_receipt(
                ctx,
                app,
                "rejected",
                "rejected",
                status=status.label,
                reason="补正期限届满未补正，申请作废" if status is S.CANCELLED else "已撤回",
            )
        elif status is S.CERTIFICATE_ISSUED:
            for cid in event.data.get("certificate_ids", []):
                store.add_certificate(str(cid), app.reference)
        elif status is S.COMPLETED:
            fields["needs_refresh"] = 0 if store.certificates(reference=app.reference) else 1
        # the event's own time: the 受理 time is where the committed time limit starts (agent.state.time_limits)
        if status.value != app.centre_status:
            audit_status(ctx, app, status.value)
        at = event.occurred_at.isoformat()
        store.update_application(app.reference, note=f"event {event.sequence} at {at}", **fields)
        if status is S.COMPLETED:
            finish_if_done(ctx, app.reference)
    elif kind is EventType.CORRECTION_REQUESTED:
        deadline = event.data.get("deadline")
        store.update_application(app.reference, deadline=deadline, needs_refresh=1)
    elif kind is EventType.CORRECTION_DEADLINE_NEAR:
        _warn_deadline(ctx, app, event.data.get("deadline") or app.deadline)
    elif kind is EventType.FEE_ASSESSED:
        if app.centre_status in {s.value for s in REJECTED}:
            not_due(ctx, app, f"a fee assessed for an application that ended {app.centre_status} is not paid")
            return
        store.update_application(
            app.reference,
            fee_total=str(event.data.get("total")),
            fee_status=str(event.data.get("fee_status") or "unpaid"),
        )
    elif kind is EventType.FEE_PAID:
        store.update_application(app.reference, fee_status="paid")
        queue_receipt(ctx, app, "fee_paid", "fee_paid", status="已缴费", amount=event.data.get("total"))
    elif kind is EventType.FEE_REFUNDED:
        record_refund(ctx, app, event.data)
    elif kind is EventType.FEE_CANCELLED:
        store.update_application(app.reference, fee_status="cancelled", note="fee notice cancelled by the centre")
    elif kind is EventType.CERTIFICATE_ISSUED:
        store.add_certificate(str(event.data.get("certificate_id")), app.reference)
    elif kind is EventType.NOTICE_ISSUED:  # a sealed 受理凭证 or 通知书: agent.pipeline.notices fetches it
        notice_announced(ctx, str(event.data.get("notice_id") or ""), app.reference)


def apply_record(ctx: StageContext, app: AppRow, record: ApplicationRecord) -> None:
    """What a full read of the application tells: 补正 items, decisions, certificates, fees."""
    store = ctx.store
    status = record.status
    # a fee the read says is unpaid, whose amount no fee.assessed event brought (a missed event, or a centre
    # with no feed — a provincial platform): its notice is read now, before the transaction, so it can be paid
    fee_total: str | None = None
    if record.fee_status == "unpaid" and app.fee_total is None:
        try:
            fee_total = str(ctx.centre.fee_notice(record.application_id).total)
        except sdk.RegBridgeError as exc:
            why = {"reference": app.reference, "error": type(exc).__name__}
            log.warning("could not read the fee notice", extra=why)
    with store.transaction():
        fields: dict[str, Any] = {"needs_refresh": 0, "next_attempt_at": time.time() + ctx.config.straggler_seconds}
        if fee_total is not None:
            fields["fee_total"] = fee_total
        # an event handled while the read was on its way is newer news than the read: its status stays
        current = store.application(app.reference)
        moved = current is not None and current.centre_status != app.centre_status
        if (not (app.centre_status and S(app.centre_status).is_final) and not moved) or status.is_final:
            fields["centre_status"] = status.value
        if record.fee_status:
            fields["fee_status"] = record.fee_status
        if status is S.CORRECTION_REQUIRED and record.correction is not None:
            corr = record.correction
            items = [{"code": i.code, "reason": i.reason, "pointer": i.pointer} for i in corr.items]
            fields.update(
                correction={"requested_at": corr.requested_at.isoformat(), "items": items},
                deadline=corr.deadline.isoformat(),
            )
            columns: dict[str, Any] = {}
            for src in app.source:
                columns.update(src.get("columns", {}))
            shown = []
            for i in items:
                where = pointer_column(columns, i["pointer"])  # the profile's column(s) behind the pointer
                shown.append(
                    f"{i['reason']}"
                    + (f"（列 {where[1]}）" if where else "")
                    + (f" [{i['code']}]" if i["code"] != "field" else "")
                )
            queue_receipt(
                ctx,
                app,
                f"correction:{corr.requested_at.isoformat()}",
                "correction",
                status="补正",
                items="；".join(shown),
                deadline=corr.deadline.isoformat(),
            )
        if status in DECIDED and record.decision is not None:
            d = record.decision
            fields.update(
                stage="rejected", decision={"code": d.code, "reason": d.reason, "notice_number": d.notice_number}
            )
            queue_receipt(
                ctx,
                app,
                "rejected",
                "rejected",
                status=status.label,
                reason=f"{d.reason} ({d.code}{'，告知书 ' + d.notice_number if d.notice_number else ''})",
            )
        elif status in (S.CANCELLED, S.WITHDRAWN):
            fields["stage"] = "rejected"
            queue_receipt(ctx, app, "rejected", "rejected", status=status.label, reason=status.label)
        for cid in record.certificate_ids:
            store.add_certificate(cid, app.reference)
        decision = fields.get("decision")
        if decision and app.decision is None:  # the centre's decision, with the 经办人 whose application it was
            ctx.audit.append(
                "centre.decision", app.reference, status.value, operator=operator_of(app.payload),
                loan_no=app.loan_no, reason=decision["reason"], code=decision["code"],
                notice=decision["notice_number"] or "",
            )  # fmt: skip
        elif fields.get("centre_status", app.centre_status) != app.centre_status:
            audit_status(ctx, app, status.value)
        store.update_application(app.reference, note="read from the centre", **fields)
    if status is S.COMPLETED:
        finish_if_done(ctx, app.reference)


def refresh_due(ctx: StageContext) -> int:
    """Read the applications an event flagged, and the stragglers nobody heard of for a while."""
    store = ctx.store
    now = time.time()
    refs = store.flagged("needs_refresh")
    refs += [r for r in store.references("tracking", where="next_attempt_at <= ?", args=(now,)) if r not in refs]
    count = 0
    for ref in refs[: 20 * ctx.config.concurrency]:
        if ctx.supervisor.holding:
            break
        app = store.application(ref)
        if app is None or app.application_id is None:
            continue
        try:
            record = ctx.centre.application(app.application_id)
        except sdk.NotFound:
            store.update_application(ref, needs_refresh=0, last_error="the centre does not know this application")
            continue
        except Exception as exc:
            if isinstance(exc, sdk.ChannelSuspended | sdk.AuthenticationFailed):
                ctx.supervisor.pause(type(exc).__name__, str(exc))
                return count
            store.flag(ref, "next_attempt_at", now + 30)
            log.warning("could not read application", extra={"reference": ref, "error": type(exc).__name__})
            continue
        apply_record(ctx, app, record)
        count += 1
    return count


def _warn_deadline(ctx: StageContext, app: AppRow, deadline: str | None) -> None:
    if ctx.store.flagged("deadline_warned").count(app.reference):
        return
    ctx.store.flag(app.reference, "deadline_warned", 1)
    ctx.store.raise_alert(f"deadline:{app.reference}", f"补正 for {app.loan_no} ({app.reference}) is due {deadline}")
    ctx.audit.append(
        "correction.deadline_near", app.reference, "warned", deadline=deadline or "", operator=operator_of(app.payload)
    )
    log.warning("补正 deadline near", extra={"reference": app.reference, "deadline": deadline})


def check_deadlines(ctx: StageContext) -> int:
    soon = datetime.now(UTC) + timedelta(hours=ctx.config.correction_warning_hours)
    warned = 0
    for ref in ctx.store.references(
        "tracking", where="centre_status = 'correction_required' AND deadline IS NOT NULL AND deadline_warned = 0"
    ):
        app = ctx.store.application(ref)
        if app and app.deadline and datetime.fromisoformat(app.deadline) <= soon:
            _warn_deadline(ctx, app, app.deadline)
            warned += 1
    return warned


def find_supplement_materials(ctx: StageContext) -> int:
    """A 补正 asking for materials is answered when the bank drops them (``<loan>_<code>.pdf``)."""
    answered = 0
    # asked every second: answered from the partial index of open 补正s, not by scanning every tracked
    # application (``+stage`` keeps SQLite from choosing the stage index instead)
    for ref in ctx.store.references(
        where="centre_status = 'correction_required' AND correction IS NOT NULL AND +stage = 'tracking'"
    ):
        app = ctx.store.application(ref)
        if app is None or not app.correction:
            continue
        wanted = {i["code"] for i in app.correction["items"] if i["code"] != "field"}
        if not wanted:
            continue
        inbox = ctx.inbox(app.inbox)
        profile = ctx.profiles[app.inbox]
        folder = ctx.config.resolve(inbox.path) / profile.materials.folder
        checklist = ctx.checklists[app.type]
        by_name = {i.name: i.code for i in checklist.items}
        have = {m["sha256"] for m in ctx.store.materials(ref)}
        found: dict[str, Any] = {}
        prefix = profile.materials.pattern.format(loan_no=app.loan_no)
        for path in sorted(folder.glob(f"{prefix}*")) if folder.is_dir() else []:
            code = by_name.get(path.stem[len(prefix) :].split("-")[0], path.stem[len(prefix) :].split("-")[0])
            if code in wanted and path.suffix.lower() in MEDIA_BY_SUFFIX:
                content = path.read_bytes()
                digest = hashlib.sha256(content).hexdigest()
                if digest in have:
                    continue
                found[code] = {
                    "id": code,
                    "code": code,
                    "filename": path.name,
                    "media_type": MEDIA_BY_SUFFIX[path.suffix.lower()],
                    "sha256": digest,
                    "size": len(content),
                    "blob": ctx.blobs.put(content),
                }
        if set(found) >= wanted:
            answer = {
                "corrected": None,
                "materials": list(found.values()),
                "payload_sha256": None,
                "idem_submit": sdk.new_idempotency_key(),
                "at": now_iso(),
            }
            # the declared materials become part of the application the agent keeps
            payload = dict(app.payload)
            payload["materials"] = [m for m in payload["materials"] if m["id"] not in found] + [
                {k: v for k, v in m.items() if k != "blob"} for m in found.values()
            ]
            ctx.store.update_application(
                ref,
                stage="supplementing",
                next_attempt_at=0,
                attempts=0,
                supplement=answer,
                idem_supplement=sdk.new_idempotency_key(),
                payload=payload,
                note="补正 answered by dropped materials",
            )
            ctx.audit.append(
                "correction.answer_queued", ref, "ok", materials=len(found), operator=operator_of(app.payload)
            )
            answered += 1
    return answered
