"""A branch with work in every state the console shows, and its console's users."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.demo import samples

from ..conftest import SECRET, Branch, drop

PASSWORDS = {"wang.admin": "admin-pass-123", "li.operator": "operator-pass-123", "zhao.viewer": "viewer-pass-123"}
ROLES = {"wang.admin": "admin", "li.operator": "operator", "zhao.viewer": "viewer"}


@pytest.fixture
def with_users(branch: Branch, monkeypatch: pytest.MonkeyPatch) -> Branch:
    """The branch's console with three users (admin, operator, viewer), added with `regbridge users add`."""
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    runner = CliRunner()
    for name, password in PASSWORDS.items():
        monkeypatch.setenv("REGBRIDGE_CONSOLE_PASSWORD", password)
        result = runner.invoke(app, ["users", "add", name, "--role", ROLES[name], "--config", str(branch.config)])
        assert result.exit_code == 0, result.output
    monkeypatch.delenv("REGBRIDGE_CONSOLE_PASSWORD")
    users = Path(branch.root / "var" / "console-users.json")
    assert oct(users.stat().st_mode & 0o777) == "0o600" and "pass-123" not in users.read_text()
    return branch


@pytest.fixture
def worked(with_users: Branch) -> Iterator[Branch]:
    """DEMO-001 registered with its certificate, DEMO-002 and DEMO-003 quarantined; three console users."""
    branch = with_users
    assert os.environ["REGBRIDGE_AGENT_SECRET"]
    agent = branch.agent()
    try:
        inbox = branch.inbox()
        samples.write_materials(inbox / "materials", "DEMO-001", "mortgage_first")
        for loan in ("DEMO-002", "DEMO-003"):
            samples.write_materials(inbox / "materials", loan, "mortgage_first", skip=("main_contract",))
        rows = (
            samples.mortgage_rows("DEMO-001", 1, amount="150")
            + samples.mortgage_rows("DEMO-002", 7, amount="98")
            + samples.mortgage_rows("DEMO-003", 9, amount="60")
        )
        drop(inbox, "a.csv", samples.corebank_csv(rows))
        assert agent.run_until_idle(timeout=60)
    finally:
        agent.close()
    yield branch
