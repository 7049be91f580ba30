"""The register's rules from the bank's side (issue 18 item 5): what the centre would refuse is held
before sending, quarantined with a Chinese reason naming the file, row, column and value.

注销 by the mortgagor alone needs an effective court or arbitration document (seed 004): the export
carries it as columns (kind, issuing body, number, effective date) and the file as a material.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from pathlib import Path

from agent.centre.filing import FilingFile, file_documents, sample_filing
from agent.demo import samples
from agent.mapping.profile import CHINA, profile_source
from sandbox import register
from sandbox.local import LocalCentre
from sandbox.samples import BANK_LICENCE_NO, resident_id

from ..conftest import Branch, drop, make_branch, mortgage_export

COURT_COLUMNS = ["申请方", "文书种类", "作出机关", "文书编号", "生效日期"]
COURT_FIELDS = """
[[fields]]
target = "court_document.kind"
column = "文书种类"
map = { "判决书" = "judgment", "裁定书" = "ruling", "调解书" = "mediation", "仲裁裁决书" = "arbitration_award" }
types = ["mortgage_discharge"]

[[fields]]
target = "court_document.issuing_body"
column = "作出机关"
types = ["mortgage_discharge"]

[[fields]]
target = "court_document.document_number"
column = "文书编号"
types = ["mortgage_discharge"]

[[fields]]
target = "court_document.effective_date"
column = "生效日期"
kind = "date"
types = ["mortgage_discharge"]
"""


def discharge_profile(folder: Path) -> Path:
    """corebank_csv with who applies for a discharge read from a column, and the court document's columns."""
    text, _ = profile_source("corebank_csv")
    constant = '[[fields]]\ntarget = "applicant_side"\nvalue = "mortgagee"\ntypes = ["mortgage_discharge"]\n'
    assert constant in text
    side = (
        '[[fields]]\ntarget = "applicant_side"\ncolumn = "申请方"\n'
        'map = { "抵押权人" = "mortgagee", "抵押人" = "mortgagor", "共同" = "joint" }\ntypes = ["mortgage_discharge"]\n'
    )
    text = text.replace(constant, side + COURT_FIELDS).replace('name = "corebank_csv"', 'name = "corebank_court"')
    path = folder / "corebank_court.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def court_csv(rows: list[dict[str, str]], columns: list[str] | None = None) -> bytes:
    """A core-banking CSV (GB18030) with extra columns (the court document's, unless ``columns`` says)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, columns or [*samples.COREBANK_COLUMNS, *COURT_COLUMNS], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("gb18030")


def _unilateral(inbox: Path, loan: str, n: int, court: dict[str, str]) -> list[dict[str, str]]:
    samples.write_materials(inbox / "materials", loan, "mortgage_discharge")
    rows = samples.existing_rows(loan, "抵押注销", n, register.seed_mortgage_certificate(n))
    owners = register.owners_of(n)
    rows[0]["电子签名"] = ";".join(f"ESIG-{loan}-{i + 1}" for i in range(len(owners)))
    for i, row in enumerate(rows):  # the mortgagors apply: each signs the 申请书 (drop() writes the signed files)
        row["电子签名文件"] = samples.esign_path(loan, i + 1)
    blank = dict.fromkeys(COURT_COLUMNS, "")
    return [{**blank, **r, "申请方": "抵押人", **court} for r in rows]


def test_a_mortgagors_discharge_without_an_effective_court_document_is_held_before_sending(
    centre: LocalCentre, tmp_path: Path
) -> None:
    profile = discharge_profile(tmp_path / "profiles")
    inbox_spec = {"name": "court", "path": "inbox/court", "profile": str(profile), "completion": "rename"}
    branch: Branch = make_branch(centre, tmp_path / "branch", [inbox_spec])
    inbox = branch.inbox("court")
    today = datetime.now(CHINA).date()
    judgment = {"文书种类": "判决书", "作出机关": "长丰县人民法院", "文书编号": "(2026)皖0121民初1234号"}
    rows = _unilateral(inbox, "LN-ZX-NONE", 15, {})
    rows += _unilateral(inbox, "LN-ZX-LATE", 25, {**judgment, "生效日期": (today + timedelta(days=3)).isoformat()})
    rows += _unilateral(inbox, "LN-ZX-OK", 45, {**judgment, "生效日期": today.isoformat()})
    drop(inbox, "discharges.csv", court_csv(rows))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=60)
        store = centre.app.state.centre.store
        sent = {r["client_reference"] for r in store.all("SELECT client_reference FROM applications")}
        assert sent == {"LN-ZX-OK-DYZX"}  # the two the centre would refuse never left the bank
        ok = agent.store.application("LN-ZX-OK-DYZX")
        assert ok is not None and ok.stage == "done", ok
        held = {q["reference"]: q for q in agent.store.quarantined()}
        none = held["LN-ZX-NONE-DYZX"]["errors"]
        assert [e["field"] for e in none] == ["申请方"] and none[0]["value"] == "抵押人"
        assert "生效法律文书" in none[0]["expected"]
        late = held["LN-ZX-LATE-DYZX"]["errors"]
        assert [e["field"] for e in late] == ["生效日期"] and "尚未生效" in late[0]["expected"]
        assert late[0]["value"] == (today + timedelta(days=3)).isoformat()
        assert all(e["file"].endswith("discharges.csv") and e["row"] == 2 + 1 for e in late)
    finally:
        agent.close()
    text = "".join(p.read_bytes().decode("gb18030") for p in (inbox / "receipts").glob("receipts-*.csv"))
    assert "尚未生效" in text and "生效法律文书" in text


# --- 银行信息备案 (seed 001 §5.2) ----------------------------------------------------------------


def test_without_the_filing_submissions_pause_until_it_is_filed_then_drain(centre: LocalCentre, tmp_path: Path) -> None:
    branch = make_branch(centre, tmp_path / "branch", filed=False)
    inbox = branch.inbox()
    drop(inbox, "first.csv", mortgage_export(inbox, {"LN-BA-1": 51, "LN-BA-2": 52}))
    agent = branch.agent()
    try:
        assert not agent.run_until_idle(timeout=3)
        assert agent.supervision.paused == "FilingRequired"
        alert = next(a for a in agent.store.alerts() if a["kind"] == "paused")
        assert "未办理银行信息备案" in alert["message"] and "regbridge filing" in alert["message"]
        store = centre.app.state.centre.store
        assert store.one("SELECT COUNT(*) AS n FROM applications")["n"] == 0  # nothing reached the centre
        stages = {r: getattr(agent.store.application(r), "stage", None) for r in ("LN-BA-1-DYSC", "LN-BA-2-DYSC")}
        assert set(stages.values()) == {"queued"}
        # filed once, with a 金融许可证 already expired: still paused, now for the expiry
        uscc = agent.config.centre.institution_uscc
        expired = [*sample_filing(uscc, BANK_LICENCE_NO)]
        expired[1] = FilingFile("financial_licence", expired[1].path, BANK_LICENCE_NO, date(2020, 12, 31))
        assert file_documents(agent.client, expired).filing_state.status == "expired"
        agent.supervision.resume("test: look again")
        assert not agent.run_until_idle(timeout=3)
        assert agent.supervision.paused == "FilingExpired"
        assert "2020-12-31" in next(a for a in agent.store.alerts() if a["kind"] == "paused")["message"]
        # the renewed licence: the agent's probe sees the filing complete, resumes, and the queue drains
        profile = file_documents(agent.client, sample_filing(uscc, BANK_LICENCE_NO))
        assert profile.filing_state.status == "complete"
        assert agent.run_until_idle(timeout=60)
        assert agent.supervision.paused is None
        assert {getattr(agent.store.application(r), "stage", None) for r in stages} == {"done"}
        sent = store.all("SELECT record FROM applications")
        assert len(sent) == 2 and all("business_licence" not in r["record"] for r in sent)
    finally:
        agent.close()


# --- the bank as 代理人 ------------------------------------------------------------------------

AGENT_FIELDS = """
[[fields]]
target = "representation.agent.name"
column = "经办人姓名"
kind = "name"

[[fields]]
target = "representation.agent.id_number"
column = "经办人证件号"
kind = "id"
"""


def test_the_bank_as_agent_goes_as_data_with_its_power_of_attorney(centre: LocalCentre, tmp_path: Path) -> None:
    text, _ = profile_source("corebank_csv")
    assert AGENT_FIELDS.strip().split("\n[[fields]]")[0] in text  # the shipped profile maps the staff member
    spec = {"name": "agent", "path": "inbox/agent", "profile": "corebank_csv", "completion": "rename"}
    branch = make_branch(centre, tmp_path / "branch", [spec])
    inbox = branch.inbox("agent")
    staff = {"经办人姓名": "李经办", "经办人证件号": resident_id(901, birth="19880808")}
    broken = staff["经办人证件号"][:-1] + ("0" if staff["经办人证件号"][-1] != "0" else "1")
    rows: list[dict[str, str]] = []
    for loan, n, who, skip in (("LN-DL-OK", 71, staff, ()), ("LN-DL-ID", 72, {**staff, "经办人证件号": broken}, ()),
                               ("LN-DL-POA", 73, staff, ("applicant_identity",))):  # fmt: skip
        samples.write_materials(inbox / "materials", loan, "mortgage_first", skip=skip)
        rows += [{**r, **who} for r in samples.mortgage_rows(loan, n, amount="150")]
    drop(inbox, "agents.csv", court_csv(rows, samples.COREBANK_COLUMNS))  # 经办人姓名, 经办人证件号 among them
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=60)
        ok = agent.store.application("LN-DL-OK-DYSC")
        assert ok is not None and ok.stage == "done"
        record = centre.app.state.centre.find_application(branch.institution_id, "LN-DL-OK-DYSC")
        rep = record.application.representation
        assert rep is not None and rep.agent.institution_uscc == agent.config.centre.institution_uscc
        assert rep.agent.operator_id == "op-001" and rep.principals == ["/mortgagors/0"]
        poa = next(m for m in record.application.materials if m.id == rep.power_of_attorney.material_id)
        assert poa.code == "applicant_identity" and poa.sha256 == rep.power_of_attorney.sha256
        held = {q["reference"]: q["errors"] for q in agent.store.quarantined()}
        bad_id = held["LN-DL-ID-DYSC"]
        assert [e["field"] for e in bad_id] == ["经办人证件号"] and broken not in bad_id[0]["value"]
        assert "*" in bad_id[0]["value"]  # masked
        no_poa = " ".join(e["expected"] for e in held["LN-DL-POA-DYSC"])
        assert "委托书" in no_poa and "LN-DL-POA_applicant_identity.pdf" in no_poa
    finally:
        agent.close()


# --- the applicant's choice of certificate delivery -------------------------------------------------

DELIVERY_FIELDS = """
[[fields]]
target = "delivery.method"
column = "领证方式"
map = { "电子" = "electronic", "邮寄" = "post", "自取" = "collection" }

[[fields]]
target = "delivery.address.recipient"
column = "收件人"
kind = "name"

[[fields]]
target = "delivery.address.phone"
column = "联系电话"

[[fields]]
target = "delivery.address.address"
column = "邮寄地址"

[[fields]]
target = "delivery.address.postcode"
column = "邮编"
"""
DELIVERY_COLUMNS = ["领证方式", "收件人", "联系电话", "邮寄地址", "邮编"]


def test_the_delivery_the_applicant_chose_reaches_the_receipt(centre: LocalCentre, tmp_path: Path) -> None:
    text, _ = profile_source("corebank_csv")
    explicit = '[[fields]]\ntarget = "delivery.method"\nvalue = "electronic"\n'
    assert explicit in text  # the shipped profile says electronic explicitly
    profile = tmp_path / "profiles" / "corebank_delivery.toml"
    profile.parent.mkdir(parents=True)
    profile.write_text(text.replace(explicit, DELIVERY_FIELDS), encoding="utf-8")
    specs = [{"name": "choice", "path": "inbox/choice", "profile": str(profile), "completion": "rename"}]
    branch = make_branch(centre, tmp_path / "branch", specs)
    inbox = branch.inbox("choice")
    post = {"领证方式": "邮寄", "收件人": "张伟", "联系电话": "13800000000", "邮寄地址": "合肥市长丰县水湖镇示例路1号",
            "邮编": "231100"}  # fmt: skip
    blank = dict.fromkeys(DELIVERY_COLUMNS, "")
    rows: list[dict[str, str]] = []
    for loan, n, choice in (("LN-YJ", 91, post), ("LN-ZQ", 92, {**blank, "领证方式": "自取"}),
                            ("LN-DZ", 93, {**blank, "领证方式": "电子"}),
                            ("LN-NOADDR", 94, {**blank, "领证方式": "邮寄"})):  # fmt: skip
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
        rows += [{**r, **choice} for r in samples.mortgage_rows(loan, n, amount="150")]
    drop(inbox, "choices.csv", court_csv(rows, [*samples.COREBANK_COLUMNS, *DELIVERY_COLUMNS]))
    agent = branch.agent()
    try:
        assert agent.run_until_idle(timeout=90)
        for ref in ("LN-YJ-DYSC", "LN-ZQ-DYSC", "LN-DZ-DYSC"):
            assert getattr(agent.store.application(ref), "stage", None) == "done", ref
        held = {q["reference"]: q["errors"] for q in agent.store.quarantined()}
        no_address = held["LN-NOADDR-DYSC"]
        assert no_address[0]["field"] == "领证方式" and "needs an address" in no_address[0]["expected"]
        mailing = centre.app.state.centre.find_application(branch.institution_id, "LN-YJ-DYSC").dispatch
        assert mailing is not None and mailing.tracking_number
    finally:
        agent.close()
    lines = [r for path in sorted((inbox / "receipts").glob("receipts-*.csv"))
             for r in csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030")))]  # fmt: skip
    registered = {r["贷款编号"]: r["领证方式"] for r in lines if r["事件"] == "registered"}
    assert registered["LN-YJ"] == f"邮寄：EMS 运单号 {mailing.tracking_number}，{mailing.posted_at:%Y-%m-%d} 寄出"
    assert registered["LN-ZQ"].startswith("窗口领取：长丰县不动产登记中心 5号窗口") and "起至" in registered["LN-ZQ"]
    assert registered["LN-DZ"] == "电子证照下载：证明已入库"
