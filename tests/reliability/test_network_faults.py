"""Network and centre faults, injected by the sandbox (sandbox/faults.py), against the agent as its own process.

- a fifth of all requests fail — 503, 429 with Retry-After, answers held past the client's
  timeout, responses lost after the centre did the work — and everything still completes once,
  with the requests per application within the retry budget measured against a fault-free run
  on the same centre in the same test;
- the centre goes away (connection refused) for minutes while exports keep arriving: the agent
  holds its queue without hammering the port and drains it when the centre is back;
- the centre's clock is far from ours: a paused agent with an alert that says so, a few probes
  and no loop; when the clocks agree again it carries on.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from sandbox.faults import FaultRule, FaultsConfig
from sandbox.local import LocalCentre
from tests import proof
from tests.reliability.harness import (
    export_loans,
    local_counts,
    make_branch_for,
    open_alerts,
    outcome,
    run_daemon_until_done,
)

APPS = proof.size(48, 2000)
BASELINE_APPS = proof.size(10, 40)
DOWN_SECONDS = proof.size(15, 180)
FAULTED_KINDS = ("error", "rate_limit", "timeout", "drop")


def test_a_fifth_of_requests_failing_loses_and_duplicates_nothing(centre: LocalCentre, tmp_path: Path) -> None:
    started = time.monotonic()
    tally, faults = centre.app.state.requests, centre.app.state.faults
    # the same-run baseline: what the agent needs per application when nothing fails
    # a fee cap that 2,000 first mortgages' fees fit under (the cap itself is tested in tests/agent)
    branch = make_branch_for(
        centre, tmp_path / "branch", concurrency=16, fees={"auto_pay": True, "daily_cap": "100000000"}
    )
    base_loans = export_loans(branch, "BL", BASELINE_APPS)
    run_daemon_until_done(branch, len(base_loans), log=tmp_path / "baseline.stderr", timeout=300)
    assert outcome(centre, branch, base_loans).lost == 0
    per_app_clean = tally.total() / len(base_loans)

    tally.reset()
    faults.counts.update(dict.fromkeys(faults.counts, 0))
    faults.configure(
        FaultsConfig(
            seed=20261122,
            rules=[
                FaultRule(
                    endpoint="*",
                    error_rate=0.07,
                    rate_limit_rate=0.06,
                    retry_after=1,
                    timeout_rate=0.03,
                    timeout_seconds=2.5,
                    drop_after_rate=0.06,
                )
            ],
        )
    )
    loans = export_loans(branch, "NF", APPS, start=BASELINE_APPS)
    run_daemon_until_done(
        branch,
        len(base_loans) + len(loans),
        log=tmp_path / "agent.stderr",
        timeout=proof.size(400, 2400),
        REGBRIDGE_CENTRE__TIMEOUT="2",
        # bounded: an application unlucky several times in a row waits at most 10 s between tries (this caps the
        # download back-off too), not minutes: the run's length, not what is proven, depended on that tail (at
        # 30 s the last certificate alone kept the run going for two more minutes)
        REGBRIDGE_RETRY_MAX_SECONDS=str(proof.size(10, 600)),
    )
    faults.configure(FaultsConfig())

    requests = tally.total()
    injected = sum(faults.counts[k] for k in FAULTED_KINDS)
    share = injected / requests
    per_app = requests / len(loans)
    # every faulted request costs at most one more; a share f of failures needs 1/(1-f) tries per success
    budget = 1.5 * per_app_clean / (1 - share)
    result = outcome(centre, branch, base_loans + loans)
    proof.record(
        proof.Result(
            f"network: {share:.0%} of {requests} requests faulted (503, 429, timeouts, lost answers)",
            runs=1,
            applications=result.applications,
            lost=result.lost,
            duplicated=result.duplicated,
            seconds=round(time.monotonic() - started, 1),
        )
    )
    print(
        f"faults {dict(faults.counts)}; {per_app:.1f} requests/app against {per_app_clean:.1f} fault-free "
        f"(budget {budget:.1f})"
    )
    assert result.lost == 0 and result.duplicated == 0, result.explain()
    assert share >= 0.20, f"only {share:.1%} of requests were faulted"
    assert all(faults.counts[k] > 0 for k in FAULTED_KINDS), faults.counts
    assert per_app <= budget, f"{per_app:.1f} requests per application, over the retry budget {budget:.1f}"


def test_the_centre_away_for_minutes_the_queue_holds_and_drains(centre: LocalCentre, tmp_path: Path) -> None:
    started = time.monotonic()
    branch = make_branch_for(centre, tmp_path / "branch")
    loans = export_loans(branch, "DN-A", proof.size(20, 100))
    tally = centre.app.state.requests
    state: dict[str, Any] = {"phase": "up", "restarted": None}

    def outage(proc: Any, counts: Any) -> None:
        if state["phase"] == "up" and counts["done"] >= len(loans) // 2:
            centre.stop()  # connection refused from now on
            state.update(phase="down", since=time.monotonic(), before=tally.total())
            loans.extend(export_loans(branch, "DN-B", proof.size(20, 100), start=len(loans)))
        elif state["phase"] == "down" and time.monotonic() - state["since"] >= DOWN_SECONDS:
            held = local_counts(branch)
            assert held["queued"] > 0, f"the queue should hold while the centre is away: {held}"
            assert "centre_unreachable" in open_alerts(branch), open_alerts(branch)
            back = LocalCentre(store=centre.store, port=centre.port)
            back.start()
            state.update(phase="back", restarted=back, back_at=time.monotonic())

    try:
        run_daemon_until_done(branch, len(loans) + proof.size(20, 100), log=tmp_path / "agent.stderr",
                              timeout=DOWN_SECONDS + 300, during=outage)  # fmt: skip
        drained = time.monotonic() - state["back_at"]
        assert "centre_unreachable" not in open_alerts(branch)
    finally:
        if state["restarted"] is not None:
            state["restarted"].stop()
    result = outcome(state["restarted"], branch, loans)
    proof.record(
        proof.Result(
            f"centre down {DOWN_SECONDS} s (connection refused), exports still arriving",
            runs=1,
            applications=result.applications,
            lost=result.lost,
            duplicated=result.duplicated,
            seconds=round(time.monotonic() - started, 1),
        )
    )
    print(f"drained {len(loans)} applications {drained:.1f} s after the centre came back")
    assert result.lost == 0 and result.duplicated == 0, result.explain()


def test_a_skewed_clock_pauses_with_a_clear_alert_not_a_loop(centre: LocalCentre, tmp_path: Path) -> None:
    started = time.monotonic()
    branch = make_branch_for(centre, tmp_path / "branch")
    tally, faults = centre.app.state.requests, centre.app.state.faults
    faults.configure(FaultsConfig(clock_skew_seconds=900))
    loans = export_loans(branch, "SK", 6)
    window = 15.0
    state: dict[str, Any] = {"paused_at": None}

    def skewed(proc: Any, counts: Any) -> None:
        alerts = open_alerts(branch)
        if state["paused_at"] is None and "paused" in alerts:
            state.update(paused_at=time.monotonic(), requests=tally.total(), alert=alerts["paused"])
        elif (
            state["paused_at"] is not None and time.monotonic() - state["paused_at"] >= window and "spent" not in state
        ):
            state["spent"] = tally.total() - state["requests"]
            faults.configure(FaultsConfig())  # the clocks agree again

    run_daemon_until_done(branch, len(loans), log=tmp_path / "agent.stderr", timeout=180, during=skewed)
    assert state["paused_at"] is not None, "the agent never paused"
    alert = state["alert"]
    said = re.search(r"clock is (\d+) s behind", alert)  # the centre's Date header has one-second resolution
    assert said and abs(int(said.group(1)) - 900) <= 5 and "NTP" in alert, alert
    # while paused: a probe every few seconds, not a request loop
    assert state["spent"] <= window / 2, f"{state['spent']} requests in {window:g} s while the clocks disagreed"
    result = outcome(centre, branch, loans)
    proof.record(
        proof.Result(
            "centre clock 900 s ahead: paused with an alert, resumed",
            runs=1,
            applications=result.applications,
            lost=result.lost,
            duplicated=result.duplicated,
            seconds=round(time.monotonic() - started, 1),
        )
    )
    assert result.lost == 0 and result.duplicated == 0, result.explain()
