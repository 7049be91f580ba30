"""Re-applying after a refusal (issue 18 item 3): a new operation, a new reference, the link kept."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app as cli
from agent.demo import samples
from sandbox import register

from ..conftest import SECRET, Branch, drop, make_branch, mortgage_export

ROOT = Path(__file__).resolve().parents[3]


def _receipts(folder: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(folder.glob("receipts-*.csv")):
        rows += list(csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030"))))
    return rows


def _lift_seizure(branch: Branch) -> None:
    """The court lifts the 查封 (解封): the cause of the refusal is gone."""
    store = branch.centre.app.state.centre.store
    store.execute(
        "UPDATE rights SET status = 'cancelled' WHERE unit_id = ? AND kind = 'seizure'",
        register.unit_id(register.SEIZED_UNIT),
    )


def test_a_refused_loan_is_applied_for_again_by_hand_as_a_new_operation(
    branch: Branch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    inbox = branch.inbox()
    drop(inbox, "one.csv", mortgage_export(inbox, {"LN-S": register.SEIZED_UNIT}))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)
        assert agent.store.application("LN-S-DYSC").stage == "rejected"  # type: ignore[union-attr]
    finally:
        agent.close()
    runner = CliRunner()
    busy = runner.invoke(cli, ["reapply", "LN-NONE", "--config", str(branch.config)])
    assert busy.exit_code == 1
    _lift_seizure(branch)
    done = runner.invoke(cli, ["reapply", "LN-S", "--config", str(branch.config)])
    assert done.exit_code == 0, done.output
    assert "LN-S-DYSC-R1" in done.output
    again = runner.invoke(cli, ["reapply", "LN-S", "--config", str(branch.config)])
    assert again.exit_code == 1  # R1 is not refused: nothing to apply for again
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)
        first, second = agent.store.application("LN-S-DYSC"), agent.store.application("LN-S-DYSC-R1")
        assert first is not None and first.stage == "rejected" and first.centre_status == "refused"
        assert second is not None and second.stage == "done" and second.idem_create != first.idem_create
    finally:
        agent.close()
    centre = branch.centre.app.state.centre.store
    refs = [r["client_reference"] for r in centre.all("SELECT client_reference FROM applications ORDER BY created_at")]
    assert refs == ["LN-S-DYSC", "LN-S-DYSC-R1"]
    status = json.loads(runner.invoke(cli, ["status", "--json", "--config", str(branch.config)]).output)
    assert status["reapplied"] == [
        {"reference": "LN-S-DYSC-R1", "loan_no": "LN-S", "reapplies": "LN-S-DYSC", "stage": "done"}
    ]
    lines = [r for r in _receipts(inbox / "receipts") if r["贷款编号"] == "LN-S"]
    events = [(r["业务编号"], r["事件"]) for r in lines]
    assert ("LN-S-DYSC", "rejected") in events and ("LN-S-DYSC-R1", "registered") in events
    linked = next(r for r in lines if r["事件"] == "reapplied")
    assert linked["业务编号"] == "LN-S-DYSC-R1"
    assert "LN-S-DYSC" in linked["原因"] and "property_seized" in linked["原因"]


def test_with_the_profile_rule_a_corrected_row_of_a_refused_loan_is_the_reapplication(
    centre: object, tmp_path: Path
) -> None:
    profile = (ROOT / "config" / "mappings" / "corebank_csv.toml").read_text(encoding="utf-8")
    profile = profile.replace("[identity]\n", "[identity]\nreapply_after_refusal = true\n", 1)
    (tmp_path / "reapplying.toml").write_text(profile, encoding="utf-8")
    inboxes = [{"name": "corebank", "path": "inbox/corebank", "profile": str(tmp_path / "reapplying.toml"),
                "completion": "rename"}]  # fmt: skip
    branch = make_branch(centre, tmp_path / "b", inboxes=inboxes)  # type: ignore[arg-type]
    inbox = branch.inbox()
    # a title number that is not the unit's: 补正 … here scripted as 不予受理 for the test's path
    branch.centre.app.state.centre.workflow.set_script(
        "LN-T-DYSC", "acceptance", {"outcome": "not_accepted", "reason": "抵押合同签署人不是抵押人"}
    )
    samples.write_materials(inbox / "materials", "LN-T", "mortgage_first")
    rows = samples.mortgage_rows("LN-T", 52, amount="150")
    drop(inbox, "first.csv", samples.corebank_csv(rows))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=30)
        assert agent.store.application("LN-T-DYSC").stage == "rejected"  # type: ignore[union-attr]
        drop(inbox, "same.csv", samples.corebank_csv(rows))  # unchanged: a duplicate, not a re-application
        assert agent.run_until_idle(timeout=30)
        assert agent.store.application("LN-T-DYSC-R1") is None
        corrected = [{**r, "贷款金额(万元)": "140"} for r in rows]
        drop(inbox, "corrected.csv", samples.corebank_csv(corrected))
        assert agent.run_until_idle(timeout=30)
        again = agent.store.application("LN-T-DYSC-R1")
        assert again is not None and again.stage == "done"
        assert again.payload["terms"]["secured_amount"] == "1400000.00"
        assert again.source[0]["reapplies"] == "LN-T-DYSC"
    finally:
        agent.close()
    # the centre's sealed 不予受理通知书 (issue 20) is stored beside the loan's documents and named in the receipts
    [line] = [r for r in _receipts(inbox / "receipts") if r["事件"] == "notice_not_accepted"]
    assert line["业务编号"] == "LN-T-DYSC" and line["状态"] == "不予受理通知书已入库" and line["文书编号"]
    assert Path(line["证书存放位置"]).is_file()
