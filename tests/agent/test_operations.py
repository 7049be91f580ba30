"""What bank IT use at 2 a.m.: config with environment overrides, doctor's findings, metrics and health."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import load_config, schema_markdown
from agent.daemon.metrics import MetricsServer, route_of
from agent.doctor import diagnose

from .conftest import SECRET, Branch

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_the_environment_overrides_the_file_and_a_bad_value_names_its_setting(
    branch: Branch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGBRIDGE_CENTRE__TIMEOUT", "7.5")
    monkeypatch.setenv("REGBRIDGE_FEES__DAILY_CAP", "123.45")
    config = load_config(branch.config)
    assert config.centre.timeout == 7.5 and str(config.fees.daily_cap) == "123.45"
    assert config.centre.institution_id == branch.institution_id  # the rest still from the file
    monkeypatch.setenv("REGBRIDGE_CONCURRENCY", "0")
    with pytest.raises(ValueError, match=r"concurrency: Input should be greater than or equal to 1"):
        load_config(branch.config)


def test_config_show_redacts_secrets_and_names_the_overrides(branch: Branch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGBRIDGE_DOCUMENTS__SECRET_KEY", "s3-secret-value")
    monkeypatch.setenv("REGBRIDGE_CENTRE__PROXY", "http://bankuser:proxy-pass-123@proxy.bank.local:3128")
    result = runner.invoke(app, ["config", "show", "-c", str(branch.config)])
    assert result.exit_code == 0, result.output
    assert "s3-secret-value" not in result.output and "proxy-pass-123" not in result.output
    assert 'secret_key = "***"' in result.output and "http://bankuser:***@proxy.bank.local:3128" in result.output
    assert "# overridden from the environment: REGBRIDGE_CENTRE__PROXY" in result.output


def test_the_configuration_reference_in_docs_is_current() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == schema_markdown(), (
        "docs/configuration.md is stale: run `make config-doc`"
    )


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


def test_metrics_fold_ids_and_healthz_fails_when_the_work_loop_stalls(branch: Branch) -> None:
    assert route_of("/v1/applications/app_3f2a9c0b1d2e3f40/materials/m-1") == "/v1/applications/{id}/materials/m-1"
    assert route_of("/v1/events") == "/v1/events"
    agent = branch.agent()
    server = MetricsServer(agent, "127.0.0.1", 0, stale_seconds=5).start()
    try:
        agent.work()
        agent.poll()
        agent.metrics.watch(agent)
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as r:
            assert r.status == 200 and json.loads(r.read())["status"] == "ok"
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'regbridge_requests_total{code="200",method="GET",route="/v1/events"} 1.0' in text
        assert 'regbridge_request_seconds_count{method="GET",route="/v1/events"} 1.0' in text
        assert "regbridge_paused 0.0" in text and "regbridge_quarantine_open 0.0" in text
        agent.metrics.last_work = time.monotonic() - 60
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(server.url + "/healthz", timeout=5)
        assert failed.value.code == 503 and "has not run for" in json.loads(failed.value.read())["reason"]
    finally:
        server.stop()
        agent.close()
