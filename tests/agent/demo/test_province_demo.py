"""`regbridge demo --dialect province` (issue 21, "Must show"): two branches' exports to two county centres
behind one platform, end to end — one loan per branch in ``make test``, two under ``REGBRIDGE_PROOF=full``.
The agent is built from its ``agent.toml`` alone (``[platform]`` written by the platform enrolment), so the
demo is the install path; a 查封 the platform pushes reaches each branch's loan system as a receipt line."""

from __future__ import annotations

from pathlib import Path

from agent.config import load_config
from agent.demo.province import run_province_demo
from tests.proof import size


def test_two_branches_reach_two_county_centres_behind_one_platform(tmp_path: Path) -> None:
    said: list[str] = []
    per_branch = size(1, 2)
    summary = run_province_demo(tmp_path / "demo", say=said.append, per_branch=per_branch)
    assert summary["problems"] == [] and summary["idle"]
    # `regbridge doctor` checks the platform: keys, the county centres' anchors, a signed call, the notify URL
    assert summary["doctor"] == {"platform trust": "ok", "platform": "ok", "platform notify": "ok"}
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
            assert document.startswith(f"documents/{branch}/{app['loan_no']}/")  # certificates stored per branch
        # each branch's receipts in its own folder, naming its loans only
        assert by_branch[branch]["receipt_loans"] == sorted(a["loan_no"] for a in apps)
        # the platform's 查封 on the branch's first mortgaged unit: a receipt line in that branch's folder only
        assert by_branch[branch]["seizures"] == [apps[0]["loan_no"]]
        # and an alert in `regbridge status` (and the console) that names the branch whose loan it is
        assert by_branch[branch]["seizure_alerts"] == [apps[0]["loan_no"]]
    # each branch its own institution at the centres, with its own 经办人 (the platform lists them per branch)
    assert by_branch["长丰支行"]["operators"] == ["cf-001", "cf-002"]
    assert by_branch["肥西支行"]["operators"] == ["fx-001", "fx-002"]
    # 长丰支行's row naming 肥西支行's 经办人: held at the agent (长丰支行's own list), and when sent anyway through the
    # port refused by the county centre (filed by 长丰支行's institution) before 受理, nothing filed; an application
    # of a branch the head office was not registered for is refused by the platform
    assert summary["cross_branch"] == {
        "loan_no": "CF-X01", "held": ["经办人 fx-001 不是本行在登记中心的有效账号（长丰支行）"],
        "refused": ["operator_not_authorised"], "filed": 0, "unregistered": "platform_4030",
    }  # fmt: skip
    assert any("held by the agent" in line for line in said)
    # a 登记资料查询 through the platform, verified against the county centre that answered, its 查询结果 stored
    assert summary["query"]["outcome"] == "answered"
    assert summary["query"]["document"].startswith("documents/肥西支行/FX-001/")  # beside the branch's certificates
    config = load_config(tmp_path / "demo" / "agent.toml")
    assert config.platform is not None and set(config.platform.centres) == {"340121", "340123"}
    assert config.platform.notify.public_url and {i.branch for i in config.inbox} == {"长丰支行", "肥西支行"}
    assert "PRIVATE" not in (tmp_path / "demo" / "agent.toml").read_text(encoding="utf-8")
    assert any("SM2 keys exchanged" in line for line in said)
