"""Fees from the bank's side, in the order of seed 001 §3 (docs/api.md §8).

The centre records (登簿), then assesses the fee (``fee.assessed``); the bank pays; then the
certificate is issued. The agent therefore pays **only** a notice the centre announced as
``unpaid`` for an application it holds as ``recorded`` — never before 登簿, never after a
refusal, withdrawal or voiding (撤销), and never twice (one idempotency key per notice, stored
before the first attempt). Money the centre returns (``fee.refunded``: a duplicate payment, an
application voided after payment) is recorded once per refund, audited and reported to the loan
system as a ``fee_refunded`` receipt line.

- :func:`pay_due` pays automatically when ``[fees] auto_pay`` is on, within ``daily_cap`` 元 a day;
- :func:`pay_now` pays one application by hand (``regbridge fees pay REF``), after reading the
  centre's notice again;
- :func:`fee_listing` is what ``regbridge fees`` shows: due, paid and refunded;
- :func:`record_refund` and :func:`not_due` are the event handlers' side.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sdk
from agent.pipeline.context import StageContext
from agent.pipeline.operators import operator_of
from agent.pipeline.outbox import queue_receipt
from agent.state.store import AppRow, StateStore, now_iso
from sdk.models import UNSUCCESSFUL_STATUSES, ApplicationStatus, Payment, PaymentReceipt

__all__ = ["FeeNotPayable", "fee_listing", "not_due", "pay_due", "pay_now", "record_refund", "refunds"]

log = logging.getLogger("regbridge.agent.fees")
S = ApplicationStatus
_UNSUCCESSFUL = {s.value for s in UNSUCCESSFUL_STATUSES}
#: what the loan system reads on a refund line, by the centre's reason
REFUND_REASONS = {
    "duplicate_payment": "重复缴费退款",
    "application_voided": "申请已撤销，退还已缴费用",
}


class FeeNotPayable(Exception):
    """Nothing is due for this application (the message says why, for the person who asked)."""


def _why_not(app: AppRow) -> str | None:
    """Why the agent must not pay this application's fee now, or None when it may."""
    if app.centre_status in _UNSUCCESSFUL:
        label = S(app.centre_status).label
        return f"no fee is due: the application ended {app.centre_status} ({label}); fees follow 登簿 only"
    if app.fee_status != "unpaid" or app.fee_total is None:
        return f"no fee is due: the fee is {app.fee_status or 'not assessed (the centre assesses it at 登簿)'}"
    if app.centre_status != S.RECORDED.value:
        return f"no fee is due yet: the application is {app.centre_status}, fees are paid once it is recorded (登簿)"
    if app.application_id is None:
        return "no fee is due: the application is not at the centre"
    return None


def not_due(ctx: StageContext, app: AppRow, why: str) -> None:
    """Forget a fee the centre no longer (or never) asks for; audited (runs in the caller's transaction)."""
    ctx.store.update_application(app.reference, fee_status=None, note=why)
    ctx.audit.append("fee.not_due", app.reference, "skipped", operator=_operator(app), why=why[:120])


def _operator(app: AppRow) -> str:
    return operator_of(app.payload)


def _paid_today(ctx: StageContext) -> Decimal:
    return sum((Decimal(v) for v in ctx.store.fees_paid_on(datetime.now(UTC).date().isoformat())), Decimal(0))


def pay_due(ctx: StageContext) -> int:
    """Pay the fees the centre assessed, when ``auto_pay`` is on, within the daily cap; answer how many.

    A fee whose application ended without registering (refused, withdrawn, voided…) is dropped, not paid.
    """
    fees = ctx.config.fees
    refs = ctx.store.references(where="fee_status = 'unpaid' AND fee_total IS NOT NULL")
    if not refs or ctx.supervisor.paused:
        return 0
    chosen: list[tuple[AppRow, Decimal, str]] = []
    paid_today: Decimal | None = None
    for ref in refs:  # within the cap, in order: what this round may pay
        app = ctx.store.application(ref)
        if app is None:
            continue
        why = _why_not(app)
        if why is not None:
            if app.centre_status in _UNSUCCESSFUL:
                not_due(ctx, app, why)
            continue
        if not fees.auto_pay:
            continue
        if paid_today is None:
            paid_today = _paid_today(ctx)  # once per round (a sum over the day's payments)
        amount = Decimal(app.fee_total or "0")
        if paid_today + amount > fees.daily_cap:
            if ctx.store.raise_alert(
                "fee_cap",
                f"daily fee cap {fees.daily_cap} 元 reached; {len(refs) - len(chosen)} "
                "fee(s) left unpaid until tomorrow or a higher cap",
            ):
                ctx.audit.append("fees.cap_reached", ref, "held", cap=str(fees.daily_cap), operator=_operator(app))
            break
        chosen.append((app, amount, _pay_key(ctx, app)))
        paid_today += amount
    if not chosen:
        return 0
    with ThreadPoolExecutor(ctx.config.concurrency, thread_name_prefix="pay") as pool:
        return sum(pool.map(lambda c: _pay_one(ctx, *c), chosen))


def _pay_key(ctx: StageContext, app: AppRow) -> str:
    key = app.idem_pay
    if key is None:
        key = sdk.new_idempotency_key()
        ctx.store.flag(app.reference, "idem_pay", key)  # stored before the first attempt
    return key


def _pay_one(ctx: StageContext, app: AppRow, amount: Decimal, key: str) -> int:
    if ctx.supervisor.holding or ctx.supervisor.paused:
        return 0
    try:
        _pay(ctx, app, amount, key)
    except sdk.FeeNotDue as exc:
        with ctx.store.transaction():
            not_due(ctx, app, f"the centre says no fee is due: {exc.args[0]}")
            ctx.store.flag(app.reference, "needs_refresh", 1)  # read what happened (voided? cancelled?)
        return 0
    except sdk.Conflict:
        ctx.store.flag(app.reference, "needs_refresh", 1)  # already paid or waived: read it again
        return 0
    except Exception as exc:
        log.warning("fee payment failed; will retry", extra={"reference": app.reference, "error": type(exc).__name__})
        return 0
    return 1


def _pay(ctx: StageContext, app: AppRow, amount: Decimal, key: str) -> PaymentReceipt:
    fees, ref = ctx.config.fees, app.reference
    assert app.application_id is not None
    receipt = ctx.centre.pay(
        app.application_id,
        Payment(amount=amount, method=fees.method, payer_account=fees.payer_account),
        idempotency_key=key,
    )
    with ctx.store.transaction():
        ctx.store.update_application(ref, fee_status="paid", note=f"fee paid, 票据号 {receipt.receipt_number}")
        ctx.store.flag(ref, "paid_at", now_iso())
        queue_receipt(
            ctx,
            app,
            "fee_paid",
            "fee_paid",
            status="已缴费",
            amount=str(receipt.amount),
            reason=f"票据号 {receipt.receipt_number}",
        )
    ctx.audit.append(
        "fee.paid", ref, "ok", operator=_operator(app), amount=str(receipt.amount), receipt=receipt.receipt_number
    )
    return receipt


def pay_now(ctx: StageContext, reference: str) -> PaymentReceipt:
    """Pay one application's fee now (``regbridge fees pay REF``), whatever ``auto_pay`` says.

    The centre's notice is read first: only an ``unpaid`` notice of a recorded application is paid,
    for exactly its total, under the application's one payment idempotency key.

    Raises:
        FeeNotPayable: nothing is due (why in the message); KeyError: no such reference.
    """
    app = ctx.store.application(reference)
    if app is None:
        raise KeyError(reference)
    if app.application_id is None:
        raise FeeNotPayable("no fee is due: the application is not at the centre yet")
    try:
        notice = ctx.centre.fee_notice(app.application_id)
    except sdk.NotFound:
        raise FeeNotPayable(
            f"no fee is due: the centre has assessed none (the application is {app.centre_status}; "
            "fees are assessed at 登簿)"
        ) from None
    if notice.status != "unpaid":
        with ctx.store.transaction():
            ctx.store.update_application(reference, fee_status=notice.status)
        raise FeeNotPayable(f"no fee is due: the centre's fee notice is {notice.status}")
    with ctx.store.transaction():
        ctx.store.update_application(reference, fee_status="unpaid", fee_total=str(notice.total))
    app = ctx.store.application(reference)
    assert app is not None
    try:
        return _pay(ctx, app, notice.total, _pay_key(ctx, app))
    except sdk.FeeNotDue as exc:
        raise FeeNotPayable(f"no fee is due: {exc.args[0]}") from None


def record_refund(ctx: StageContext, app: AppRow, data: dict[str, Any]) -> bool:
    """Record one refund (``fee.refunded``) once: a receipt line and an audit record; answer whether it was new.

    Runs inside the caller's transaction (the event handler's).
    """
    refund_id = str(data.get("refund_id") or "")
    reason = str(data.get("reason") or "")
    number = data.get("refund_number")
    text = REFUND_REASONS.get(reason, reason) + (f"，退款凭证号 {number}" if number else "")
    before = ctx.store.receipts(app.reference)
    if any(r["kind"] == f"refund:{refund_id}" for r in before):
        return False
    queue_receipt(
        ctx,
        app,
        f"refund:{refund_id}",
        "fee_refunded",
        status="已退款",
        amount=data.get("amount"),
        reason=text,
        refund_id=refund_id,
        refund_reason=reason,
        refund_number=number,
        payment_id=data.get("payment_id"),
    )
    if reason == "application_voided":
        ctx.store.update_application(app.reference, fee_status="refunded", note=f"fee refunded: {text}")
    ctx.audit.append(
        "fee.refunded", app.reference, "ok", operator=_operator(app), amount=str(data.get("amount")), reason=reason
    )
    return True


def refunds(store: StateStore, reference: str | None = None) -> list[dict[str, Any]]:
    """The refunds the agent recorded (of one application, or all): reference, refund id, amount (元), reason…"""
    found = []
    for r in store.receipts(reference):
        if not str(r["kind"]).startswith("refund:"):
            continue
        p = r["payload"]
        found.append(
            {
                "reference": r["reference"],
                "loan_no": p.get("loan_no"),
                "refund_id": p.get("refund_id"),
                "amount": p.get("amount"),
                "reason": p.get("refund_reason"),
                "refund_number": p.get("refund_number"),
                "payment_id": p.get("payment_id"),
                "at": p.get("at"),
            }
        )
    return found


def fee_listing(store: StateStore) -> dict[str, list[dict[str, Any]]]:
    """What ``regbridge fees`` shows: ``due`` (assessed, unpaid, recorded), ``paid`` and ``refunded`` (元)."""
    due, paid = [], []
    for app in store.applications():
        row = {
            "reference": app.reference,
            "loan_no": app.loan_no,
            "amount": app.fee_total,
            "centre_status": app.centre_status,
        }
        if app.fee_status == "unpaid" and _why_not(app) is None:
            due.append(row)
        elif app.fee_status in ("paid", "refunded"):
            paid.append({**row, "fee_status": app.fee_status})
    return {"due": due, "paid": paid, "refunded": refunds(store)}
