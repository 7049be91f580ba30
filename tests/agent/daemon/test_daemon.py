"""The daemon's jobs: an event starts the work at once, a kick during a round is not lost, a stop never hangs."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from agent.daemon import run_daemon
from agent.daemon.scheduler import _Kickable

from ..conftest import Branch


def _scheduler_with(job_fn: object, stop: threading.Event) -> tuple[BackgroundScheduler, _Kickable]:
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
    job = _Kickable(scheduler, "job", job_fn, stop)
    # an interval far longer than the test: every run after the first is a kick's
    scheduler.add_job(job, "interval", seconds=3600, id="job", next_run_time=datetime.now() + timedelta(hours=1))
    scheduler.start()
    return scheduler, job


def test_a_kick_runs_an_idle_job_at_once() -> None:
    ran = threading.Event()
    calls: list[int] = []
    stop = threading.Event()

    def fn() -> None:
        calls.append(1)
        ran.set()

    scheduler, job = _scheduler_with(fn, stop)
    try:
        assert not ran.wait(0.3), "nothing runs before a kick (the interval is an hour)"
        job.kick()
        assert ran.wait(10), "a kick runs the job without waiting for its interval"
        assert calls == [1]
    finally:
        stop.set()
        scheduler.shutdown(wait=True)


def test_a_kick_while_the_job_runs_makes_it_run_again() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []
    second = threading.Event()
    stop = threading.Event()

    def fn() -> None:
        calls.append(1)
        if len(calls) == 1:
            started.set()
            release.wait(10)  # a long round: the kick below arrives while it runs
        else:
            second.set()

    scheduler, job = _scheduler_with(fn, stop)
    try:
        job.kick()
        assert started.wait(10)
        job.kick()  # apscheduler alone would skip this run (max_instances=1)
        release.set()
        assert second.wait(10), "the kick that arrived during the round ran the job again"
        assert len(calls) == 2
    finally:
        stop.set()
        scheduler.shutdown(wait=True)


def test_a_stopping_daemon_does_not_rerun_the_job() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []
    stop = threading.Event()

    def fn() -> None:
        calls.append(1)
        started.set()
        release.wait(10)

    scheduler, job = _scheduler_with(fn, stop)
    try:
        job.kick()
        assert started.wait(10)
        job.kick()
        stop.set()  # SIGTERM arrived during the round
        release.set()
    finally:
        scheduler.shutdown(wait=True)
    assert calls == [1]


def test_the_daemon_stops_while_the_feed_job_is_running(branch: Branch, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM during a feed read: the read finishes, the job reschedules nothing, the daemon exits.

    (apscheduler's shutdown(wait=True) held its job-store lock while waiting for the running feed
    job, which then waited for that lock to reschedule itself: the daemon hung on SIGTERM.)
    """
    agent = branch.agent()
    reading = threading.Event()
    real_poll = agent.poll

    def slow_poll() -> float:
        reading.set()
        time.sleep(1.0)  # the stop arrives during the read
        return real_poll()

    monkeypatch.setattr(agent, "poll", slow_poll)
    stop = threading.Event()
    daemon = threading.Thread(target=run_daemon, args=(agent,), kwargs={"stop": stop, "install_signals": False})
    daemon.start()
    try:
        assert reading.wait(30), "the feed job ran"
        stop.set()
        daemon.join(timeout=60)
        assert not daemon.is_alive(), "the daemon stopped while its feed job was running"
    finally:
        stop.set()
        daemon.join(timeout=5)
    stopped = [line for line in (branch.root / "var" / "audit.log").read_text().splitlines() if "agent.stopped" in line]
    assert stopped, "a clean stop is recorded"


def test_the_scheduler_logs_its_errors_as_json_and_not_its_skipped_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    from agent.logs import setup_logging

    loggers = [logging.getLogger("regbridge"), logging.getLogger("apscheduler")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]  # the session's log (privacy scan)
    setup_logging(None)
    try:
        scheduler_log = logging.getLogger("apscheduler.scheduler")
        scheduler_log.warning('Execution of job "work" skipped: maximum number of running instances reached (1)')
        scheduler_log.error("Error adding job")
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1, lines
        assert json.loads(lines[0])["msg"] == "Error adding job"
    finally:
        setup_logging(None, stderr=False)
        for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            lg.handlers[:] = handlers  # a closed FileHandler opens its file again at the next record
            lg.setLevel(level)
            lg.propagate = propagate


def test_a_state_store_out_of_reach_is_one_line_a_minute_not_a_traceback_per_job_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shared PostgreSQL down for a night: every job fails on it twice a second. Was: a traceback per run
    (about 40 KB/s of journal); now one line when it starts, one a minute with the count, one when it is back."""
    import socket

    import sqlalchemy as sa

    from agent.daemon.scheduler import StoreOutage

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = sa.create_engine(f"postgresql+psycopg://agent:Pw-3f9a@127.0.0.1:{port}/regbridge")
    with pytest.raises(sa.exc.OperationalError) as down:
        engine.connect()
    engine.dispose()
    now = [0.0]
    outage = StoreOutage(every=60.0, clock=lambda: now[0])
    assert not outage.failed(ValueError("a job's own error"))  # logged by the caller, with its traceback
    caplog.set_level("INFO", logger="regbridge.agent")
    for _ in range(241):  # two minutes of job runs, twice a second (0 s … 120 s)
        assert outage.failed(down.value)
        now[0] += 0.5
        outage.ok()  # a job that does not touch the store ran through: not "back" while runs keep failing
    lines = [r for r in caplog.records if r.name == "regbridge.agent"]
    assert [r.getMessage().split(" (")[0] for r in lines] == ["state store unreachable: jobs wait and run again"] + [
        "state store still unreachable"
    ] * 2, [r.getMessage() for r in lines]
    assert all(r.exc_info is None and "Connection refused" in r.__dict__["error"] for r in lines)
    assert all("Pw-3f9a" not in r.__dict__["error"] for r in lines)
    now[0] += 10
    outage.ok()
    back = caplog.records[-1]
    assert back.getMessage().startswith("state store reachable again") and back.__dict__["failed_runs"] == 241
