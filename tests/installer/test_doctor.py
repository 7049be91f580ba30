"""`regbridge doctor`: green on a fresh branch, and each problem named with its fix."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import load_config
from installer.doctor import diagnose
from tests.agent.conftest import SECRET, Branch

runner = CliRunner()


def test_doctor_is_green_on_a_fresh_branch_and_names_each_problem_with_a_fix(
    branch: Branch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    assert {f.check: f.status for f in diagnose(branch.config) if f.status != "ok"} == {}

    key_file = next((branch.root / "keys").glob("*.key"))
    key_file.chmod(0o644)
    (branch.root / "inbox" / "presale").rmdir()
    centre = branch.centre.centre
    problems = {f.check: f for f in diagnose(branch.config) if f.status == "fail"}
    assert set(problems) == {"key", "folders"}
    assert problems["key"].hint == f"chmod 600 {key_file}"
    assert "inbox presale" in problems["folders"].detail and problems["folders"].hint.startswith("mkdir -p")
    key_file.chmod(0o600)
    (branch.root / "inbox" / "presale").mkdir()

    centre.revoke(None, load_config(branch.config).centre.key_id, "test")
    problems = {f.check: f for f in diagnose(branch.config) if f.status == "fail"}
    assert set(problems) == {"credential"} and "refuses our key" in problems["credential"].detail

    monkeypatch.setenv("REGBRIDGE_CENTRE__URL", "http://127.0.0.1:9")
    result = runner.invoke(app, ["doctor", "--json", "-c", str(branch.config)])
    assert result.exit_code == 1
    findings = {f["check"]: f for f in json.loads(result.output)}
    assert findings["connectivity"]["status"] == "fail" and findings["connectivity"]["hint"]
    monkeypatch.setenv("REGBRIDGE_CENTRE__URL", "http://centre.example.cn")
    findings = {f.check: f for f in diagnose(branch.config)}
    assert findings["tls"].status == "fail" and "https://" in findings["tls"].hint

