"""Two instances on a shared state in PostgreSQL (`state.url`). One instance's whole pipeline on PostgreSQL (exports
in, certificates and receipts out, nothing in the embedded store) is checked in the backup drill's PostgreSQL run
(tests/agent/state/test_backup.py), which goes through it before its backup."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from agent.cli import app
from agent.config import load_config
from agent.daemon import Agent
from agent.daemon.metrics import MetricsServer
from agent.state.status import snapshot
from sandbox.local import LocalCentre

from ..conftest import SECRET, drop, make_branch, mortgage_export

runner = CliRunner()
ENV = {"REGBRIDGE_AGENT_SECRET": SECRET.decode()}


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
        for agent in (first, second):  # the lead renewed just now (5 s) for the views below to agree on it
            agent.beat()
        shown = {i["id"]: i for i in snapshot(first.store)["instances"]}
        leader = next(i for i in shown.values() if i["leader"])
        first.metrics.watch(first)  # as the daemon does; /metrics as a scraper reads it
        server = MetricsServer(first, "127.0.0.1", 0, stale_seconds=60).start()
        try:
            with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
                text = r.read().decode()
        finally:
            server.stop()
        for i in shown.values():
            labels = f'{{host="{i["host"]}",instance="{i["id"]}"}}'
            assert f"regbridge_instance_leader{labels} {1.0 if i is leader else 0.0}" in text, text
            assert f"regbridge_instance_leases{labels} {1.0 if i is leader else 0.0}" in text
            assert (
                f"regbridge_instance_claims{labels}" in text
                and f"regbridge_instance_heartbeat_age_seconds{labels}" in text
            )
        for agent, version in ((first, "1.0-first"), (second, "1.0-second")):  # as each one's `regbridge run` notes it
            started = {"pid": 1, "version": version, "started_at": "2026-11-30T08:00:00+00:00"}
            agent.store.set_meta(agent.daemon_meta_key, json.dumps(started))
        said = runner.invoke(app, ["status", "--config", str(branch.config)], env=ENV)
        assert said.exit_code == 0, said.output
        table = said.output[said.output.index("Instances on the shared state") : said.output.index("* this host")]
        rows = {i: next(line for line in table.splitlines() if i in line) for i in shown}
        assert f"{first.instance_id} *" in rows[first.instance_id], table
        for i, row in rows.items():
            assert ("leader" in row) == shown[i]["leader"] and shown[i]["host"] in row, table
        listed = json.loads(runner.invoke(app, ["status", "--json", "--config", str(branch.config)], env=ENV).output)
        assert {i["id"]: i["leader"] for i in listed["instances"]} == {k: v["leader"] for k, v in shown.items()}
        assert listed["agent"]["version"] == "1.0-first"  # this host's daemon, not the last one started anywhere
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
