"""Moving a branch's SQLite state to PostgreSQL (``regbridge state migrate --to``; docs/state.md).

A branch works on its embedded SQLite state (two loans to stored certificates, one quarantined row), then
its state moves to a real PostgreSQL: refused while the agent runs and into a database that is not empty
(nothing changed either time), then copied, every table's row count equal on both sides, ``state.url`` set
in the config. The agent opens on PostgreSQL with the same data key (the payloads open), and goes on: a
new export is ingested, sent and finished (new rows past the copied ids), nothing sent twice.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from agent.cli import app
from agent.config import load_config
from agent.demo import samples
from agent.state.sql import SQLStore
from sandbox.local import LocalCentre
from tests.agent.conftest import drop, make_branch
from tests.postgres import PostgresServer
from tests.reliability.harness import outcome, units

runner = CliRunner()


def _export(inbox: Path, name: str, loans: list[str], start: int, *, bad: bool = False) -> None:
    rows: list[dict[str, str]] = []
    for loan, unit in zip(loans, units(len(loans), start), strict=True):
        samples.write_materials(inbox / "materials", loan, "mortgage_first")
        rows += samples.mortgage_rows(loan, unit, amount="100")
    if bad:  # one row the loan system got wrong: quarantined, and moved with the rest
        rows.append({**rows[-1], "贷款编号": f"BK-BAD-{name[0]}", "贷款金额(万元)": "not-a-number"})
    drop(inbox, name, samples.corebank_csv(rows))


def _counts(url: str) -> dict[str, int]:
    """Rows per table of the state at ``url``."""
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as db:
            return {
                name: int(db.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for name, table in meta.tables.items()
                if name != "alembic_version"
            }
    finally:
        engine.dispose()


def test_a_sqlite_state_moves_to_postgresql_and_goes_on(
    centre: LocalCentre, tmp_path: Path, postgres: PostgresServer, pg_url: str
) -> None:
    branch = make_branch(centre, tmp_path / "branch", rescan_seconds=1.0, max_poll_seconds=1.0)
    inbox = branch.inbox()
    before = ["BK-M1", "BK-M2"]
    agent = branch.agent()
    try:
        _export(inbox, "before.csv", before, 50, bad=True)
        assert agent.run_until_idle(timeout=120)
        assert len(agent.store.quarantined()) == 1
        agent.lock_instance()  # the agent runs: the move is refused
        busy = runner.invoke(app, ["state", "migrate", "--to", pg_url, "--config", str(branch.config)])
        assert busy.exit_code == 1 and "stop it first" in busy.output, busy.output
    finally:
        agent.close()  # releases the lock
    db = branch.root / "var" / "state.db"
    with sqlite3.connect(db) as con:
        quarantine_ids = [r[0] for r in con.execute("SELECT id FROM quarantine")]

    full = postgres.new_database()
    other = SQLStore(full)
    other.set_meta("someone", "else")  # not empty: a move never merges two states
    other.close()
    refused = runner.invoke(app, ["state", "migrate", "--to", full, "--config", str(branch.config)])
    assert refused.exit_code == 1 and "not empty: meta (1 rows)" in refused.output, refused.output
    assert db.exists() and load_config(branch.config).state.url is None

    here = _counts(f"sqlite:///{db}")
    # a password in --to (the test server trusts loopback and ignores it) is never written to agent.toml nor
    # printed: it comes from PGPASSFILE (docs/state.md)
    password = "Hunter2-pw-7f3a"
    with_password = sa.make_url(pg_url).set(password=password).render_as_string(hide_password=False)
    assert password in with_password
    moved = runner.invoke(app, ["state", "migrate", "--to", with_password, "--config", str(branch.config)])
    assert moved.exit_code == 0 and "迁移完成" in moved.output, moved.output
    assert password not in branch.config.read_text(encoding="utf-8") and password not in moved.output
    assert "PGPASSFILE" in moved.output
    log = load_config(branch.config).log_file
    assert not log.exists() or password not in log.read_text(encoding="utf-8")
    assert load_config(branch.config).state.url == pg_url
    assert not db.exists() and list(db.parent.glob("state.db.moved-*"))
    there = _counts(pg_url)
    there["meta"] -= 1  # the data key's salt, now kept in the shared state
    assert here == there and here["applications"] == 2 and here["transitions"] > 0, (here, there)

    agent = branch.agent()
    try:
        assert agent.store.get_meta("cipher_salt") == (branch.root / "var" / "cipher.salt").read_bytes().hex()
        for loan in before:  # sealed under the same data key: the payload opens on PostgreSQL
            row = agent.store.application(f"{loan}-DYSC")
            assert row is not None and row.stage == "done" and row.loan_no == loan and row.payload
        assert [q["id"] for q in agent.store.quarantined()] == quarantine_ids
        _export(inbox, "after.csv", ["BK-M3"], 52, bad=True)
        assert agent.run_until_idle(timeout=120)
        stages = {r.reference: r.stage for r in agent.store.applications()}
        assert set(stages.values()) == {"done"} and len(stages) == 3
        assert len(agent.store.quarantined()) == 2  # new ids after the copied ones
    finally:
        agent.close()
    result = outcome(centre, branch, [*before, "BK-M3"], stages=stages)
    assert result.lost == 0 and result.duplicated == 0, result.explain()
