"""Committed time limits (承诺办结时限): from the centre's 受理 event, overdue reported once, cleared on 登簿."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app as cli
from agent.daemon import Agent
from agent.pipeline.limits import check_time_limits
from agent.state.status import snapshot
from agent.state.time_limits import accepted_at, running_limits

from ..conftest import SECRET, Branch, drop, mortgage_export

REF = "LN-LATE-DYSC"


def _run_until(agent: Agent, done: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the agent did not get there in time"
        agent.run_until_idle(timeout=0.5)


def test_the_clock_runs_from_the_latest_acceptance_and_stops_in_a_correction() -> None:
    t: list[dict[str, Any]] = [
        {"centre_status": "submitted", "at": "2026-12-01T01:00:00+00:00", "note": None},
        {
            "centre_status": "accepted",
            "at": "2026-12-02T01:00:00+00:00",
            "note": "event 3 at 2026-12-01T09:00:00+00:00",
        },
        {"centre_status": "under_review", "at": "2026-12-03T01:00:00+00:00", "note": "event 4 at x"},
    ]
    assert accepted_at(t) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the event's own time, not when it was read
    assert accepted_at([*t, {"centre_status": "correction_required", "at": "2026-12-04T01:00:00+00:00"}]) is None
    again: list[dict[str, Any]] = [*t, {"centre_status": "correction_required", "at": "2026-12-04T01:00:00+00:00"},
             {"centre_status": "submitted", "at": "2026-12-05T01:00:00+00:00"},
             {"centre_status": "accepted", "at": "2026-12-07T01:00:00+00:00"}]  # fmt: skip
    assert accepted_at(again) == datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def test_an_application_past_its_limit_is_reported_once_and_cleared_when_the_centre_records_it(branch: Branch) -> None:
    centre = branch.centre.app.state.centre
    centre.workflow.set_script(REF, "review", {"outcome": "hold"})  # accepted, then held in review
    inbox = branch.inbox()
    drop(inbox, "late.csv", mortgage_export(inbox, {"LN-LATE": 33}))
    agent = branch.agent()
    try:
        _run_until(agent, lambda: getattr(agent.store.application(REF), "centre_status", None) == "accepted")
        rows = running_limits(agent.store)
        assert [r.reference for r in rows] == [REF] and not rows[0].overdue
        row = rows[0]
        assert row.limit.working_days == 10 and row.centre == "340121"
        assert abs((row.accepted_at - datetime.now(UTC)).total_seconds()) < 60
        assert check_time_limits(agent.context) == 0  # within the limit: nothing to report
        # 25 days on (at least 10 working days, whatever the holidays): overdue
        later = datetime.now(UTC) + timedelta(days=25)
        assert check_time_limits(agent.context, now=later) == 1
        assert check_time_limits(agent.context, now=later) == 0  # reported once
        alert = next(a for a in agent.store.alerts() if a["kind"] == f"overdue:{REF}")
        assert "10 个工作日" in alert["message"] and "seed 004" in alert["message"]
        line = next(r["payload"] for r in agent.store.receipts(REF) if r["kind"] == "overdue")
        assert line["status"] == "超期" and row.due_at.date().isoformat() in line["reason"]
        agent.metrics.watch(agent)  # as the daemon does: the state gauges read at each scrape
        assert b"\nregbridge_applications_overdue 1.0\n" in agent.metrics.exposition()
        # the same acceptance, as if the centre's event had said it happened 30 days ago: status and `late` see it
        with agent.store.transaction() as db:
            old = (datetime.now(UTC) - timedelta(days=30)).isoformat()
            db.execute(
                "UPDATE transitions SET note = 'event 1 at ' || ? WHERE reference = ? AND centre_status = 'accepted'",
                (old, REF),
            )
        snap = snapshot(agent.store)
        assert [o["reference"] for o in snap["overdue"]] == [REF] and snap["time_limits_running"] == 1
        # the centre records it: the limit no longer runs, the alert clears
        centre.workflow.clear_script(REF, "review")
        centre.workflow.advance(branch.institution_id, agent.store.application(REF).application_id)  # type: ignore[union-attr]
        _run_until(agent, lambda: getattr(agent.store.application(REF), "centre_status", None) != "accepted"
                   and agent.store.application(REF).centre_status != "under_review")  # type: ignore[union-attr]  # fmt: skip
        assert check_time_limits(agent.context, now=later) == 0
        assert not [a for a in agent.store.alerts() if a["kind"].startswith("overdue:")]
        assert running_limits(agent.store) == []
    finally:
        agent.close()
    receipts = []
    for path in sorted((inbox / "receipts").glob("receipts-*.csv")):
        receipts += list(csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030"))))
    assert [r["状态"] for r in receipts if r["业务编号"] == REF and r["事件"] == "overdue"] == ["超期"]


def test_the_late_list_names_the_overdue_application_and_exits_1(
    branch: Branch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    centre = branch.centre.app.state.centre
    centre.workflow.set_script(REF, "review", {"outcome": "hold"})
    inbox = branch.inbox()
    drop(inbox, "late.csv", mortgage_export(inbox, {"LN-LATE": 33}))
    agent = branch.agent()
    try:
        _run_until(agent, lambda: getattr(agent.store.application(REF), "centre_status", None) == "accepted")
    finally:
        agent.close()
    runner = CliRunner()
    fine = runner.invoke(cli, ["late", "--all", "--json", "--config", str(branch.config)])
    assert fine.exit_code == 0, fine.output
    listed = json.loads(fine.output)
    assert listed["overdue"] == 0 and [a["reference"] for a in listed["applications"]] == [REF]
    agent = branch.agent()
    try:
        with agent.store.transaction() as db:
            db.execute(
                "UPDATE transitions SET note = 'event 1 at 2026-01-05T02:00:00+00:00' "
                "WHERE reference = ? AND centre_status = 'accepted'",
                (REF,),
            )
    finally:
        agent.close()
    late = runner.invoke(cli, ["late", "--json", "--config", str(branch.config)])
    assert late.exit_code == 1, late.output
    got = json.loads(late.output)["applications"]
    # 受理 Monday 2026-01-05 (10:00 Beijing): 10 working days end on 2026-01-19
    assert [(a["reference"], a["due"], a["overdue"]) for a in got] == [(REF, "2026-01-19", True)]
    table = runner.invoke(cli, ["late", "--config", str(branch.config)], env={"COLUMNS": "200"})
    assert table.exit_code == 1 and REF in table.output and "超期" in table.output
