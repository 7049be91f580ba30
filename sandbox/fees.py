"""Fees (登记费): assessed at 受理 from the fee table (``config/fees.toml``), paid by the bank; 缮证
waits for the payment.

Money is exact: :class:`~decimal.Decimal` 元, two places; the amount paid must equal the notice's total.
"""

from __future__ import annotations

from decimal import Decimal

from sdk.models import ApplicationRecord, ApplicationStatus, FeeItem, FeeNotice, Payment, PaymentReceipt

from .errors import CentreError
from .events import EventFeed
from .ledger import Ledger
from .register import DISTRICT
from .schedule import Schedule
from .store import Store, new_id, now_utc

__all__ = ["FeeOffice"]


class FeeOffice:
    """Fee notices, payments and receipts.

    Args:
        table: per application type, the items charged per property unit (``config.load_fees()``).
    """

    def __init__(
        self,
        store: Store,
        *,
        ledger: Ledger,
        events: EventFeed,
        schedule: Schedule,
        table: dict[str, list[dict[str, str]]],
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.events = events
        self.schedule = schedule
        self.table = table

    def assess(self, institution_id: str, rec: ApplicationRecord) -> ApplicationRecord:
        """Assess the application's fee (items × property units) and announce it (``fee.assessed``)."""
        units = len(rec.application.properties)
        items = [
            FeeItem(code=i["code"], name=i["name"], amount=Decimal(i["amount"]) * units) for i in self.table[rec.type]
        ]
        total = sum((i.amount for i in items), Decimal("0.00"))
        notice = FeeNotice(
            application_id=rec.application_id,
            items=items,
            total=total,
            status="unpaid" if total > 0 else "waived",
            assessed_at=now_utc(),
        )
        self.store.execute("INSERT OR REPLACE INTO fees VALUES (?, ?)", rec.application_id, notice.model_dump_json())
        rec = rec.model_copy(update={"fee_status": notice.status})
        self.ledger.save(institution_id, rec)
        self.events.emit(institution_id, "fee.assessed", rec, {"total": str(notice.total), "fee_status": notice.status})
        return rec

    def fee_notice(self, institution_id: str, application_id: str) -> FeeNotice:
        """The application's fee notice.

        Raises:
            CentreError: 404 for an unknown application or one not assessed yet (before 受理).
        """
        self.ledger.load(institution_id, application_id)
        row = self.store.one("SELECT notice FROM fees WHERE application_id = ?", application_id)
        if row is None:
            raise CentreError(404, "not_found", "no fee has been assessed yet (fees are assessed at 受理)")
        return FeeNotice.model_validate_json(row["notice"])

    def pay(self, institution_id: str, application_id: str, payment: Payment) -> PaymentReceipt:
        """Pay the notice in full; a recorded (登簿) application then moves on to 缮证.

        Raises:
            CentreError: 409 when the notice is not unpaid, 422 ``amount_mismatch`` when the amount is not its total.
        """
        notice = self.fee_notice(institution_id, application_id)
        if notice.status != "unpaid":
            raise CentreError(409, "invalid_state", f"the fee notice is {notice.status}")
        if payment.amount != notice.total:
            raise CentreError(
                422,
                "validation_failed",
                f"the amount must equal the notice's total {notice.total}",
                errors=[{"code": "amount_mismatch", "detail": f"expected {notice.total}", "pointer": "/amount"}],
            )
        now = now_utc()
        receipt = PaymentReceipt(
            payment_id=new_id("pay"),
            application_id=application_id,
            amount=payment.amount,
            method=payment.method,
            paid_at=now,
            receipt_number=f"{DISTRICT}{now:%Y}{self.store.next_number('receipt'):08d}",
        )
        with self.store.transaction():
            notice = notice.model_copy(update={"status": "paid", "payment_id": receipt.payment_id})
            self.store.execute(
                "UPDATE fees SET notice = ? WHERE application_id = ?", notice.model_dump_json(), application_id
            )
            self.store.execute(
                "INSERT INTO payments VALUES (?, ?, ?, ?)",
                receipt.payment_id,
                institution_id,
                application_id,
                receipt.model_dump_json(),
            )
            record = self.ledger.load(institution_id, application_id).model_copy(update={"fee_status": "paid"})
            self.ledger.save(institution_id, record)
            self.events.emit(
                institution_id, "fee.paid", record, {"payment_id": receipt.payment_id, "total": str(receipt.amount)}
            )
        self.store.audit(institution_id, "fee.pay", application_id, "ok")
        if record.status is ApplicationStatus.RECORDED:
            self.schedule.schedule(institution_id, application_id)
        return receipt

    def receipt(self, institution_id: str, payment_id: str) -> PaymentReceipt:
        row = self.store.one("SELECT institution_id, receipt FROM payments WHERE payment_id = ?", payment_id)
        if row is None or row["institution_id"] != institution_id:
            raise CentreError(404, "not_found", f"no payment {payment_id}")
        return PaymentReceipt.model_validate_json(row["receipt"])
