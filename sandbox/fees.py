"""Fees (登记费) in the order of seed 001 §3: the centre records (登簿) and feeds the result back, the
bank pays online, then the certificate is issued. So a fee is assessed only at 登簿 — never for an
application refused, withdrawn, cancelled or voided — and 缮证 waits for the payment.

Money not (or no longer) due is refunded, each time with a :class:`~sdk.models.Refund` and a
``fee.refunded`` event: a second payment of a paid notice (``duplicate_payment``), and the payment
of an application voided (撤销) after it was paid (``application_voided``). A notice of an
application voided before payment is ``cancelled`` (``fee.cancelled``). docs/api.md §8.

Money is exact: :class:`~decimal.Decimal` 元, two places; the amount paid must equal the notice's total.
"""

from __future__ import annotations

from decimal import Decimal

from sdk.models import (
    ApplicationRecord,
    ApplicationStatus,
    FeeItem,
    FeeNotice,
    Payment,
    PaymentReceipt,
    Refund,
    RefundReason,
)

from .errors import CentreError
from .events import EventFeed
from .ledger import Ledger
from .register import CHANGFENG, County
from .schedule import Schedule
from .store import Store, new_id, now_utc

__all__ = ["FeeOffice"]


class FeeOffice:
    """Fee notices, payments, receipts and refunds.

    Args:
        table: per application type, the items charged per property unit (``config.load_fees()``).
        county: the centre's county: its 行政区划代码 leads every receipt (票据号) and refund number.
    """

    def __init__(
        self,
        store: Store,
        *,
        ledger: Ledger,
        events: EventFeed,
        schedule: Schedule,
        table: dict[str, list[dict[str, str]]],
        county: County = CHANGFENG,
    ) -> None:
        self.store = store
        self.district = county.district
        self.ledger = ledger
        self.events = events
        self.schedule = schedule
        self.table = table

    def assess(self, institution_id: str, rec: ApplicationRecord) -> ApplicationRecord:
        """Assess a just-recorded (登簿) application's fee (items × property units): ``fee.assessed``."""
        if rec.status is not ApplicationStatus.RECORDED:
            raise ValueError(f"fees are assessed at 登簿, not in status {rec.status.value} (seed 001 §3)")
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
        self._save_notice(notice)
        rec = rec.model_copy(update={"fee_status": notice.status})
        self.ledger.save(institution_id, rec)
        self.events.emit(institution_id, "fee.assessed", rec, {"total": str(notice.total), "fee_status": notice.status})
        return rec

    def _save_notice(self, notice: FeeNotice) -> None:
        self.store.execute("INSERT OR REPLACE INTO fees VALUES (?, ?)", notice.application_id, notice.model_dump_json())

    def _notice(self, application_id: str) -> FeeNotice | None:
        row = self.store.one("SELECT notice FROM fees WHERE application_id = ?", application_id)
        return FeeNotice.model_validate_json(row["notice"]) if row else None

    def fee_notice(self, institution_id: str, application_id: str) -> FeeNotice:
        """The application's fee notice, with its refunds.

        Raises:
            CentreError: 404 for an unknown application or one not recorded (登簿): nothing is assessed before.
        """
        rec = self.ledger.load(institution_id, application_id)
        notice = self._notice(application_id)
        if notice is None:
            raise CentreError(
                404, "not_found", f"no fee notice: fees are assessed at 登簿 (the application is {rec.status.value})"
            )
        return notice

    def pay(self, institution_id: str, application_id: str, payment: Payment) -> PaymentReceipt:
        """Pay the notice in full; a recorded (登簿) application then moves on to 缮证.

        A second payment of a notice already paid is taken and refunded at once (``duplicate_payment``):
        the receipt answers ``status: "refunded"`` with its refund.

        Raises:
            CentreError: 409 ``fee_not_due`` when nothing is due (no notice: not recorded, refused,
                withdrawn; or a notice waived, cancelled or refunded); 422 ``amount_mismatch`` when the
                amount is not the notice's total.
        """
        rec = self.ledger.load(institution_id, application_id)
        notice = self._notice(application_id)
        if notice is None:
            raise CentreError(
                409,
                "fee_not_due",
                f"no fee is due: the application is {rec.status.value} ({rec.status.label}); fees are assessed "
                "at 登簿 and never for an application refused, withdrawn or voided",
            )
        if notice.status not in ("unpaid", "paid"):
            raise CentreError(409, "fee_not_due", f"no fee is due: the fee notice is {notice.status}")
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
            receipt_number=f"{self.district}{now:%Y}{self.store.next_number('receipt'):08d}",
        )
        with self.store.transaction():
            self._save_payment(institution_id, receipt)
            if notice.status == "paid":  # the money came twice: it goes back
                receipt, notice = self._refund(institution_id, rec, notice, receipt, "duplicate_payment")
                self._save_notice(notice)
                self.store.audit(institution_id, "fee.refund", application_id, "duplicate_payment")
                return receipt
            notice = notice.model_copy(update={"status": "paid", "payment_id": receipt.payment_id})
            self._save_notice(notice)
            record = rec.model_copy(update={"fee_status": "paid"})
            self.ledger.save(institution_id, record)
            self.events.emit(
                institution_id, "fee.paid", record, {"payment_id": receipt.payment_id, "total": str(receipt.amount)}
            )
        self.store.audit(institution_id, "fee.pay", application_id, "ok")
        if record.status is ApplicationStatus.RECORDED:
            self.schedule.schedule(institution_id, application_id)
        return receipt

    def _save_payment(self, institution_id: str, receipt: PaymentReceipt) -> None:
        self.store.execute(
            "INSERT OR REPLACE INTO payments VALUES (?, ?, ?, ?)",
            receipt.payment_id,
            institution_id,
            receipt.application_id,
            receipt.model_dump_json(),
        )

    def _refund(
        self,
        institution_id: str,
        rec: ApplicationRecord,
        notice: FeeNotice,
        receipt: PaymentReceipt,
        reason: RefundReason,
    ) -> tuple[PaymentReceipt, FeeNotice]:
        """Return one payment (in the caller's transaction): refund kept, receipt marked, ``fee.refunded``."""
        now = now_utc()
        refund = Refund(
            refund_id=new_id("rf"),
            payment_id=receipt.payment_id,
            application_id=receipt.application_id,
            amount=receipt.amount,
            reason=reason,
            refund_number=f"{self.district}{now:%Y}T{self.store.next_number('refund'):08d}",
            refunded_at=now,
        )
        self.store.execute(
            "INSERT INTO refunds VALUES (?, ?, ?, ?, ?)",
            refund.refund_id,
            institution_id,
            refund.application_id,
            refund.payment_id,
            refund.model_dump_json(),
        )
        receipt = receipt.model_copy(update={"status": "refunded", "refund": refund})
        self._save_payment(institution_id, receipt)
        self.events.emit(
            institution_id,
            "fee.refunded",
            rec,
            {
                "refund_id": refund.refund_id,
                "payment_id": refund.payment_id,
                "amount": str(refund.amount),
                "reason": reason,
                "refund_number": refund.refund_number,
            },
        )
        return receipt, notice.model_copy(update={"refunds": [*notice.refunds, refund]})

    def void(self, institution_id: str, rec: ApplicationRecord) -> ApplicationRecord:
        """The application was voided (撤销): an unpaid notice is cancelled, a paid one refunded.

        Runs inside the caller's transaction; answers the record with its new ``fee_status``.
        """
        notice = self._notice(rec.application_id)
        if notice is None or notice.status not in ("unpaid", "paid"):
            return rec
        if notice.status == "unpaid":
            notice = notice.model_copy(update={"status": "cancelled"})
            rec = rec.model_copy(update={"fee_status": "cancelled"})
            self.ledger.save(institution_id, rec)
            self._save_notice(notice)
            self.events.emit(institution_id, "fee.cancelled", rec, {"total": str(notice.total)})
            return rec
        assert notice.payment_id is not None
        rec = rec.model_copy(update={"fee_status": "refunded"})
        self.ledger.save(institution_id, rec)
        _, notice = self._refund(
            institution_id, rec, notice, self.receipt(institution_id, notice.payment_id), "application_voided"
        )
        self._save_notice(notice.model_copy(update={"status": "refunded"}))
        self.store.audit(institution_id, "fee.refund", rec.application_id, "application_voided")
        return rec

    def receipt(self, institution_id: str, payment_id: str) -> PaymentReceipt:
        """The payment's receipt, with its refund when the money went back (raises CentreError 404 when unknown)."""
        row = self.store.one("SELECT institution_id, receipt FROM payments WHERE payment_id = ?", payment_id)
        if row is None or row["institution_id"] != institution_id:
            raise CentreError(404, "not_found", f"no payment {payment_id}")
        return PaymentReceipt.model_validate_json(row["receipt"])
