"""A head office's agent acting for its branches (issue 21 item 3): each branch an institution of its own
(``[branches]``: the mortgagee of its loans, its own default 经办人); each application carries the branch
it belongs to — from an export column (the profile's ``declaration.branch``) or its export folder
(``[[inbox]] branch``); its receipts go to that branch's inbox, its certificate is stored under that
branch's folder and must name that branch as mortgagee; a branch the agent does not know is quarantined
with the row, column and value named."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from agent.demo.samples import COREBANK_COLUMNS, mortgage_rows, write_materials
from agent.pipeline.build import BuildContext
from sandbox import samples as sandbox_samples
from sandbox.local import LocalCentre
from tests.agent.conftest import drop, make_branch, run_until

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
