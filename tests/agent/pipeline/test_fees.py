"""Fees as seed 001 §3 orders them, from the bank's side (issue 18 item 1).

The agent pays only what the centre says is due (a fee notice in ``unpaid``, after 登簿), never
after a final refusal; it records and reports every refund; ``regbridge fees`` lists what is due,
paid and refunded, and ``regbridge fees pay REF`` pays by hand when auto-pay is off.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app as cli
from agent.pipeline.fees import refunds
from sandbox import register
from sdk.models import Payment

from ..conftest import SECRET, Branch, drop, make_branch, mortgage_export, run_until


def _receipts(folder: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(folder.glob("receipts-*.csv")):
        rows += list(csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030"))))
    return rows


def _payments(branch: Branch, reference: str) -> list[dict[str, object]]:
    store = branch.centre.app.state.centre.store
    row = store.one("SELECT id FROM applications WHERE client_reference = ?", reference)
    assert row is not None
    rows = store.all("SELECT receipt FROM payments WHERE application_id = ?", row["id"])
    return [json.loads(r["receipt"]) for r in rows]


def test_the_seized_unit_refused_after_acceptance_is_never_paid(branch: Branch) -> None:
    """The demo's seized-unit row: 受理 then 不予登记 — before, the agent paid in between and the loan
    system's last line read 已缴费; now no fee is ever assessed, nothing is paid, the last line is the refusal."""
    inbox = branch.inbox()
    drop(inbox, "seized.csv", mortgage_export(inbox, {"LN-SEIZED": register.SEIZED_UNIT}))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)
        app = agent.store.application("LN-SEIZED-DYSC")
        assert app is not None and app.stage == "rejected" and app.centre_status == "refused"
        assert app.fee_status is None
        assert _payments(branch, "LN-SEIZED-DYSC") == []
        # the agent's own guard: even a stale 'unpaid' (a fee event read before the refusal) is never paid
        agent.store.update_application("LN-SEIZED-DYSC", fee_status="unpaid", fee_total="80.00")
        assert agent.run_until_idle(timeout=10)
        assert _payments(branch, "LN-SEIZED-DYSC") == []
        assert agent.store.application("LN-SEIZED-DYSC").fee_status != "unpaid"  # type: ignore[union-attr]
    finally:
        agent.close()
    every = [r for r in _receipts(inbox / "receipts") if r["业务编号"] == "LN-SEIZED-DYSC"]
    # the sealed 受理凭证 and 不予登记通知书 are documents named in their own lines (issue 20), not statuses
    assert sorted(r["事件"] for r in every if r["事件"].startswith("notice_")) == [
        "notice_acceptance_receipt",
        "notice_refusal",
    ]
    lines = [r for r in every if not r["事件"].startswith("notice_")]
    assert [r["事件"] for r in lines] == ["accepted", "rejected"]
    assert lines[-1]["状态"] == "不予登记" and "property_seized" in lines[-1]["原因"]
    assert not any(r["状态"] == "已缴费" for r in lines)


def test_a_duplicate_payment_is_refunded_recorded_and_reported(branch: Branch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    inbox = branch.inbox()
    drop(inbox, "one.csv", mortgage_export(inbox, {"LN-DUP": 31}))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)
        app = agent.store.application("LN-DUP-DYSC")
        assert app is not None and app.stage == "done" and app.fee_status == "paid"
        # a second payment made outside the agent (a clerk at the counter, a lost key): the centre refunds it
        centre = branch.centre.app.state.centre
        centre.pay(branch.institution_id, app.application_id, Payment(amount=Decimal("80.00")))
        assert agent.run_until_idle(timeout=30)
        recorded = refunds(agent.store, "LN-DUP-DYSC")
        assert [(r["reason"], r["amount"]) for r in recorded] == [("duplicate_payment", "80.00")]
        assert agent.store.application("LN-DUP-DYSC").fee_status == "paid"  # type: ignore[union-attr]
    finally:
        agent.close()
    lines = [r for r in _receipts(inbox / "receipts") if r["业务编号"] == "LN-DUP-DYSC"]
    refunded = [r for r in lines if r["事件"] == "fee_refunded"]
    assert len(refunded) == 1 and refunded[0]["费用(元)"] == "80.00" and "重复缴费" in refunded[0]["原因"]
    listed = CliRunner().invoke(cli, ["fees", "--config", str(branch.config), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["reference"]: r for r in json.loads(listed.output)["refunded"]}
    assert rows["LN-DUP-DYSC"]["amount"] == "80.00" and rows["LN-DUP-DYSC"]["reason"] == "duplicate_payment"


def test_a_paid_application_voided_at_the_centre_is_refunded_and_reported(branch: Branch) -> None:
    inbox = branch.inbox()
    centre = branch.centre.app.state.centre
    centre.workflow.set_script("LN-VOID-DYSC", "issue", {"outcome": "hold"})  # paid, not yet issued
    drop(inbox, "one.csv", mortgage_export(inbox, {"LN-VOID": 32}))
    agent = branch.agent()
    try:
        run_until(agent, lambda: getattr(agent.store.application("LN-VOID-DYSC"), "fee_status", None) == "paid")
        app = agent.store.application("LN-VOID-DYSC")
        assert app is not None and app.fee_status == "paid" and app.centre_status == "recorded"
        centre.void_application(branch.institution_id, app.application_id, "登簿事项有误，予以撤销")
        assert agent.run_until_idle(timeout=30)
        app = agent.store.application("LN-VOID-DYSC")
        assert app is not None and app.stage == "rejected" and app.centre_status == "voided"
        assert app.fee_status == "refunded"
        assert [r["reason"] for r in refunds(agent.store, "LN-VOID-DYSC")] == ["application_voided"]
    finally:
        agent.close()
    lines = [r for r in _receipts(inbox / "receipts") if r["业务编号"] == "LN-VOID-DYSC"]
    events = [r["事件"] for r in lines]
    assert "fee_paid" in events and "fee_refunded" in events and "rejected" in events
    rejected = next(r for r in lines if r["事件"] == "rejected")
    assert rejected["状态"] == "撤销" and "登簿事项有误" in rejected["原因"]
    refund = next(r for r in lines if r["事件"] == "fee_refunded")
    assert refund["费用(元)"] == "80.00" and "撤销" in refund["原因"]


def test_with_auto_pay_off_fees_wait_and_are_paid_by_hand(
    centre: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    branch = make_branch(centre, tmp_path / "b", fees={"auto_pay": False})  # type: ignore[arg-type]
    inbox = branch.inbox()
    drop(inbox, "one.csv", mortgage_export(inbox, {"LN-HAND": 33}))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)
        app = agent.store.application("LN-HAND-DYSC")
        assert app is not None and app.centre_status == "recorded" and app.fee_status == "unpaid"
    finally:
        agent.close()
    runner = CliRunner()
    listed = runner.invoke(cli, ["fees", "--config", str(branch.config), "--json"])
    assert listed.exit_code == 0, listed.output
    due = json.loads(listed.output)["due"]
    assert [(r["reference"], r["amount"]) for r in due] == [("LN-HAND-DYSC", "80.00")]
    shown = runner.invoke(cli, ["fees", "--config", str(branch.config)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "amount (元)" in shown.output and "80.00" in shown.output, shown.output
    paid = runner.invoke(cli, ["fees", "pay", "LN-HAND-DYSC", "--config", str(branch.config)])
    assert paid.exit_code == 0, paid.output
    assert "80.00" in paid.output
    again = runner.invoke(cli, ["fees", "pay", "LN-HAND-DYSC", "--config", str(branch.config)])
    assert again.exit_code != 0 and "no fee is due" in again.output.lower() and "无需缴费" in again.output
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)
        app = agent.store.application("LN-HAND-DYSC")
        assert app is not None and app.stage == "done" and app.fee_status == "paid"
    finally:
        agent.close()
    assert len(_payments(branch, "LN-HAND-DYSC")) == 1
