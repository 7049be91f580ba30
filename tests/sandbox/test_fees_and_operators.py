"""Fees after the result, refunds, and accountable operators at the centre (issue 18 items 1–2).

Seed 001 §3: the centre records (登簿) and feeds the result back, then the bank pays, then the
certificate is issued. Seed 001 §4.2: the centre creates an account per 业务办理人员 of the bank.
Over real HTTP on loopback, with the SDK.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import sdk
from sandbox import register
from sandbox.errors import CentreError
from sdk.models import ApplicationStatus, EventType, Payment
from tests import factories as f

from .conftest import Bank, Running, lodge, settle

S = ApplicationStatus


def _fee_events(bank: Bank, application_id: str) -> list[sdk.models.Event]:
    kinds = {EventType.FEE_ASSESSED, EventType.FEE_PAID, EventType.FEE_REFUNDED, EventType.FEE_CANCELLED}
    return [e for e in bank.client.events.pager() if e.application_id == application_id and e.type in kinds]


def test_a_refused_application_is_never_assessed_and_cannot_be_paid(sandbox: Running, bank: Bank) -> None:
    """The demo's seized unit: accepted, then 不予登记 at examination — no fee notice ever, payment refused."""
    data = f.application_dict("mortgage_first", "LN-SEIZED", n=register.SEIZED_UNIT, complete=True)
    sandbox.centre.workflow.set_script("LN-SEIZED", "review", {"outcome": "hold"})  # stop at 受理
    record = settle(bank.client, lodge(bank, data).application_id, "accepted")
    assert record.status is S.ACCEPTED and record.fee_status is None
    with pytest.raises(sdk.NotFound):
        bank.client.fees.get(record.application_id)  # accepted is not a result: nothing is assessed
    with pytest.raises(sdk.FeeNotDue):
        bank.client.fees.pay(record.application_id, Payment(amount=Decimal("80.00")), idempotency_key="s:pay1")
    sandbox.centre.workflow.clear_script("LN-SEIZED", "review")
    sandbox.centre.workflow.advance(bank.institution_id, record.application_id)
    done = settle(bank.client, record.application_id)
    assert done.status is S.REFUSED and done.decision and done.decision.code == "property_seized"
    assert done.fee_status is None and _fee_events(bank, done.application_id) == []
    with pytest.raises(sdk.FeeNotDue):
        bank.client.fees.pay(done.application_id, Payment(amount=Decimal("80.00")), idempotency_key="s:pay2")
    assert sandbox.store.all("SELECT * FROM payments WHERE application_id = ?", done.application_id) == []


def test_fee_is_assessed_at_recording_and_the_certificate_waits_for_it(sandbox: Running, bank: Bank) -> None:
    record = settle(
        bank.client,
        lodge(bank, f.application_dict("mortgage_first", "LN-REC", n=16, complete=True)).application_id,
        "recorded",
    )
    assert record.status is S.RECORDED and record.fee_status == "unpaid"
    events = [e for e in bank.client.events.pager() if e.application_id == record.application_id]
    assessed = next(i for i, e in enumerate(events) if e.type is EventType.FEE_ASSESSED)
    recorded = next(i for i, e in enumerate(events) if e.status is S.RECORDED)
    assert assessed > recorded  # the result first, then the fee


def test_a_duplicate_payment_is_refunded(sandbox: Running, bank: Bank) -> None:
    record = settle(
        bank.client,
        lodge(bank, f.application_dict("mortgage_first", "LN-DUP", n=17, complete=True)).application_id,
        "recorded",
    )
    sandbox.centre.workflow.set_script("LN-DUP", "issue", {"outcome": "hold"})
    first = bank.client.fees.pay(record.application_id, Payment(amount=Decimal("80.00")), idempotency_key="d:1")
    second = bank.client.fees.pay(record.application_id, Payment(amount=Decimal("80.00")), idempotency_key="d:2")
    assert first.status == "settled" and first.refund is None
    assert second.status == "refunded" and second.refund is not None
    assert second.refund.reason == "duplicate_payment" and second.refund.amount == Decimal("80.00")
    assert second.refund.payment_id == second.payment_id != first.payment_id
    notice = bank.client.fees.get(record.application_id)
    assert notice.status == "paid" and notice.payment_id == first.payment_id
    assert [r.refund_id for r in notice.refunds] == [second.refund.refund_id]
    assert bank.client.fees.receipt(second.payment_id).refund == second.refund
    refunds = [e for e in _fee_events(bank, record.application_id) if e.type is EventType.FEE_REFUNDED]
    assert [e.data["refund_id"] for e in refunds] == [second.refund.refund_id]
    assert refunds[0].data["reason"] == "duplicate_payment" and refunds[0].data["amount"] == "80.00"


def test_a_paid_application_voided_at_the_centre_is_refunded(sandbox: Running, bank: Bank) -> None:
    record = settle(
        bank.client,
        lodge(bank, f.application_dict("mortgage_first", "LN-VOID", n=18, complete=True)).application_id,
        "recorded",
    )
    sandbox.centre.workflow.set_script("LN-VOID", "issue", {"outcome": "hold"})
    paid = bank.client.fees.pay(record.application_id, Payment(amount=Decimal("80.00")), idempotency_key="v:1")
    unit = register.unit_id(18)
    before = [r for r in sandbox.centre.register.rights(unit, current_only=True) if r.kind == "mortgage"]
    voided = sandbox.centre.void_application(bank.institution_id, record.application_id, "登簿事项有误，予以撤销")
    assert voided.status is S.VOIDED and voided.is_final and voided.fee_status == "refunded"
    assert voided.decision is not None and voided.decision.notice_number and not voided.certificate_ids
    after = [r for r in sandbox.centre.register.rights(unit, current_only=True) if r.kind == "mortgage"]
    assert len(after) == len(before) - 1  # the entry is gone from the register
    notice = bank.client.fees.get(record.application_id)
    assert notice.status == "refunded" and len(notice.refunds) == 1
    refund = notice.refunds[0]
    assert refund.reason == "application_voided" and refund.payment_id == paid.payment_id
    assert bank.client.fees.receipt(paid.payment_id).status == "refunded"
    kinds = [e.type for e in _fee_events(bank, record.application_id)]
    assert kinds == [EventType.FEE_ASSESSED, EventType.FEE_PAID, EventType.FEE_REFUNDED]
    with pytest.raises(sdk.FeeNotDue):
        bank.client.fees.pay(record.application_id, Payment(amount=Decimal("80.00")), idempotency_key="v:2")
    sandbox.centre.workflow.clear_script("LN-VOID", "issue")
    assert settle(bank.client, record.application_id).status is S.VOIDED  # final: 缮证 never comes


def test_an_unpaid_application_voided_has_its_notice_cancelled(sandbox: Running, bank: Bank) -> None:
    record = settle(
        bank.client,
        lodge(bank, f.application_dict("mortgage_first", "LN-VOID2", n=19, complete=True)).application_id,
        "recorded",
    )
    voided = sandbox.centre.void_application(bank.institution_id, record.application_id, "登簿事项有误")
    assert voided.fee_status == "cancelled" and bank.client.fees.get(record.application_id).status == "cancelled"
    assert [e.type for e in _fee_events(bank, record.application_id)][-1] is EventType.FEE_CANCELLED
    with pytest.raises(sdk.FeeNotDue):
        bank.client.fees.pay(record.application_id, Payment(amount=Decimal("80.00")), idempotency_key="v2:1")
    with pytest.raises(CentreError):
        sandbox.centre.void_application(bank.institution_id, record.application_id, "again")


# --- accountable operators (seed 001 §4.2) ------------------------------------------------------


def _with_operator(ref: str, n: int, operator_id: str) -> dict[str, object]:
    data = f.application_dict("mortgage_first", ref, n=n, complete=True)
    data["declaration"] = {**data["declaration"], "operator_id": operator_id}
    return data


def test_an_unknown_operator_is_refused_before_acceptance_without_a_notice_number(sandbox: Running, bank: Bank) -> None:
    numbers_before = [tuple(r) for r in sandbox.store.all("SELECT * FROM counters")]
    with pytest.raises(sdk.OperatorNotAuthorised) as exc:
        lodge(bank, _with_operator("LN-OP1", 21, "op-999"))
    assert exc.value.code == "operator_not_authorised" and exc.value.status == 403
    assert exc.value.errors[0].pointer == "/declaration/operator_id"
    assert "op-999" in str(exc.value)
    # nothing was created, no notice number spent
    assert bank.client.applications.find("LN-OP1") is None
    assert [tuple(r) for r in sandbox.store.all("SELECT * FROM counters")] == numbers_before


def test_a_deactivated_operator_and_another_banks_operator_are_refused(sandbox: Running, bank: Bank) -> None:
    other = sandbox.centre.create_institution(
        name="另一家银行合肥分行", uscc=f.uscc("91340100MA2N00002"), licence_no="B0002H234010001", district="340121"
    )
    sandbox.centre.create_operator(other, "王经办", operator_id="op-other")
    with pytest.raises(sdk.OperatorNotAuthorised) as exc:
        lodge(bank, _with_operator("LN-OP2", 22, "op-other"))
    assert "another institution" in str(exc.value) or "其他机构" in str(exc.value)

    sandbox.centre.create_operator(bank.institution_id, "赵经办", operator_id="op-leaver")
    draft = bank.client.applications.create(
        sdk.models.MortgageFirstRegistration.model_validate(_with_operator("LN-OP3", 23, "op-leaver")),
        idempotency_key="op3:create",
    )
    sandbox.centre.deactivate_operator(bank.institution_id, "op-leaver")
    listed = {o.operator_id: o for o in bank.client.institution.operators()}
    assert listed["op-leaver"].active is False and listed["op-leaver"].deactivated_at is not None
    assert listed["op-001"].active is True
    for m in draft.application.materials:
        content = f.sample_content(m, "LN-OP3")
        bank.client.applications.upload_material(draft.application_id, m, content)
    with pytest.raises(sdk.OperatorNotAuthorised) as exc:
        bank.client.applications.submit(draft.application_id, idempotency_key="op3:submit")
    assert "deactivated" in str(exc.value) or "停用" in str(exc.value)
    assert bank.client.applications.get(draft.application_id).status is S.DRAFT  # never reached 受理


# --- the register's rules (issue 18 item 5) ----------------------------------------------------------


def test_two_mortgages_at_the_same_rank_are_refused(sandbox: Running, bank: Bank) -> None:
    """Unit 10 carries rank 1 (this bank) and rank 2 (another bank): a new mortgage cannot take either."""
    data = f.application_dict("mortgage_first", "LN-RANK", n=10, complete=True)
    data["terms"] = {**data["terms"], "rank": 2}
    done = settle(bank.client, lodge(bank, data).application_id)
    assert done.status is S.REFUSED and done.decision is not None and done.decision.code == "rank_taken"
    assert "第2顺位已有抵押权" in done.decision.reason
    free = f.application_dict("mortgage_first", "LN-RANK3", n=10, complete=True)
    free["terms"] = {**free["terms"], "rank": 3}
    record = settle(bank.client, lodge(bank, free).application_id, "recorded")
    assert record.status is S.RECORDED
    change = f.application_dict("mortgage_change", "LN-RANKCHG", n=10, complete=True)
    change["changes"] = [{"kind": "rank", "new_rank": 2}]  # onto the other bank's rank without its agreement
    refused = settle(bank.client, lodge(bank, change).application_id)
    assert refused.status is S.REFUSED and refused.decision is not None and refused.decision.code == "rank_taken"


def test_under_construction_is_a_setting_excluded_by_default(sandbox: Running) -> None:
    from sandbox.review import Scope, accept

    app = f.application("mortgage_first", "LN-ZJ", n=30)
    kind = type(app.properties[0].property_type)  # BDCLX
    building = app.model_copy(
        update={"properties": [app.properties[0].model_copy(update={"property_type": kind("4")})]}
    )
    checklist = sandbox.centre.checklists["mortgage_first"]
    default = accept(building, sandbox.centre.register, institution_uscc=f.BANK_USCC, checklist=checklist)
    assert default.outcome == "not_accepted" and default.code == "outside_scope" and "在建工程" in default.reason
    opened = accept(building, sandbox.centre.register, institution_uscc=f.BANK_USCC, checklist=checklist,
                    scope=Scope(under_construction=True))  # fmt: skip
    assert "outside_scope" not in {x.code for x in opened.findings}
    land = app.model_copy(update={"properties": [app.properties[0].model_copy(update={"property_type": kind("1")})]})
    still = accept(land, sandbox.centre.register, institution_uscc=f.BANK_USCC, checklist=checklist,
                   scope=Scope(under_construction=True))  # fmt: skip
    assert still.code == "outside_scope" and "纯土地" in still.reason


def test_a_junior_mortgagees_consent_only_when_a_junior_right_exists_and_the_change_worsens_it(
    sandbox: Running, bank: Bank
) -> None:
    raise_debt = [{"kind": "secured_debt", "new_amount": "99000000.00"}]
    # unit 10: this bank's rank 1 and another bank's rank 2 — raising the debt worsens the junior: 补正 asks consent
    junior = f.application_dict("mortgage_change", "LN-JR", n=10, complete=True)
    junior["changes"] = raise_debt
    asked = settle(bank.client, lodge(bank, junior).application_id, "correction_required")
    assert asked.status is S.CORRECTION_REQUIRED and asked.correction is not None
    assert [i.code for i in asked.correction.items] == ["junior_consent"]
    assert "后顺位抵押权人同意" in asked.correction.items[0].reason
    # unit 5: this bank's mortgage alone — no junior right, so no consent is asked for
    alone = f.application_dict("mortgage_change", "LN-JR5", n=5, complete=True)
    alone["changes"] = raise_debt
    assert settle(bank.client, lodge(bank, alone).application_id, "recorded").status is S.RECORDED
    # unit 20: a junior exists but the change does not worsen it (a shorter debt period): no consent either
    shorter = f.application_dict("mortgage_change", "LN-JR20", n=20, complete=True)
    shorter["changes"] = [{"kind": "debt_period", "new_start": "2026-03-05", "new_end": "2036-03-04"}]
    assert settle(bank.client, lodge(bank, shorter).application_id, "recorded").status is S.RECORDED


def test_the_admin_commands_say_a_refusal_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer re-running a step (create-operator op-001 twice, an operator of another bank, an unknown institution)
    read a Python traceback ending in CentreError; every admin command now says the centre's code and reason."""
    from typer.testing import CliRunner

    from sandbox.centre import Centre
    from sandbox.cli import app as sandbox_cli
    from sandbox.store import Store

    monkeypatch.setenv("REGBRIDGE_SANDBOX_SECRET", "a-test-secret-of-enough-length")
    Centre(Store(tmp_path / "centre.sqlite3"), passphrase=b"a-test-secret-of-enough-length")  # serve made it
    data = ["--data", str(tmp_path)]
    runner = CliRunner()
    bank_args = ["--name", register.SAMPLE_BANK_NAME, "--uscc", register.SAMPLE_BANK_USCC, "--licence-no", "B0001H2340"]
    made = runner.invoke(sandbox_cli, ["admin", "create-institution", *bank_args, *data])
    assert made.exit_code == 0, made.output
    iid = made.output.strip()
    first = runner.invoke(sandbox_cli, ["admin", "create-operator", iid, "--name", "李经办", "--operator-id", "op-001",
                                        *data])  # fmt: skip
    assert first.exit_code == 0 and first.output.strip() == "op-001"
    for args in (
        ["admin", "create-operator", iid, "--name", "李经办", "--operator-id", "op-001", *data],
        ["admin", "operators", "inst_nobody", *data],
        ["admin", "create-operator", "inst_nobody", "--name", "李经办", *data],
    ):
        again = runner.invoke(sandbox_cli, args)
        assert again.exit_code == 1, (args, again.output)
        assert again.exception is None or isinstance(again.exception, SystemExit), (args, again.exception)
        assert "Traceback" not in again.output and ("exists" in again.output or "inst_nobody" in again.output), (
            args, again.output,
        )  # fmt: skip
