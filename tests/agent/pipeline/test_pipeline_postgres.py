"""The whole pipeline on a shared state in PostgreSQL (`state.url`): exports in, certificates and receipts out."""

from __future__ import annotations

from pathlib import Path

from agent.state.sql import SQLStore
from sandbox.local import LocalCentre

from ..conftest import drop, make_branch, mortgage_export


def test_an_export_goes_through_to_stored_certificates_on_postgresql(
    centre: LocalCentre, tmp_path: Path, pg_url: str
) -> None:
    branch = make_branch(centre, tmp_path / "branch", state={"url": pg_url})
    agent = branch.agent()
    try:
        assert isinstance(agent.store, SQLStore) and agent.store.dialect == "postgresql"
        inbox = branch.inbox()
        drop(inbox, "a.csv", mortgage_export(inbox, {"PG-001": 1, "PG-002": 1}))
        assert agent.run_until_idle(timeout=120)
        apps = agent.store.applications()
        assert len(apps) == 2 and {a.stage for a in apps} == {"done"}, [(a.reference, a.stage) for a in apps]
        assert len(agent.store.certificates("stored")) == 2
        assert {r["reference"] for r in agent.store.receipts()} >= {a.reference for a in apps}
        assert not (agent.data_dir / "state.db").exists()  # nothing went to the embedded store
    finally:
        agent.close()
    assert len(centre.store.all("SELECT id FROM applications")) == 2
