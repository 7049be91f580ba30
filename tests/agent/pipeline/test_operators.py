"""Accountable operators from the bank's side (issue 18 item 2; seed 001 §4.2).

The agent checks the export's 经办人 column against the centre's list of the bank's operator
accounts (cached, read again when an id is missing) before sending; an operator who is not an
active account of this bank keeps the application at home, quarantined with the reason, and the
centre never spends a notice number on it. A refusal by the centre for the same cause (an account
deactivated after the list was read) holds that application alone: submissions are not paused.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from agent.demo import samples
from agent.pipeline.requeue import requeue
from sandbox import register

from ..conftest import Branch, drop


def _export(inbox: Path, loans: dict[str, tuple[int, str]], cells: dict[str, str] | None = None) -> bytes:
    rows: list[dict[str, str]] = []
    for loan, (n, operator) in loans.items():
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
        rows += [{**r, "经办人": operator} for r in samples.mortgage_rows(loan, n, amount="150")]
    return samples.corebank_csv([{**r, **(cells or {})} for r in rows])


def _at_centre(branch: Branch, reference: str) -> bool:
    store = branch.centre.app.state.centre.store
    return store.one("SELECT 1 FROM applications WHERE client_reference = ?", reference) is not None


def test_an_operator_who_is_not_an_account_of_the_bank_is_held_before_sending(branch: Branch) -> None:
    inbox = branch.inbox()
    centre = branch.centre.app.state.centre
    notices_before = [tuple(r) for r in centre.store.all("SELECT * FROM counters")]
    drop(inbox, "ops.csv", _export(inbox, {"LN-OK": (41, "op-002"), "LN-NOBODY": (42, "op-777")}))
    # a row held for its own data (no 承诺): its audit record names its operator too
    drop(inbox, "bad.csv", _export(inbox, {"LN-BADROW": (48, "op-002")}, {"承诺": ""}))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)
        ok = agent.store.application("LN-OK-DYSC")
        held = agent.store.application("LN-NOBODY-DYSC")
        assert ok is not None and ok.stage == "done"
        assert held is not None and held.stage == "quarantined" and held.application_id is None
        assert not _at_centre(branch, "LN-NOBODY-DYSC")  # never sent
        item = next(q for q in agent.store.quarantined() if q["reference"] == "LN-NOBODY-DYSC")
        assert item["errors"][0]["expected"] == "经办人 op-777 不是本行在登记中心的有效账号"
        assert item["errors"][0]["field"] == "经办人" and item["row"] == 3
        # held at the branch, said as such: not "登记中心退回" / "中心校验未通过" (the centre never saw it), and the
        # cell's value is the operator id the export holds, not "（空）"
        assert item["kind"] == "operator_check" and item["errors"][0]["value"] == "op-777"
        held_audit = [json.loads(line) for line in agent.audit.path.read_text(encoding="utf-8").splitlines()]
        actions = [r["action"] for r in held_audit if r["target"] == "LN-NOBODY-DYSC"]
        assert actions[-1] == "application.held_operator_check"
        assert agent.supervision.paused is None
        # the audit trail names the operator of every record about an application
        records = [json.loads(line) for line in agent.audit.path.read_text(encoding="utf-8").splitlines()]
        about_ok = [r for r in records if r["target"] == "LN-OK-DYSC"]
        assert about_ok and all(r["detail"].get("operator") == "op-002" for r in about_ok)
        assert {r["action"] for r in about_ok} >= {"application.queued", "application.created", "fee.paid"}
        bad = [r for r in records if r["target"] == "LN-BADROW-DYSC"]
        assert [r["action"] for r in bad] == ["row.quarantined"] and bad[0]["detail"].get("operator") == "op-002"
    finally:
        agent.close()
    # no decision notice numbered for the held one; the one sent got its 受理凭证 (issue 20), and only it
    notices = {r[0]: r[1] for r in centre.store.all("SELECT * FROM counters") if str(r[0]).startswith("notice:")}
    before = {k: v for k, v in notices_before if str(k).startswith("notice:")}
    assert notices.pop("notice:acceptance_receipt") == before.pop("notice:acceptance_receipt", 0) + 1
    assert notices == before
    receipts = (inbox / "receipts").glob("receipts-*.csv")
    text = "".join(p.read_bytes().decode("gb18030") for p in receipts)
    assert "经办人 op-777 不是本行在登记中心的有效账号" in text
    line = next(r for r in csv.DictReader(io.StringIO(text.replace("\r\n", "\n"))) if r.get("贷款编号") == "LN-NOBODY")
    assert line["状态"] == "经办人账号无效，未提交" and "中心" not in line["状态"]
    # every line names the business type, a row held for its own data too (its line had an empty 业务类型)
    lines = list(csv.DictReader(io.StringIO(text.replace("\r\n", "\n"))))
    held_row = next(r for r in lines if r.get("贷款编号") == "LN-BADROW")
    assert held_row["事件"] == "quarantined" and held_row["业务类型"] == line["业务类型"] == "抵押权首次登记"
    # the centre opens the account; the held item is requeued and goes through as any application
    centre.accounts.create_operator(branch.institution_id, "王经办", operator_id="op-777")
    agent = branch.agent()
    try:
        assert requeue(agent.context, item["id"], actor="test").outcome == "requeued"
        assert agent.run_until_idle(timeout=30)
        done = agent.store.application("LN-NOBODY-DYSC")
        assert done is not None and done.stage == "done" and _at_centre(branch, "LN-NOBODY-DYSC")
    finally:
        agent.close()


def test_an_operator_deactivated_after_the_list_was_read_is_refused_by_the_centre_and_held_alone(
    branch: Branch,
) -> None:
    inbox = branch.inbox()
    centre = branch.centre.app.state.centre
    drop(inbox, "first.csv", _export(inbox, {"LN-A": (43, "op-002")}))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)  # the list is read and cached: op-002 active
        centre.deactivate_operator(branch.institution_id, "op-002")
        drop(inbox, "second.csv", _export(inbox, {"LN-B": (44, "op-002"), "LN-C": (46, "op-001")}))
        assert agent.run_until_idle(timeout=30)
        b, c = agent.store.application("LN-B-DYSC"), agent.store.application("LN-C-DYSC")
        assert b is not None and b.stage == "quarantined" and "经办人 op-002 不是本行在登记中心的有效账号" in (
            b.last_error or ""
        )
        assert c is not None and c.stage == "done"  # the others go on: nothing paused
        assert agent.supervision.paused is None
        # the list was read again: the next row naming op-002 is held before sending
        drop(inbox, "third.csv", _export(inbox, {"LN-D": (47, "op-002")}))
        assert agent.run_until_idle(timeout=30)
        d = agent.store.application("LN-D-DYSC")
        assert d is not None and d.stage == "quarantined" and not _at_centre(branch, "LN-D-DYSC")
    finally:
        agent.close()
    assert register.unit_id(44)  # the unit is still free: nothing was recorded for LN-B
