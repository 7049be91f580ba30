"""Collateral watch (issue 24 item 4): a unit seized at the sandbox after registration reaches the loan system as a
receipt line at once where the centre pushes its sealed notice, and at the next run of the watch (one poll interval)
by query, within the request budget; each change once."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import httpx

from agent.pipeline.collateral import watch_collateral, watched_mortgages
from agent.pipeline.context import StageContext
from sandbox import register
from sandbox.local import LocalCentre

from ..conftest import drop, make_branch, mortgage_export, run_until


def _lines(folder: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(folder.glob("*.csv")):
        rows += csv.DictReader(path.read_bytes().decode("gb18030").splitlines())
    return rows


def _two_runs(ctx: StageContext) -> int:
    first = watch_collateral(ctx)
    time.sleep(0.5)
    return first + watch_collateral(ctx)


def test_a_unit_seized_after_registration_reaches_the_loan_system(tmp_path: Path) -> None:
    with LocalCentre() as centre:
        branch = make_branch(centre, tmp_path / "branch", collateral={"interval_hours": 0.0001, "max_queries": 1})
        drop(branch.inbox(), "export.csv", mortgage_export(branch.inbox(), {"CW-001": 111, "CW-002": 112}))
        agent = branch.agent()
        ctx = agent.context
        try:
            run_until(agent, lambda: len(watched_mortgages(ctx)) == 2)
            assert watch_collateral(ctx) == 0  # the first look: nothing new; one query (the budget is one)
            time.sleep(0.5)
            assert watch_collateral(ctx) == 0
            trace = centre.centre.query_trace(institution_id=branch.institution_id)
            assert len(trace) == 2 and {t["unit_id"] for t in trace} == {register.unit_id(111), register.unit_id(112)}
            token = centre.centre.create_admin_token("test")
            seized = httpx.post(
                f"{centre.url}/admin/v1/units/{register.unit_id(111)}/restrictions",
                json={"kind": "seizure", "document": "(2026)皖0121执0777号"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert seized.status_code == 201, seized.text
            # pushed: the centre's sealed 查封登记通知书 (notice.issued) reaches the loan system at once, before any
            # scheduled query
            run_until(agent, lambda: any(r["事件"] == "notice_seizure" for r in _lines(branch.inbox() / "receipts")))
            time.sleep(0.5)
            assert _two_runs(ctx) == 1  # the budget is one query a run: the two mortgages take two runs
            time.sleep(0.5)
            assert _two_runs(ctx) == 0  # reported once
            agent.run_until_idle(timeout=5)
            alerts = [a["kind"] for a in ctx.store.alerts()]
        finally:
            agent.close()
        pushed = [r for r in _lines(branch.inbox() / "receipts") if r["事件"] == "notice_seizure"]
        assert [r["贷款编号"] for r in pushed] == ["CW-001"] and pushed[0]["文书编号"]
        lines = [r for r in _lines(branch.inbox() / "receipts") if r["事件"] == "collateral"]
        assert [(r["贷款编号"], r["状态"]) for r in lines] == [("CW-001", "查封")]
        assert register.unit_id(111) in lines[0]["原因"]
        assert any(k.startswith("collateral:") and k.endswith(":seized") for k in alerts)
        assert len(centre.centre.query_trace(institution_id=branch.institution_id)) == 6
