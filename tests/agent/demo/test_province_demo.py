"""`regbridge demo --dialect province` (issue 21, "Must show"): two branches' exports to two county centres
behind one platform, end to end — one loan per branch in ``make test``, two under ``REGBRIDGE_PROOF=full``."""

from __future__ import annotations

from pathlib import Path

from agent.demo.province import run_province_demo
from tests.proof import size


def test_two_branches_reach_two_county_centres_behind_one_platform(tmp_path: Path) -> None:
    said: list[str] = []
    per_branch = size(1, 2)
    summary = run_province_demo(tmp_path / "demo", say=said.append, per_branch=per_branch)
    assert summary["problems"] == [] and summary["idle"]
    by_branch = {b["branch"]: b for b in summary["branches"]}
    assert set(by_branch) == {"长丰支行", "肥西支行"}
    for branch, district, county in (("长丰支行", "340121", "长丰县"), ("肥西支行", "340123", "肥西县")):
        apps = by_branch[branch]["applications"]
        assert len(apps) == per_branch
        for app in apps:
            assert app["stage"] == "done" and app["district"] == district  # routed by the unit's 行政区划代码
            (number,) = app["certificates"]
            assert f"{county}不动产证明第" in number  # issued by that county's centre, verified with its anchors
            (document,) = [d for d in app["documents"] if d.endswith(".pdf")]
            assert (tmp_path / "demo" / document).read_bytes().startswith(b"%PDF")
        # each branch's receipts in its own folder, naming its loans only
        assert by_branch[branch]["receipt_loans"] == sorted(a["loan_no"] for a in apps)
    assert any("SM2 keys exchanged" in line for line in said)
