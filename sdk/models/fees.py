"""Fees (登记费) and payment."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ..money import Yuan
from ._base import Model, Resource

__all__ = ["FeeItem", "FeeNotice", "Payment", "PaymentReceipt"]


class FeeItem(Resource):
    code: str
    name: str
    amount: Yuan


class FeeNotice(Resource):
    """缴费通知: what an application costs."""

    application_id: str
    items: list[FeeItem]
    total: Yuan
    status: Literal["unpaid", "paid", "waived"]
    assessed_at: datetime
    payment_id: str | None = None


class Payment(Model):
    """Pay a fee notice. The amount must equal the notice's total (no partial payment)."""

    amount: Yuan
    method: Literal["bank_transfer", "online"] = "bank_transfer"
    payer_account: str | None = Field(default=None, max_length=64)


class PaymentReceipt(Resource):
    """The centre's receipt (缴费凭证)."""

    payment_id: str
    application_id: str
    amount: Yuan
    method: str
    paid_at: datetime
    receipt_number: str = Field(description="票据号")
