"""The demo's follow-up export (agent.demo.samples.followup_rows) on a busy machine (break20): a loan whose
certificate the first pass did not bring yet gets no row, instead of the demo dying with ``KeyError: 'DEMO-008'``."""

from __future__ import annotations

from agent.demo import samples


def test_followup_rows_leave_out_loans_without_a_certificate_yet() -> None:
    assert samples.followup_rows({}) == []
    only = samples.followup_rows({"DEMO-009": "皖(2026)长丰县不动产证明第0000009号"})
    assert only and {r["贷款编号"] for r in only} == {"DEMO-009"}
    both = samples.followup_rows({"DEMO-008": "证明8", "DEMO-009": "证明9"})
    assert {r["贷款编号"] for r in both} == {"DEMO-008", "DEMO-009"}
