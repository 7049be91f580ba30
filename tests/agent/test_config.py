"""What bank IT use at 2 a.m.: config with environment overrides and its reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import load_config, schema_markdown

from .conftest import Branch

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

