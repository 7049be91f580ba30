"""A failing certificate download backs off in batch mode (issue 17 item 9).

Before the fix every round of ``run_until_idle`` (the agent's batch mode) tried a certificate whose
download kept failing again at once (131 attempts in 40 s in the review). Now each failing
certificate waits 2, 4, 8 … s (jittered, at most 30 s) before its next delivery attempt; the SDK's
own retries inside one attempt are unchanged.
"""

from __future__ import annotations

from agent.demo import samples
from sandbox.faults import FaultRule, FaultsConfig
from tests.agent.conftest import Branch, drop


def test_a_failing_download_is_not_retried_on_every_round(branch: Branch) -> None:
    agent = branch.agent()
    faults = branch.centre.app.state.faults
    tally = branch.centre.app.state.requests
    try:
        inbox = branch.inbox()
        samples.write_materials(inbox / "materials", "DL-001", "mortgage_first")
        drop(inbox, "a.csv", samples.corebank_csv(samples.mortgage_rows("DL-001", 1, amount="150")))
        # the download answers 429 with Retry-After: 0 — the SDK retries at once, then gives up
        faults.configure(FaultsConfig(rules=[FaultRule(endpoint="GET /v1/downloads/*", rate_limit_rate=1.0,
                                                       retry_after=0)]))  # fmt: skip
        tally.reset()
        assert not agent.run_until_idle(timeout=10), "the certificate cannot be stored while downloads fail"
        downloads = sum(n for route, n in tally.by_route().items() if "/v1/downloads/" in route)
        assert 1 <= downloads <= 30, f"{downloads} download requests in 10 s"
        faults.configure(FaultsConfig())
        assert agent.run_until_idle(timeout=60), "stored once downloads work again"
    finally:
        agent.close()
