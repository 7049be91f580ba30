"""A head office's agent acting for its branches (issue 21 item 3): each branch an institution of its own
(``[branches]``: the mortgagee of its loans, its own default 经办人); each application carries the branch
it belongs to — from an export column (the profile's ``declaration.branch``) or its export folder
(``[[inbox]] branch``); its receipts go to that branch's inbox, its certificate is stored under that
branch's folder and must name that branch as mortgagee; a branch the agent does not know is quarantined
with the row, column and value named."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest

import sdk
from agent.demo import samples as demo_samples
from agent.demo.samples import COREBANK_COLUMNS, mortgage_rows, write_materials
from agent.pipeline.build import BuildContext
from sandbox import register
from sandbox import samples as sandbox_samples
from sandbox.local import LocalCentre
from tests.agent.conftest import SECRET, drop, make_branch, run_until

MAPPINGS = Path(__file__).resolve().parents[3] / "config" / "mappings"


def test_each_application_carries_its_branch_from_a_column_or_its_folder(centre: LocalCentre, tmp_path: Path) -> None:
    profile = (MAPPINGS / "corebank_csv.toml").read_text(encoding="utf-8")
    profile = profile.replace('name = "corebank_csv"', 'name = "corebank_branches"', 1)
    declaration = '[declaration]\noperator = "经办人"'
    profile = profile.replace(declaration, declaration + '\nbranch = "所属支行"')
    (tmp_path / "corebank_branches.toml").write_text(profile, encoding="utf-8")
    other_uscc = sandbox_samples.uscc("91340121MA2N00002")
    branches = {
        "营业部": {"institution_name": sandbox_samples.bank().name, "institution_uscc": sandbox_samples.BANK_USCC},
        "长丰支行": {"institution_name": "示例银行股份有限公司长丰支行", "institution_uscc": other_uscc,
                     "default_operator": "op-cf-01"},
    }  # fmt: skip
    inboxes = [
        {"name": "headoffice", "path": "inbox/headoffice", "profile": str(tmp_path / "corebank_branches.toml"),
         "completion": "rename", "branch": "营业部"},
        {"name": "changfeng", "path": "inbox/changfeng", "profile": "corebank_csv", "branch": "长丰支行"},
    ]  # fmt: skip
    branch = make_branch(centre, tmp_path / "agent", inboxes, branches=branches)
    agent = branch.agent()
    try:
        folder = branch.root / "inbox" / "headoffice"
        rows = []
        for loan, n, named in (("LN-HO-1", 41, ""), ("LN-CF-1", 42, "长丰支行"), ("LN-XX-1", 43, "不存在支行")):
            write_materials(folder / "materials", loan, "mortgage_first")
            for row in mortgage_rows(loan, n, amount="150"):
                row["所属支行"] = named
                rows.append(row)
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, [*COREBANK_COLUMNS, "所属支行"], lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        drop(folder, "loans.csv", buf.getvalue().encode("gb18030"))
        assert agent.scan() == 1
        apps = {a.loan_no: a for a in agent.store.applications()}
        ctx = agent.context
        head, changfeng = apps["LN-HO-1"], apps["LN-CF-1"]
        # no column value: the folder's branch
        assert ctx.branch_of(head) == "营业部" and head.payload["mortgagee"]["id_number"] == sandbox_samples.BANK_USCC
        assert ctx.document_key(head, "证明", ".pdf") == "营业部/LN-HO-1/证明.pdf"
        # the column's branch: its institution is the mortgagee, its operator the 经办人, its folder the documents'
        assert ctx.branch_of(changfeng) == "长丰支行"
        mortgagee = changfeng.payload["mortgagee"]
        assert (mortgagee["name"], mortgagee["id_number"]) == ("示例银行股份有限公司长丰支行", other_uscc)
        assert ctx.build_for("长丰支行").default_operator == "op-cf-01"  # the branch's 经办人 when a row names none
        assert ctx.institution_of(changfeng) == ("示例银行股份有限公司长丰支行", other_uscc)
        assert ctx.document_key(changfeng, "证明", ".pdf").startswith("长丰支行/LN-CF-1/")
        # receipts go to each branch's loan system: the head office's folder, and 长丰支行's own inbox
        assert (ctx.receipts_inbox(head), ctx.receipts_inbox(changfeng)) == ("headoffice", "changfeng")

        def receipted() -> set[tuple[str, str]]:
            return {(r["reference"], r["inbox"]) for r in agent.store.receipts()}

        # 营业部's goes through; the centre refuses 长丰支行's (its institution is not the one enrolled here)
        run_until(agent, lambda: {head.reference, changfeng.reference} <= {ref for ref, _ in receipted()})
        by_inbox = receipted()
        assert (head.reference, "headoffice") in by_inbox and (changfeng.reference, "changfeng") in by_inbox
        assert not any(ref == changfeng.reference and inbox == "headoffice" for ref, inbox in by_inbox)
        # a branch the agent does not act for: the row is quarantined, naming the column and the value
        assert "LN-XX-1" not in apps
        (item,) = [q for q in agent.store.quarantined() if q.get("loan_no") == "LN-XX-1"]
        (error,) = [e for e in item["errors"] if e["field"] == "所属支行"]
        assert error["value"] == "不存在支行" and "[branches]" in error["expected"]
        assert isinstance(ctx.build_for("营业部"), BuildContext) and ctx.build_for(None) is ctx.build
    finally:
        agent.close()


def test_several_direct_centres_each_for_its_districts(
    centre: LocalCentre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second centre reached directly (`regbridge enroll BUNDLE --district 340123`: its own key in the agent's key
    store, its own anchors, `[centres."340123"]`): each loan goes to the centre of its unit's 行政区划代码 — 肥西县's
    to that centre, 长丰县's to `[centre]` — and comes back certified, verified against its own centre's anchors;
    `regbridge doctor` checks the second centre too. The config without `[centres]` is as before."""
    from typer.testing import CliRunner

    from agent.cli import app
    from agent.config import load_config
    from installer.doctor import diagnose

    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    branch = make_branch(centre, tmp_path / "agent")
    assert load_config(branch.config).centres == {}
    with LocalCentre(county=register.FEIXI) as feixi:
        _, bundle = feixi.bank()
        (tmp_path / "feixi.json").write_text(json.dumps(bundle), encoding="utf-8")
        enrolled = CliRunner().invoke(app, ["enroll", str(tmp_path / "feixi.json"), "--dir", str(branch.root),
                                            "--district", "340123"])  # fmt: skip
        assert enrolled.exit_code == 0, enrolled.output
        config = load_config(branch.config)
        assert set(config.centres) == {"340123"} and config.centres["340123"].url == feixi.url
        assert config.centres["340123"].key_id != config.centre.key_id  # its own credential
        found = {f.check: f for f in diagnose(branch.config)}
        assert found["centre 340123"].status == "ok", found["centre 340123"]
        inbox = branch.inbox()
        rows = []
        for loan, n, county in (("LN-CF-1", 61, register.CHANGFENG), ("LN-FX-1", 62, register.FEIXI)):
            write_materials(inbox / "materials", loan, "mortgage_first")
            rows += mortgage_rows(loan, n, amount="150", county=county)
        demo_samples.write_esignatures(inbox, demo_samples.corebank_signers(rows), keep=True)
        drop(inbox, "loans.csv", demo_samples.corebank_csv(rows))
        agent = branch.agent()
        try:
            # 肥西县's through its own centre's event feed (read with [centre]'s under one cursor)
            run_until(agent, lambda: sorted(a.stage for a in agent.store.applications()) == ["done", "done"])
            at = {a.loan_no: a.application_id for a in agent.store.applications()}
            for loan, local in (("LN-CF-1", centre), ("LN-FX-1", feixi)):
                assert local.store.one("SELECT 1 FROM applications WHERE id = ?", at[loan]) is not None, loan
            certificates = {c["reference"]: c for c in agent.store.certificates()}
            numbers = {a.loan_no: certificates[a.reference]["certificate_number"] for a in agent.store.applications()}
            assert "肥西县" in numbers["LN-FX-1"] and "长丰县" in numbers["LN-CF-1"]
        finally:
            agent.close()
    # 肥西县's centre away, [centre] answering: the outage is 肥西县's, named once; [centre]'s answers let the
    # queue go on without ending it and beginning it again at every request (an alert and two audit records each)
    agent = branch.agent()
    try:
        away = agent.centre.directs["340123"]  # type: ignore[attr-defined]
        away.client.retry = dataclasses.replace(away.client.retry, sleep=lambda _: None)  # no waits between tries
        for _ in range(2):
            with pytest.raises(sdk.TransportError):
                away.application(at["LN-FX-1"])
            assert agent.centre.direct.application(at["LN-CF-1"]).application_id == at["LN-CF-1"]  # type: ignore[attr-defined]
        (alert,) = [a for a in agent.store.alerts() if a["kind"] == "centre_unreachable"]
        assert feixi.url.rstrip("/") in alert["message"] and not agent.supervision.holding
        actions = [
            json.loads(line)["action"] for line in (branch.root / "var" / "audit.log").read_text("utf-8").splitlines()
        ]
        assert actions.count("centre.unreachable") == 1 and actions.count("centre.reachable") == 0
    finally:
        agent.close()
