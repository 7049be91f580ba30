"""Pre-flight (issue 24 item 2): with the applicant's query authorisation on file, every row a register check can
foresee is held with its reason and never sent (the centre saw no application for it); the rest are sent."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app as cli
from agent.demo import samples
from agent.state.status import snapshot
from sandbox import register
from sandbox.local import LocalCentre

from ..conftest import SECRET, Branch, drop, make_branch

# the shipped core-banking profile maps the 查询授权书, and rows of 业务类型 登记资料查询 ask for a query (query_types)
PROFILE = (Path(__file__).parents[3] / "config" / "mappings" / "corebank_csv.toml").read_text(encoding="utf-8")
COLUMNS = samples.COREBANK_COLUMNS
STRANGER = register.owners_of(150)[0]  # owns unit 150, nothing else


def _export(inbox: Path) -> bytes:
    rows: list[dict[str, str]] = []
    rows += samples.mortgage_rows("PF-OK", 101, amount="120")
    rows += samples.mortgage_rows("PF-SEIZED", register.SEIZED_UNIT, amount="70")
    joint = samples.mortgage_rows("PF-COOWNER", 7, amount="90")  # unit 7: two co-owners; the second is not
    joint[1].update({"抵押人": STRANGER.name, "证件号码": STRANGER.id_number})
    rows += joint
    rows += [
        {**r, "抵押人": STRANGER.name, "证件号码": STRANGER.id_number}
        for r in samples.mortgage_rows("PF-NONOWNER", 102, amount="90")
    ]
    rows += samples.mortgage_rows("PF-TITLE", 3, amount="80", title=register.title_certificate(33))
    rows += samples.existing_rows("PF-GONE", "抵押注销", 4, "皖(2024)长丰县不动产证明第0009999号")
    for loan, kind in (("PF-OK", "mortgage_first"), ("PF-SEIZED", "mortgage_first"), ("PF-COOWNER", "mortgage_first"),
                       ("PF-NONOWNER", "mortgage_first"), ("PF-TITLE", "mortgage_first"),
                       ("PF-GONE", "mortgage_discharge")):  # fmt: skip
        samples.write_materials(inbox / "materials", loan, kind)
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "查询授权书编号": f"SQ-{r['贷款编号']}", "授权有效期止": "2099-12-31"})
    # two rows asking for a 登记资料查询 from the export's 业务类型 column: one answered, one authorisation expired
    for loan, until in (("PF-Q1", "2099-12-31"), ("PF-Q2", "2020-01-01")):
        row = samples.mortgage_rows(loan, 10)[0]
        writer.writerow({**row, "业务类型": "登记资料查询", "查询授权书编号": f"SQ-{loan}", "授权有效期止": until})
    return buf.getvalue().encode("gb18030")


def test_rows_a_register_check_foresees_are_held_and_never_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "query_types" in PROFILE
    profile = tmp_path / "corebank_preflight.toml"
    profile.write_text(PROFILE, encoding="utf-8")
    inboxes = [{"name": "corebank", "path": "inbox/corebank", "profile": str(profile), "completion": "rename"}]
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    with LocalCentre() as centre:
        branch: Branch = make_branch(centre, tmp_path / "branch", inboxes)
        drop(branch.inbox(), "export.csv", _export(branch.inbox()))
        agent = branch.agent()
        try:
            agent.run_until_idle(timeout=60)
            stages = {a.loan_no: a.stage for a in agent.store.applications()}
            held = {q["loan_no"]: q for q in agent.store.quarantined() if q["kind"] == "preflight"}
            assert snapshot(agent.store)["held_by_preflight"] == 5  # the refusals avoided, in status and metrics
            agent.metrics.watch(agent)
            assert "\nregbridge_applications_held_by_preflight 5.0\n" in agent.metrics.exposition().decode()
        finally:
            agent.close()
        assert stages["PF-OK"] not in ("queued", "quarantined")
        reasons = {loan: " ".join(e["expected"] for e in q["errors"]) for loan, q in held.items()}
        assert set(held) == {"PF-SEIZED", "PF-COOWNER", "PF-NONOWNER", "PF-TITLE", "PF-GONE"}, reasons
        assert "property_seized" in reasons["PF-SEIZED"] and "查封" in reasons["PF-SEIZED"]
        assert "mortgagor_not_owner" in reasons["PF-COOWNER"] and "mortgagor_not_owner" in reasons["PF-NONOWNER"]
        assert "title_certificate_mismatch" in reasons["PF-TITLE"]
        assert "mortgage_not_current" in reasons["PF-GONE"] and "0009999" in reasons["PF-GONE"]
        assert held["PF-SEIZED"]["errors"][0]["field"] == "不动产单元号"  # the export's column, for the branch
        # a check of the whole party (JSON pointer /mortgagors) names the profile's columns of the party
        assert [e["field"] for e in held["PF-NONOWNER"]["errors"]] == ["抵押人、证件号码"]
        # branch staff read the holds in Chinese: the cell is not said to be empty, no pre-flight code, no pointer
        listed = CliRunner().invoke(cli, ["quarantine", "list", "--config", str(branch.config)])
        lines = {line.split("\t")[3]: line for line in listed.output.splitlines() if line.startswith("#")}
        assert (
            "字段 抵押人、证件号码：抵押人与登记簿记载的权利人不一致（登记簿预检：提交后将不予登记）"
            in lines["PF-NONOWNER"]
        )
        assert "字段 不动产单元号：不动产已被查封，不予登记（登记簿预检：提交后将不予登记）" in lines["PF-SEIZED"]
        assert not [line for line in lines.values() if "（空）" in line or "_" in line.split("\t")[-1]], lines
        # the centre saw no application for a held row, only the pre-flight's queries
        sent = {r["client_reference"] for r in centre.centre.store.all("SELECT client_reference FROM applications")}
        assert sent == {"PF-OK-DYSC"}
        trace = centre.centre.query_trace(institution_id=branch.institution_id)
        assert {t["authorisation_reference"] for t in trace} >= {"SQ-PF-OK", "SQ-PF-SEIZED", "SQ-PF-GONE"}
        assert [t["outcome"] for t in trace if t["authorisation_reference"] == "SQ-PF-NONOWNER"] == ["refused"]
        receipts = (branch.inbox() / "receipts").glob("*.csv")
        text = "".join(p.read_bytes().decode("gb18030") for p in receipts)
        assert text.count("登记簿预检未通过，未提交") == 5
        assert (
            "/mortgagors" not in text and "抵押人、证件号码: 抵押人与登记簿记载的权利人不一致" in text
        )  # the loan system's
        queried = {r["贷款编号"]: r for r in csv.DictReader(io.StringIO(text)) if r.get("事件") == "property_query"}
        assert queried["PF-Q1"]["状态"] == "已查询" and "抵押：是（顺位 1, 2）" in queried["PF-Q1"]["原因"]
        assert queried["PF-Q2"]["状态"] == "本机拒绝查询" and "authorisation_expired" in queried["PF-Q2"]["原因"]
        expired = queried["PF-Q2"]["原因"]  # Chinese first, the code in brackets after it
        assert expired.startswith("授权书已于 2020-01-01 过期 [authorisation_expired]"), expired
        assert [t["outcome"] for t in trace if t["authorisation_reference"] == "SQ-PF-Q1"] == ["answered"]
        assert not [t for t in trace if t["authorisation_reference"] == "SQ-PF-Q2"]  # refused here, never sent
        audit = [json.loads(line) for line in (branch.root / "var" / "audit.log").read_text().splitlines()]
        assert [a["target"] for a in audit if a["action"] == "application.preflight" and a["outcome"] == "passed"] == [
            "PF-OK-DYSC"
        ]
