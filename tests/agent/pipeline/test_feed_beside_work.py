"""The event feed runs beside the work round (its own job in the daemon) and every application moves by it.

- what the feed records while a request of the work round is on its way is newer news, and the answer to that
  request must not overwrite it (a real centre and the real feed; only the interleaving is arranged: the feed is
  read to the point the centre reached — 登簿, fee assessed — before the answer is used, as happens under load);
- when failing submissions, payments and downloads have spent the client's retry budget, the feed still gets
  its retries from the budget's reserve (``agent.centre.client.FEED_RESERVE``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Any

import pytest

import sdk
from agent.centre.client import FEED_RESERVE
from agent.centre.port import CentrePort
from agent.pipeline.context import StageContext
from agent.pipeline.fees import pay_due
from agent.pipeline.submit import submit_due
from agent.pipeline.track import poll_events, refresh_due
from sandbox.faults import FaultRule, FaultsConfig
from sdk.retries import set_testing

from ..conftest import Branch, drop, mortgage_export


class FeedMeanwhile:
    """The centre port, with the event feed read to ``until`` after each submission's answer and before it is used."""

    def __init__(self, inner: CentrePort, ctx: StageContext, until: set[str]) -> None:
        self.inner, self.ctx, self.until = inner, ctx, until
        self.seen: list[str | None] = []

    def submit(self, application_id: str, *, idempotency_key: str) -> Any:
        record = self.inner.submit(application_id, idempotency_key=idempotency_key)
        deadline = time.monotonic() + 30
        while True:
            poll_events(self.ctx)
            app = self.ctx.store.by_centre_id(application_id)
            assert app is not None
            if app.centre_status in self.until and app.fee_total is not None:
                break
            assert time.monotonic() < deadline, f"the centre did not get past {app.centre_status}"
            time.sleep(0.1)
        self.seen.append(app.centre_status)
        return record

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_status_the_feed_recorded_during_a_submission_is_kept_and_the_fee_paid_at_once(branch: Branch) -> None:
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        drop(inbox, "a.csv", mortgage_export(inbox, {"RACE-001": 1}))
        assert agent.scan() == 1
        port = FeedMeanwhile(agent.context.centre, agent.context, until={"recorded"})
        assert submit_due(replace(agent.context, centre=port)) == 1
        assert port.seen == ["recorded"]  # the centre had recorded it (登簿) before the answer was used
        (app,) = agent.store.applications()
        # was: "submitted" again, so the fee (paid only after 登簿) waited for the straggler read, 5 minutes later
        assert (app.stage, app.centre_status) == ("tracking", "recorded")
        assert pay_due(agent.context) == 1
    finally:
        agent.close()


def test_a_status_the_feed_recorded_while_a_read_of_the_application_was_on_its_way_is_kept(branch: Branch) -> None:
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        drop(inbox, "a.csv", mortgage_export(inbox, {"RACE-002": 1}))
        assert agent.scan() == 1
        ctx = agent.context
        answers: list[Any] = []

        class Late:
            """The centre's answers as they left it, delivered after the feed told what happened since."""

            def submit(self, application_id: str, *, idempotency_key: str) -> Any:
                answers.append(ctx.centre.submit(application_id, idempotency_key=idempotency_key))
                return answers[-1]

            def application(self, application_id: str) -> Any:
                deadline = time.monotonic() + 30
                while (app := agent.store.by_centre_id(application_id)) is None or app.fee_total is None:
                    assert time.monotonic() < deadline, "no fee assessed"
                    poll_events(ctx)
                    time.sleep(0.1)
                return answers[-1]  # the submission's answer (submitted), older than the feed's 登簿

            def __getattr__(self, name: str) -> Any:
                return getattr(ctx.centre, name)

        late = replace(ctx, centre=Late())
        assert submit_due(late) == 1
        (app,) = agent.store.applications()
        assert answers[-1].status.value == "submitted" and app.centre_status == "submitted"
        agent.store.flag(app.reference, "needs_refresh", 1)
        assert refresh_due(late) == 1
        (after,) = agent.store.applications()
        assert after.centre_status == "recorded"
        assert after.reference not in agent.store.flagged("needs_refresh")
        assert pay_due(ctx) == 1
    finally:
        agent.close()


def test_the_feed_keeps_flowing_when_other_traffic_spent_the_retry_budget(branch: Branch) -> None:
    agent = branch.agent()
    faults = branch.centre.app.state.faults
    budget = agent.client.retry.budget
    assert budget is not None and budget.reserve == 100 * FEED_RESERVE == 20
    set_testing(True)  # the retries' waits off, the retries themselves kept
    try:
        drop(branch.inbox(), "a.csv", mortgage_export(branch.inbox(), {"FEED-001": 1}))
        assert agent.scan() == 1 and submit_due(agent.context) == 1
        # a fifth of the feed's reads fail; everything else the agent sends fails until the budget refuses it
        rules = [FaultRule(endpoint="GET /v1/events*", error_rate=0.2), FaultRule(endpoint="*", error_rate=1.0)]
        faults.configure(FaultsConfig(seed=20261130, rules=rules))
        with pytest.raises(sdk.RetryBudgetExhausted):
            while True:
                with contextlib.suppress(sdk.ServerError):
                    agent.centre.channel_open()
        assert budget.tokens < budget.reserve + budget.retry_cost
        polled, refused, errors = 0, 0, faults.counts["error"]
        for _ in range(20):  # the other traffic goes on failing, and is refused at once; the feed is read
            with pytest.raises(sdk.RetryBudgetExhausted):
                agent.centre.channel_open()
            refused += 1
            poll_events(agent.context)
            polled += 1
        assert polled == refused == 20
        # each refused request failed once; the rest are the feed's failed reads, every one of them retried
        assert faults.counts["error"] - errors - refused > 0
        (app,) = agent.store.applications()
        assert app.centre_status not in (None, "draft", "submitted")  # its news came through the flaky feed
    finally:
        set_testing(False)
        faults.configure(FaultsConfig())
        agent.close()
