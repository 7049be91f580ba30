"""The daemon's kickable jobs: an event starts the work at once, and a kick during a round is not lost."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from agent.daemon import _Kickable


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
