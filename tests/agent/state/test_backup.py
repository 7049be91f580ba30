"""The backup/restore drill (issue 22 item 4, docs/state.md): a backup, then exports ingested and applications
submitted after it, then a restore to it — nothing lost, nothing sent twice, no receipt line twice.

Before the backup: export A goes all the way through; export C is only ingested (queued). After it: C is
submitted and B ingested and submitted, both to stored certificates and receipts. Then the state is
restored to the backup with ``regbridge restore``: B is ingested again from the recovery journal, every
application of C and B is re-adopted from the centre by its client reference (never created again), the
receipt lines written after the backup are known as delivered; the agent then finishes. The centre holds
one application per loan, the document store one copy of each certificate, the receipts each line once;
a later backup empties the recovery journal.

The drill runs on both state stores: the embedded SQLite file (SQLite's online backup API) and a real
PostgreSQL (``pg_dump -Fc`` / ``pg_restore``, the server's own version: tests/postgres.py).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import load_config
from agent.demo import samples
from agent.state.backup import BackupError, RecoveryJournal, _pg_tool, recovery_dir
from agent.state.sql import SQLStore
from sandbox.local import LocalCentre
from tests.agent.conftest import SECRET, drop, make_branch
from tests.postgres import PostgresServer
from tests.reliability.harness import outcome, units

runner = CliRunner()


def _export(inbox: Path, name: str, loans: list[str], start: int) -> None:
    rows: list[dict[str, str]] = []
    for loan, unit in zip(loans, units(len(loans), start), strict=True):
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
        rows += samples.mortgage_rows(loan, unit, amount="100")
    drop(inbox, name, samples.corebank_csv(rows))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_restore_to_a_backup_loses_nothing_and_sends_nothing_twice(
    centre: LocalCentre, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    state = {"url": request.getfixturevalue("pg_url")} if backend == "postgresql" else {}
    branch = make_branch(centre, tmp_path / "branch", rescan_seconds=1.0, max_poll_seconds=1.0, state=state)
    inbox = branch.inbox()
    a, c, b = ["BK-A1", "BK-A2"], ["BK-C1"], ["BK-B1", "BK-B2"]
    agent = branch.agent()
    try:
        _export(inbox, "a.csv", a, 40)
        assert agent.run_until_idle(timeout=120)
        apps = agent.store.applications()  # the whole pipeline, on either store: certificates and receipts out
        assert len(apps) == 2 and {x.stage for x in apps} == {"done"}, [(x.reference, x.stage) for x in apps]
        assert len(agent.store.certificates("stored")) == 2
        assert {r["reference"] for r in agent.store.receipts()} >= {x.reference for x in apps}
        if backend == "postgresql":
            assert isinstance(agent.store, SQLStore) and agent.store.dialect == "postgresql"
            assert not (agent.data_dir / "state.db").exists()  # nothing went to the embedded store
        assert len(centre.store.all("SELECT id FROM applications")) == 2
        _export(inbox, "c.csv", c, 42)
        assert agent.scan() == 1  # ingested, not sent: it is sent after the backup
    finally:
        agent.close()
    taken = runner.invoke(app, ["backup", "--config", str(branch.config), "--out", str(tmp_path / "backup-1")])
    assert taken.exit_code == 0, taken.output
    dump = "state.db" if backend == "sqlite" else "state.pgdump"
    assert (tmp_path / "backup-1" / dump).exists() and (tmp_path / "backup-1" / "audit.log").exists()
    assert any((tmp_path / "backup-1" / "keys").iterdir())  # the key file, encrypted as kept
    config = load_config(branch.config)
    journal = RecoveryJournal(recovery_dir(config))
    assert journal.exports() == [] and journal.receipts() == []  # the backup covers everything so far

    agent = branch.agent()
    try:
        _export(inbox, "b.csv", b, 43)
        assert agent.run_until_idle(timeout=120)
        after = {r.reference: r.application_id for r in agent.store.applications()}
    finally:
        agent.close()
    assert [e["name"] for e in journal.exports()] == ["b.csv"]  # kept outside the state until a backup covers it
    assert {r["reference"] for r in journal.receipts()} >= {f"{loan}-DYSC" for loan in b + c}

    env = {"REGBRIDGE_AGENT_SECRET": SECRET.decode()}
    restored = runner.invoke(app, ["restore", str(tmp_path / "backup-1"), "--config", str(branch.config)], env=env)
    assert restored.exit_code == 0, restored.output
    assert "1 export(s) ingested again, 3 application(s) re-adopted" in restored.output, restored.output
    agent = branch.agent()
    try:
        for loan in b + c:  # re-adopted: the centre's application, not a new one
            app_row = agent.store.application(f"{loan}-DYSC")
            assert app_row is not None and app_row.application_id == after[f"{loan}-DYSC"]
        assert agent.run_until_idle(timeout=120)
        stages = {r.reference: r.stage for r in agent.store.applications()}
        assert set(stages.values()) == {"done"}
    finally:
        agent.close()
    result = outcome(centre, branch, a + c + b, stages=stages)
    stored = sorted(str(p.relative_to(branch.root)) for p in (branch.root / "documents").rglob("*") if p.is_file())
    assert result.lost == 0 and result.duplicated == 0, f"{result.explain()}; {stored}"
    assert len(centre.store.all(
        "SELECT id FROM applications WHERE institution_id = ?", branch.institution_id)) == 5  # fmt: skip

    again = runner.invoke(app, ["backup", "--config", str(branch.config), "--out", str(tmp_path / "backup-2")])
    assert again.exit_code == 0, again.output
    assert journal.exports() == [] and journal.receipts() == []


def test_pg_dump_and_pg_restore_are_the_servers_version(postgres: PostgresServer, pg_url: str) -> None:
    """Debian keeps each version's binaries under /usr/lib/postgresql/<major>/bin, not on PATH: the backup
    takes the server's own major version (pg_dump refuses a server newer than itself)."""
    major = int(postgres.psql("SHOW server_version_num")) // 10000
    for tool in ("pg_dump", "pg_restore"):
        path = Path(_pg_tool(tool, pg_url))
        assert path.name == tool and path.parent.parent.name == str(major)
    with pytest.raises(BackupError, match="cannot reach the PostgreSQL state"):
        _pg_tool("pg_dump", f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
