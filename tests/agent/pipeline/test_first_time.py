"""The first-time acceptance figure (issue 24 item 3): registered without 补正 or refusal, of all decided."""

from __future__ import annotations

from agent.state.status import first_time_acceptance, snapshot

from ..conftest import Branch, drop, mortgage_export


def test_the_figure_counts_a_correction_and_a_refusal_against_first_time(branch: Branch) -> None:
    workflow = branch.centre.centre.workflow
    workflow.set_script(
        "FT-2-DYSC",
        "acceptance",
        {"outcome": "correction", "items": [
            {"reason": "申请人身份证明复印件不清晰", "pointer": "/materials", "material": "applicant_identity"}]},
    )  # fmt: skip
    workflow.set_script("FT-3-DYSC", "acceptance", {"outcome": "not_accepted", "reason": "材料不齐"})
    agent = branch.agent()
    try:
        assert first_time_acceptance(agent.store) == {"decided": 0, "registered": 0, "first_time": 0, "share": None}
        inbox = branch.inbox()
        drop(inbox, "a.csv", mortgage_export(inbox, {"FT-1": 1, "FT-2": 2, "FT-3": 3}))
        assert agent.run_until_idle(timeout=60)
        (inbox / "materials" / "FT-2_applicant_identity-2.pdf").write_bytes(b"%PDF-1.7 a clearer scan")
        assert agent.run_until_idle(timeout=60)
        statuses = {a.reference: a.centre_status for a in agent.store.applications()}
        assert statuses == {"FT-1-DYSC": "completed", "FT-2-DYSC": "completed", "FT-3-DYSC": "not_accepted"}
        figure = first_time_acceptance(agent.store)
        assert figure == {"decided": 3, "registered": 2, "first_time": 1, "share": 0.3333}
        assert snapshot(agent.store)["first_time_acceptance"] == figure
        agent.metrics.watch(agent)
        text = agent.metrics.exposition().decode()
        assert "\nregbridge_applications_registered_first_time 1.0\n" in text
        assert "\nregbridge_first_time_acceptance_ratio 0.3333\n" in text
    finally:
        agent.close()
