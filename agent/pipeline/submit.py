"""Submit: queued applications → the centre, through the SDK, with the persisted idempotency keys.

create (Idempotency-Key stored at ingest) → upload each material (PUT, idempotent) → submit
(its own stored key). Each step is recorded before the next, so a restart resumes where it
stopped and a repeated request is answered from the centre's idempotency store. A 补正 answer
is the same dance: supplement → upload → resubmit, with keys stored before the first attempt.

Failures: a suspended channel or a refused credential pauses all submissions with an alert
(the queue is kept); errors that may pass back off per application; a 422 maps the centre's
JSON pointers back to the export's rows and columns and quarantines the application.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import TypeAdapter

import sdk
from agent.centre.filing import filing_hint
from agent.messages import pointer_column, zh
from agent.pipeline.context import StageContext
from agent.pipeline.operators import (
    OPERATOR_HELD_NOTE,
    OPERATOR_STATUS,
    branch_institution,
    forget_accounts,
    invalid_operator,
    operator_message,
    operator_of,
)
from agent.pipeline.outbox import queue_receipt
from agent.pipeline.preflight import PREFLIGHT_STATUS, hold_items, preflight
from agent.state.store import AppRow
from sdk.models import Application, Material, Supplement
from sdk.support import failpoints

__all__ = ["RETRYABLE", "SUBMITTING", "submit_due", "submit_one"]

log = logging.getLogger("regbridge.agent.submit")
_APPLICATION = TypeAdapter(Application)
RETRYABLE = (sdk.TransportError, sdk.ServerError, sdk.RateLimited, sdk.TimeoutError, sdk.RetryBudgetExhausted)
PAUSING = (sdk.ChannelSuspended, sdk.AuthenticationFailed, sdk.ClockSkew, sdk.SignatureError, sdk.PermissionDenied)


#: the stages the submit stage moves an application out of
SUBMITTING = ("queued", "created", "supplementing")


def submit_due(ctx: StageContext) -> int:
    """Push every due application one step further, ``concurrency`` at a time.

    On a shared state (``ctx.instance``) the applications are claimed first (``SELECT … FOR UPDATE SKIP
    LOCKED``, :meth:`~agent.state.leases.InstanceLeases.claim_applications`) and read again under the claim,
    so no two instances send the same step of the same application; each claim is released when its step
    ends (a dead instance's by the reaper, or when ``state.claim_seconds`` pass).
    """
    if ctx.supervisor.paused:
        return 0
    limit = 10 * ctx.config.concurrency
    claimed: list[str] = []
    if ctx.instance is None:
        due = ctx.store.applications(*SUBMITTING, due_before=time.time(), limit=limit)
    else:
        claimed = ctx.store.claim_applications(
            ctx.instance, SUBMITTING, ttl=ctx.config.state.claim_seconds, limit=limit, due_before=time.time()
        )
        due = [a for a in map(ctx.store.application, claimed) if a is not None and a.stage in SUBMITTING]
    try:
        if not due:
            return 0
        with ThreadPoolExecutor(ctx.config.concurrency, thread_name_prefix="submit") as pool:
            done = list(pool.map(lambda a: submit_one(ctx, a), due))
        return sum(done)
    finally:
        for reference in claimed:
            ctx.store.release_claim(reference, ctx.instance or "")


def _backoff(ctx: StageContext, app: AppRow, exc: Exception) -> None:
    attempts = app.attempts + 1
    delay = min(ctx.config.retry_max_seconds, 2.0 ** min(attempts, 10)) * random.uniform(0.5, 1.0)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        delay = max(delay, float(retry_after))
    ctx.store.update_application(
        app.reference,
        attempts=attempts,
        next_attempt_at=time.time() + delay,
        last_error=sdk.privacy.mask_text(str(exc))[:500],
    )
    log.warning(
        "will retry",
        extra={
            "reference": app.reference,
            "attempt": attempts,
            "in_seconds": round(delay, 1),
            "error": type(exc).__name__,
        },
    )


def submit_one(ctx: StageContext, app: AppRow) -> int:
    if ctx.supervisor.holding:
        return 0
    try:
        if app.stage == "supplementing":
            _answer_correction(ctx, app)
        else:
            _create_and_submit(ctx, app)
        return 1
    except sdk.OperatorNotAuthorised as exc:  # the application's fault, not the channel's: hold it alone
        forget_accounts(ctx)
        operator = operator_of(app.payload)
        quarantine_refused(ctx, app, exc, message=f"{operator_message(operator)}（登记中心: {exc.args[0]}）")
    except sdk.FilingRequired as exc:  # the bank's filing, not this application: pause all until it is filed
        ctx.supervisor.pause(type(exc).__name__, filing_hint(exc.args[0]))
    except PAUSING as exc:
        ctx.supervisor.pause(type(exc).__name__, str(exc))
    except sdk.ValidationFailed as exc:
        quarantine_refused(ctx, app, exc)
    except RETRYABLE as exc:
        if ctx.supervisor.unreachable:
            return 0  # the centre is away: the application waits its turn, unpenalised
        _backoff(ctx, app, exc)
    except sdk.APIError as exc:
        if exc.status == 409 and app.stage == "supplementing":
            # the 补正 is no longer open (answered meanwhile, or the application moved on): look again
            ctx.store.update_application(
                app.reference, stage="tracking", needs_refresh=1, note=f"补正 answer: {exc.code}"
            )
        else:
            _backoff(ctx, app, exc)
    except Exception as exc:  # never let one application stop the daemon
        log.exception("unexpected error while submitting", extra={"reference": app.reference})
        _backoff(ctx, app, exc)
    return 0


def _create_and_submit(ctx: StageContext, app: AppRow) -> None:
    store, centre = ctx.store, ctx.centre
    application_id = app.application_id
    if application_id is None:
        operator = invalid_operator(ctx, app)
        if operator is not None:  # held here: the centre never sees it (kind operator_check, not the centre's refusal)
            branch = branch_institution(ctx, app)
            quarantine_refused(ctx, app, None, message=operator_message(operator, branch[0] if branch else None),
                               kind="operator_check",
                               status=OPERATOR_STATUS, note=OPERATOR_HELD_NOTE)  # fmt: skip
            return
        findings = preflight(ctx, app)
        if findings:  # the register shows it would fail: held with every reason, never sent
            quarantine_refused(ctx, app, None, items=hold_items(findings), kind="preflight", status=PREFLIGHT_STATUS,
                               note="held by the register pre-flight")  # fmt: skip
            return
        application = _APPLICATION.validate_python(app.payload)
        failpoints.reached("create.before_send")
        try:
            record = centre.create(application, idempotency_key=app.idem_create)
        except sdk.Conflict:
            # the centre knows this reference under another key (state restored from a backup): adopt it
            found = centre.find(app.reference)
            if found is None:
                raise
            record = found
        failpoints.reached("create.after_response")
        application_id = record.application_id
        store.update_application(
            app.reference,
            application_id=application_id,
            stage="created",
            centre_status=record.status.value,
            attempts=0,
            last_error=None,
            note="created at the centre",
        )
        ctx.audit.append(
            "application.created", app.reference, "ok", application_id=application_id, operator=operator_of(app.payload)
        )
    _upload_pending(ctx, app.reference, application_id, app.payload)
    before = _status_now(ctx, app)
    record = centre.submit(application_id, idempotency_key=app.idem_submit)
    _submitted(ctx, app, record, "submitted", before)


def _upload_pending(ctx: StageContext, reference: str, application_id: str, payload: dict[str, Any]) -> None:
    declared = {m["id"]: m for m in payload["materials"]}
    for m in ctx.store.materials(reference):
        if m["uploaded"]:
            continue
        material = Material.model_validate(declared[m["material_id"]])
        ctx.centre.upload_material(application_id, material, ctx.blobs.get(m["blob"]))
        ctx.store.mark_uploaded(reference, m["material_id"])


def _status_now(ctx: StageContext, app: AppRow) -> str | None:
    """The centre status the state holds for ``app`` now (the event feed may have moved it since ``app`` was read)."""
    current = ctx.store.application(app.reference)
    return (current or app).centre_status


def _submitted(
    ctx: StageContext, app: AppRow, record: sdk.models.ApplicationRecord, what: str, before: str | None
) -> None:
    """Record a submission's answer; ``before`` is the centre status the state held when the request left."""
    fields: dict[str, Any] = {
        "stage": "tracking",
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": time.time() + ctx.config.straggler_seconds,
    }
    status = record.status.value
    with ctx.store.transaction():
        # the event feed runs beside this round (on the leader, maybe another instance): what it recorded while
        # the request was on its way (受理, 登簿…, even the certificate stored: done) is newer than this answer
        # and stays; overwriting it held the fee and the certificate until the straggler read, minutes later
        current = ctx.store.application(app.reference) or app
        if current.stage not in SUBMITTING:  # moved on meanwhile: a late answer does not set it back
            ctx.store.update_application(app.reference, attempts=0, last_error=None)
            fields = {}
        elif current.centre_status == before and (
            before is None or status != "submitted" or before in ("draft", "correction_required")
        ):
            fields["centre_status"] = status
        if fields:
            ctx.store.update_application(app.reference, note=what, **fields)
    ctx.audit.append(f"application.{what}", app.reference, "ok", status=status, operator=operator_of(app.payload))
    ctx.supervisor.wake()


def _answer_correction(ctx: StageContext, app: AppRow) -> None:
    """补正: send the supplement, upload its materials, submit again (keys stored with the answer)."""
    store, centre = ctx.store, ctx.centre
    answer = app.supplement or {}
    assert app.application_id is not None
    if not answer.get("sent"):
        corrected = _APPLICATION.validate_python(answer["corrected"]) if answer.get("corrected") else None
        materials = [
            Material.model_validate(m)
            for m in (corrected.materials if corrected else [])
            if m.id in {x["id"] for x in answer.get("materials", [])}
        ]
        if corrected is None:
            materials = [Material.model_validate(_declared(m)) for m in answer.get("materials", [])]
        supplement = Supplement(materials=materials, corrected=corrected, note="补正 from the loan system's export")
        centre.supplement(
            app.application_id, supplement, idempotency_key=app.idem_supplement or sdk.new_idempotency_key()
        )
        with store.transaction():
            if answer.get("corrected"):
                store.update_application(app.reference, payload=answer["corrected"])
                store.flag(app.reference, "payload_sha256", answer["payload_sha256"])
            store.replace_materials(
                app.reference,
                [
                    {"id": m["id"], "code": m["code"], "sha256": m["sha256"], "size": m["size"], "blob": m["blob"]}
                    for m in answer.get("materials", [])
                ],
            )
            store.update_application(app.reference, supplement={**answer, "sent": True}, note="补正 sent")
        ctx.audit.append("correction.supplement_sent", app.reference, "ok", operator=operator_of(app.payload))
    payload = (store.application(app.reference) or app).payload
    _upload_pending(ctx, app.reference, app.application_id, payload)
    before = _status_now(ctx, app)
    record = centre.submit(app.application_id, idempotency_key=answer["idem_submit"])
    store.update_application(app.reference, supplement=None, correction=None, deadline=None)
    store.flag(app.reference, "deadline_warned", 0)
    store.clear_alert(f"deadline:{app.reference}")
    _submitted(ctx, app, record, "resubmitted", before)


def _declared(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in ("id", "code", "filename", "media_type", "sha256", "size")}


def quarantine_refused(
    ctx: StageContext,
    app: AppRow,
    exc: sdk.APIError | None,
    *,
    message: str | None = None,
    items: list[dict[str, Any]] | None = None,
    kind: str = "centre",
    status: str = "中心校验未通过，未提交",
    note: str | None = None,
) -> None:
    """The centre refused the application (or the agent knows it would): say which rows and columns, and hold it.

    ``message`` replaces the centre's detail — for the operator check, which speaks to the branch in Chinese.
    ``items`` (``{"pointer", "detail", "code"}``, details in Chinese) are the agent's own reasons — the pre-flight's,
    quarantined as ``kind`` with the receipt line's ``status`` and the application's ``note``.
    """
    columns: dict[str, Any] = {}
    for src in app.source:
        columns.update(src.get("columns", {}))
    src = app.source[-1] if app.source else {}
    errors = []
    own = items is not None or message is not None
    reasons: list[Any]
    if items is not None:
        reasons = items
    elif exc is None or message is not None:
        reasons = [{"pointer": "/declaration/operator_id", "detail": message, "code": "operator"}]
    else:
        reasons = list(getattr(exc, "errors", None) or [{"pointer": None, "detail": str(exc), "code": exc.code}])
    for item in reasons:
        pointer = item.get("pointer") if isinstance(item, dict) else getattr(item, "pointer", None)
        detail = item.get("detail") if isinstance(item, dict) else getattr(item, "detail", str(item))
        # the export's column(s) behind the pointer, as the profile names them (/mortgagors → 抵押人姓名、…)
        row, column = pointer_column(columns, pointer) or (src.get("rows", [None])[0], pointer or "(application)")
        errors.append(
            {
                "file": src.get("file", ""),
                "row": row,
                "field": column,
                # the 经办人 cell holds the operator id (an account id, not personal data); other cells are not repeated
                # (None: the reason is a finding about the cell, said without a value)
                "value": operator_of(app.payload) if pointer == "/declaration/operator_id" else None,
                "expected": detail if own else f"登记中心：{zh(str(detail))}",
                "target": pointer or "",
            }
        )
    with ctx.store.transaction():
        qid = ctx.store.quarantine(
            kind,
            errors,
            file_sha256=src.get("sha256"),
            path=src.get("file"),
            row=errors[0]["row"],
            loan_no=app.loan_no,
            reference=app.reference,
        )
        ctx.store.update_application(
            app.reference,
            stage="quarantined",
            last_error=(message or (str(exc) if exc is not None else "；".join(e["expected"] for e in errors)))[:500],
            note=note or ("operator not an account of this bank" if message else "refused by the centre as invalid"),
        )
        queue_receipt(
            ctx,
            app,
            f"quarantined:{qid}",
            "quarantined",
            status=status,
            reason="；".join(f"{e['field']}: {e['expected']}" for e in errors),
        )
    operator = operator_of(app.payload)
    if items is not None:
        codes = ",".join(str(i.get("code")) for i in items)
        ctx.audit.append(f"application.held_{kind}", app.reference, "quarantined", code=codes, operator=operator)
        return
    if exc is None:  # the agent's own operator check: held here, never sent
        ctx.audit.append(f"application.held_{kind}", app.reference, "quarantined", code="operator_not_authorised",
                         operator=operator)  # fmt: skip
        return
    ctx.audit.append("application.refused_invalid", app.reference, "quarantined", code=exc.code, operator=operator)
