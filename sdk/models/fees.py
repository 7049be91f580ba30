"""Fees (登记费), payments and refunds, in the order seed 001 §3 gives them.

The centre records the result (登簿), feeds it back to the bank, the bank pays online, then the
certificate is issued (downloaded or posted). So:

- a fee notice (缴费通知) exists only once the application is **recorded** (登簿); an application
  refused (不予受理/不予登记), withdrawn (撤回), cancelled (作废) or never recorded owes nothing;
- the bank pays exactly the notice's total, once;
- money that is not (or no longer) due is refunded by the centre with a :class:`Refund`
  (event ``fee.refunded``): a second payment of a notice already paid (``duplicate_payment``),
  or the payment of an application the centre voids (撤销, status ``voided``) after it was paid
  (``application_voided``). A notice of an application voided before payment is ``cancelled``.

Amounts are yuan (:data:`sdk.money.Yuan`, two decimals, exact).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ..money import Yuan
from ._base import Model, Resource

__all__ = [
    "FEE_STATUSES",
    "FeeItem",
    "FeeNotice",
    "FeeStatus",
    "Payment",
    "PaymentReceipt",
    "Refund",
    "RefundReason",
]

#: ``unpaid`` due now · ``paid`` · ``waived`` nothing to pay (注销登记) · ``cancelled`` no longer due
#: (the application was voided before payment) · ``refunded`` paid, then refunded (voided after payment)
FeeStatus = Literal["unpaid", "paid", "waived", "cancelled", "refunded"]
FEE_STATUSES: tuple[str, ...] = ("unpaid", "paid", "waived", "cancelled", "refunded")

#: why money came back: a second payment of a paid notice, or an application voided after payment
RefundReason = Literal["duplicate_payment", "application_voided"]


class FeeItem(Resource):
    code: str
    name: str
    amount: Yuan


class Refund(Resource):
    """退款: money the centre returns because it is not (or no longer) due."""

    refund_id: str
    payment_id: str = Field(description="the payment refunded")
    application_id: str
    amount: Yuan = Field(description="元, the whole payment")
    reason: RefundReason
    refund_number: str = Field(description="退款凭证号")
    refunded_at: datetime


class FeeNotice(Resource):
    """缴费通知: what a recorded (登簿) application costs; no notice before 登簿 or after a refusal."""

    application_id: str
    items: list[FeeItem]
    total: Yuan
    status: FeeStatus
    assessed_at: datetime
    payment_id: str | None = Field(default=None, description="the payment that settled the notice")
    refunds: list[Refund] = Field(default_factory=list, description="money returned for this application")


class Payment(Model):
    """Pay a fee notice. The amount must equal the notice's total (no partial payment)."""

    amount: Yuan
    method: Literal["bank_transfer", "online"] = "bank_transfer"
    payer_account: str | None = Field(default=None, max_length=64)


class PaymentReceipt(Resource):
    """The centre's receipt (缴费凭证). ``status`` is ``refunded`` when the money came back (``refund``)."""

    payment_id: str
    application_id: str
    amount: Yuan
    method: str
    paid_at: datetime
    receipt_number: str = Field(description="票据号")
    status: Literal["settled", "refunded"] = "settled"
    refund: Refund | None = None
