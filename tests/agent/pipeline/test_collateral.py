"""Collateral watch (issue 24 item 4): a unit seized at the sandbox after registration reaches the loan system as a
receipt line at once where the centre pushes its sealed notice, and at the next run of the watch (one poll interval)
by query, within the request budget; each (unit, restriction, event) once, whichever path saw it first."""

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


def stored(centre: LocalCentre, ctx: StageContext, kind: str) -> int:
    """How many of the centre's ``kind`` notices this agent has stored (or quarantined)."""
    rows = centre.centre.store.all("SELECT id FROM notices WHERE kind = ?", kind)
    return sum(ctx.store.get_meta(f"notice:{r['id']}") is not None for r in rows)


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
            admin = {"Authorization": f"Bearer {token}"}

            def seize(number: int) -> str:
                seized = httpx.post(
                    f"{centre.url}/admin/v1/units/{register.unit_id(number)}/restrictions",
                    json={"kind": "seizure", "document": f"(2026)皖0121执0{number}号"},
                    headers=admin,
                )
                assert seized.status_code == 201, seized.text
                return str(seized.json()["right_id"])

            seize(111)
            # pushed: the centre's sealed 查封登记通知书 (notice.issued) reaches the loan system at once, before any
            # scheduled query; the watch then finds the same seizure and reports nothing more
            run_until(agent, lambda: any(r["事件"] == "notice_seizure" for r in _lines(branch.inbox() / "receipts")))
            time.sleep(0.5)
            assert _two_runs(ctx) == 0  # the budget is one query a run: the two mortgages take two runs
            # found by the watch first (its query before the agent read the centre's events): the pushed notice
            # arriving after it is stored and reports nothing more
            right = seize(112)
            time.sleep(0.5)
            assert _two_runs(ctx) == 1
            run_until(agent, lambda: stored(centre, ctx, "seizure") == 2)
            # lifted (pushed first this time): the 解封 is one line too, and clears the alert
            assert httpx.delete(f"{centre.url}/admin/v1/restrictions/{right}", headers=admin).status_code == 204
            run_until(agent, lambda: stored(centre, ctx, "seizure_release") == 1)
            alerts_before = [a["kind"] for a in ctx.store.alerts()]
            time.sleep(0.5)
            assert _two_runs(ctx) == 0  # reported once
            agent.run_until_idle(timeout=5)
            alerts = [a["kind"] for a in ctx.store.alerts()]
        finally:
            agent.close()
        lines = _lines(branch.inbox() / "receipts")
        kinds = ("collateral", "notice_seizure", "notice_seizure_release")
        about = [(r["贷款编号"], r["事件"], r["状态"]) for r in lines if r["事件"] in kinds]
        # each (unit, seizure, event) reaches the loan system exactly once: pushed or queried, whichever came first
        assert sorted(about) == [
            ("CW-001", "notice_seizure", "查封登记通知书已入库"),
            ("CW-002", "collateral", "查封"),
            ("CW-002", "notice_seizure_release", "解封登记通知书已入库"),
        ]
        pushed = next(r for r in lines if r["事件"] == "notice_seizure")
        assert pushed["文书编号"] and register.unit_id(111) in pushed["原因"]
        queried = next(r for r in lines if r["事件"] == "collateral")
        assert register.unit_id(112) in queried["原因"]
        # the seizure still on CW-001's unit keeps its alert; CW-002's went with its 解封
        assert [k for k in alerts if k.endswith(":seized")] == [k for k in alerts_before if k.endswith(":seized")]
        assert len([k for k in alerts if k.startswith("collateral:") and k.endswith(":seized")]) == 1
        # every query of the watch is in the centre's trace
        assert len(centre.centre.query_trace(institution_id=branch.institution_id)) >= 8
