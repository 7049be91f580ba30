"""The whole pipeline on a shared state in PostgreSQL (`state.url`): exports in, certificates and receipts out."""

from __future__ import annotations

import time
from pathlib import Path

from agent.config import load_config
from agent.daemon import Agent
from agent.state.sql import SQLStore
from agent.state.status import snapshot
from sandbox.local import LocalCentre

from ..conftest import SECRET, drop, make_branch, mortgage_export


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


def test_two_instances_share_one_state_one_reads_the_feed_and_the_other_takes_over(
    centre: LocalCentre, tmp_path: Path, pg_url: str
) -> None:
    settings = {"url": pg_url, "blobs_dir": str(tmp_path / "shared-blobs"), "leader_seconds": 5.0}
    branch = make_branch(centre, tmp_path / "branch", state=settings)
    first = branch.agent()
    config = load_config(branch.config)
    second = Agent(config.model_copy(update={"data_dir": tmp_path / "host-b"}), secret=SECRET)
    try:
        assert first.instance_id != second.instance_id
        assert first.beat() and not second.beat()  # one leader
        inbox = branch.inbox()
        drop(inbox, "a.csv", mortgage_export(inbox, {"HO-001": 1, "HO-002": 1, "HO-003": 1}))
        assert first.scan() + second.scan() == 1  # both see the export; one claims it
        assert len(first.store.files()) == 1 and len(second.store.applications()) == 3  # one key: both read it
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and {a.stage for a in first.store.applications()} != {"done"}:
            for agent in (second, first):  # the follower submits and delivers too; only the leader reads the feed
                agent.work()
                agent.poll()
            time.sleep(0.2)
        apps = first.store.applications()
        assert {a.stage for a in apps} == {"done"}, [(a.reference, a.stage) for a in apps]
        assert len(first.store.certificates("stored")) == 3
        shown = {i["id"]: i for i in snapshot(first.store)["instances"]}
        assert set(shown) == {first.instance_id, second.instance_id}
        assert [i["leader"] for i in shown.values()].count(True) == 1  # one leader at a time
        assert all(i["host"] for i in shown.values())
        first.metrics.watch(first)  # as the daemon does
        assert 'regbridge_instance_leader{host="' in first.metrics.exposition().decode()
        until = time.monotonic() + 15  # (under load the lead may have passed to the other; let it come back)
        while not first.beat() and time.monotonic() < until:
            time.sleep(0.5)
        assert first.store.lease_holder("leader") == first.instance_id and not second.beat()
    finally:
        first.close()  # a clean stop gives the lead up
    try:
        assert second.beat(), "the other instance takes the feed over at once after a clean stop"
    finally:
        second.close()
    assert len(centre.store.all("SELECT id FROM applications")) == 3  # nothing sent twice
