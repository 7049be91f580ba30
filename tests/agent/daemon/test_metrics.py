"""The metrics endpoint: ids folded out of routes, and /healthz failing when the work loop stalls."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from agent.daemon import run_daemon
from agent.daemon.metrics import MetricsServer, route_of
from agent.state.status import ALERT_FIXES

from ..conftest import Branch

runner = CliRunner()


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



def test_a_second_instance_on_the_metrics_port_runs_without_it_and_says_which_port(
    branch: Branch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two agents on one host with the same ``[metrics] port``: the second does not die (nor print a traceback);
    it runs without /metrics and raises a ``metrics`` alert naming the port and the fix (its own port, or 0)."""
    with socket.socket() as first:  # the first instance's endpoint
        first.bind(("127.0.0.1", 0))
        first.listen()
        port = first.getsockname()[1]
        monkeypatch.setenv("REGBRIDGE_METRICS__PORT", str(port))
        agent = branch.agent()
        stop = threading.Event()
        daemon = threading.Thread(target=run_daemon, args=(agent,), kwargs={"stop": stop, "install_signals": False})
        daemon.start()
        try:
            deadline = time.monotonic() + 30
            while not (alerts := [a for a in agent.store.alerts() if a["kind"] == "metrics"]):
                assert daemon.is_alive() and time.monotonic() < deadline, "the daemon runs on and raises the alert"
                time.sleep(0.05)
            assert daemon.is_alive()
        finally:
            stop.set()
            daemon.join(timeout=30)
    [alert] = alerts
    assert f"127.0.0.1:{port}" in alert["message"] and "its own [metrics] port, or 0" in alert["message"], alert
    assert "another agent instance on this host" in ALERT_FIXES["metrics"]
