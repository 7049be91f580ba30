"""``regbridge run``: the agent as a daemon, driven by apscheduler (3.x).

Jobs (each one at a time, missed runs coalesced):

- ``scan``: every ``rescan_seconds`` — supervise the inbox watchers (re-arm a folder that came
  back) and ingest every complete file; a watchdog event runs it at once;
- ``work``: every second, and at once when something changed — submit, read what events
  flagged, pay fees, answer 补正 with dropped materials, write receipts;
- ``deliver``: every second, and at once when an event (feed or webhook) arrives — download,
  verify and store certificates; a job of its own so that a certificate just issued is not queued
  behind a round of submissions;
- ``events``: the event feed, rescheduled after each read to the interval the centre hints, and
  read half a second after a round that submitted or paid (centres often answer those at once);
- ``deadlines``: every ten minutes — 补正 deadlines coming up;
- ``collateral``: every ``collateral.run_minutes`` — the collateral watch within its request budget;
- ``recheck``: every ``recheck_hours`` (24 by default, 0 = never) — every stored certificate and sealed
  notice re-checked online and locally (:mod:`agent.pipeline.recheck`); a failing one is marked and alerted;
- the platform's notify receiver (``[platform.notify]``, :mod:`agent.daemon.notify`): a thread that takes
  the notices a provincial platform pushes, from the start to the stop;
- ``watchdog``: under systemd with ``WatchdogSec=``, a ping while the work loop runs.

It serves ``/metrics`` and ``/healthz`` on loopback (:mod:`agent.daemon.metrics`) and tells systemd
when it is ready and when it stops (:mod:`agent.daemon.systemd`); a changed key id in the config
(``regbridge keys rotate``) is picked up by the ``keys`` job within a second.

SIGTERM or SIGINT stops taking new work, lets running jobs finish, and closes the state cleanly;
whatever was in flight is resumed from the state store at the next start. SIGHUP reads the config
and the mapping profiles again (:meth:`Agent.reload`) and reopens the log with its new level and
rotation; the daemon keeps running, and a config that does not load leaves the running one as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from agent.daemon.agent import Agent
from agent.daemon.systemd import notify, watchdog_seconds
from agent.pipeline.collateral import watch_collateral
from agent.pipeline.limits import check_time_limits
from agent.pipeline.recheck import recheck_certificates
from agent.pipeline.track import check_deadlines
from agent.pipeline.watch import InboxWatcher
from agent.state.store import now_iso
from sdk._version import __version__

__all__ = ["StoreOutage", "run_daemon"]

log = logging.getLogger("regbridge.agent")


STOP_GRACE_SECONDS = 120.0


class StoreOutage:
    """The state store out of reach (a shared PostgreSQL down, restarting, refusing the password): every job
    fails on it at once, several times a second, until it is back. Said as one line without a traceback when it
    starts, again at most every ``every`` seconds with how many job runs failed meanwhile, and once more when a
    job runs again; a database maintenance night no longer writes a traceback per job run to the journal.

    Args:
        every: seconds between two lines while the outage lasts.
        clock: monotonic seconds (tests pass their own).
    """

    #: seconds without a failing run before a run that went through says the store is back
    settle = 5.0

    def __init__(self, every: float = 60.0, clock: Any = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._said_at = 0.0
        self._failed = 0
        self._last_failure = 0.0

    @staticmethod
    def is_outage(exc: BaseException) -> bool:
        """Whether ``exc`` is the store's connection failing (SQLAlchemy's OperationalError/InterfaceError, or a
        connection it found invalidated), not a job's own error."""
        try:
            import sqlalchemy as sa
        except ImportError:  # pragma: no cover - the agent extra installs it
            return False
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.DisconnectionError):
            return True
        return isinstance(exc, sa.exc.DBAPIError) and bool(exc.connection_invalidated)

    def failed(self, exc: BaseException) -> bool:
        """Note a job run that failed on ``exc``; True when it was the store out of reach (logged here, throttled),
        False for any other error (the caller logs it with its traceback)."""
        if not self.is_outage(exc):
            return False
        from agent.state.sql import db_error_line

        now = self._clock()
        with self._lock:
            self._failed += 1
            self._last_failure = now
            if self._since is None:
                self._since = self._said_at = now
                log.error(
                    "state store unreachable: jobs wait and run again (状态库无法连接)",
                    extra={"error": db_error_line(exc)},
                )
            elif now - self._said_at >= self.every:
                self._said_at = now
                log.error(
                    "state store still unreachable (状态库仍无法连接)",
                    extra={
                        "error": db_error_line(exc),
                        "seconds": round(now - self._since),
                        "failed_runs": self._failed,
                    },
                )
        return True

    def ok(self) -> None:
        """A job ran through: the store is back (said once, with how long it was away) once no job has failed on
        it for :attr:`settle` seconds (a job that does not touch the store may run through while it is away)."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None or self._clock() - self._last_failure < self.settle:
                return
            log.warning(
                "state store reachable again (状态库已恢复连接)",
                extra={"seconds": round(self._clock() - self._since), "failed_runs": self._failed},
            )
            self._since, self._failed = None, 0


class _Running:
    """How many job runs are under way; ``with running:`` around each, :meth:`wait_idle` at stop."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout=timeout)


class _Kickable:
    """A job run at its interval and at once when kicked; a kick while it runs makes it run again.

    (apscheduler skips a run asked for while the job still runs; the kick is remembered here
    instead, so nothing that arrived during a round waits for the next interval.)
    """

    def __init__(self, scheduler: Any, job_id: str, fn: Any, stop: threading.Event) -> None:
        self.scheduler, self.job_id, self.fn, self.stop = scheduler, job_id, fn, stop
        self._again = threading.Event()
        self._running = False

    def __call__(self) -> None:
        while not self.stop.is_set():
            self._again.clear()
            self._running = True
            try:
                self.fn()
            finally:
                self._running = False
            if not self._again.is_set():
                return

    def kick(self) -> None:
        self._again.set()
        if not self._running:
            with contextlib.suppress(Exception):  # the scheduler may be shutting down
                self.scheduler.modify_job(self.job_id, next_run_time=datetime.now(self.scheduler.timezone))


def _deliver_round(agent: Agent, work: _Kickable) -> None:
    """The ``deliver`` job: certificates due; a delivery may make receipts and finish applications, so the work
    round runs at once after one."""
    if agent.deliver():
        work.kick()


def _reload(agent: Agent) -> None:
    """SIGHUP: the config, the profiles and the log again; a failure is logged and changes nothing."""
    from agent.logs import configure_logging

    notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
    try:
        restart = agent.reload()
    except Exception as exc:  # a bad edit must not stop the agent: the running config stays
        agent.store.raise_alert("reload", f"SIGHUP: the config or a profile did not load, nothing changed: {exc}")
        log.error("reload failed; the running config is kept", extra={"error": str(exc)})
    else:
        agent.store.clear_alert("reload")
        configure_logging(agent.config, stderr=True)
        if restart:
            log.warning("reloaded; these changes need a restart", extra={"settings": ", ".join(restart)})
    notify("READY=1")


def run_daemon(agent: Agent, *, stop: threading.Event | None = None, install_signals: bool = True) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
    watcher = InboxWatcher(agent.context)
    agent.watcher = watcher
    receiver = None
    if agent.config.webhook.enabled:
        from agent.daemon.webhook import WebhookReceiver

        hook = agent.config.webhook
        receiver = WebhookReceiver(agent.context, hook.listen, hook.port, hook.public_url)
        receiver.decryption_key = agent.decryption_keys
        receiver.start()
        try:
            agent.centre.set_webhook(receiver.url)
            log.info("webhook receiver listening", extra={"url": receiver.url})
        except Exception as exc:
            log.warning("could not register the webhook; the event feed still works", extra={"error": str(exc)})
    notices = None
    try:  # the notices a provincial platform pushes (查封, 解封, 异议, 产权变动); the daemon runs on without it
        notices = agent.notice_receiver()
        if notices is not None:
            notices.start()
            agent.store.clear_alert("platform_notify")
            log.info("platform notify receiver listening", extra={"url": notices.url})
    except (OSError, KeyError, ValueError) as exc:
        notices = None
        agent.store.raise_alert(
            "platform_notify", f"平台通知接收未启动 (the platform's notices cannot be received): {exc}"
        )
        log.error("platform notify receiver not started", extra={"error": str(exc)[:200]})

    running = _Running()
    outage = StoreOutage()

    def guarded(name: str, fn: Any) -> Any:
        def run() -> None:
            with running:
                if stop.is_set():  # stopping: a run that had not started yet does not start
                    return
                try:
                    fn()
                except Exception as exc:  # a failing job is logged and runs again next time; the daemon stays up
                    if agent.supervision.out_of_space(exc):
                        return
                    agent.metrics.errors.labels("job_failed").inc()
                    if outage.failed(exc):  # the state store down: one line a minute, not a traceback a run
                        return
                    log.exception("job failed", extra={"job": name})
                else:
                    outage.ok()

        return run

    metrics_server = None
    if agent.config.metrics.enabled:
        from agent.daemon.metrics import MetricsServer

        m = agent.config.metrics
        agent.metrics.watch(agent)
        try:
            metrics_server = MetricsServer(agent, m.listen, m.port, m.stale_seconds).start()
            log.info("metrics and health endpoint", extra={"url": metrics_server.url})
        except OSError as exc:  # the port is taken: run without it, and say so
            where = f" (host {socket.gethostname()})" if agent.shared else ""  # alerts are the shared state's
            said = (
                f"cannot serve /metrics and /healthz on {m.listen}:{m.port}{where}: {exc.strerror or exc}; running"
                " without them (another agent instance on this host needs its own [metrics] port, or 0)"
            )
            agent.store.raise_alert("metrics", said)
            log.error("metrics endpoint unavailable", extra={"error": said})

    console_server = None
    if agent.config.console.enabled:
        from agent.console.server import ConsoleServer

        try:
            console_server = ConsoleServer(agent).start()
            log.info("web console", extra={"url": console_server.url})
            if metrics_server is not None:
                metrics_server.console_url = console_server.url
        except (ValueError, OSError, RuntimeError) as exc:  # the daemon runs on without its console, and says so
            agent.store.raise_alert("console", f"cannot serve the web console: {exc}")
            log.error("web console unavailable", extra={"error": str(exc)})

    def scan() -> None:
        watcher.supervise()
        agent.scan()

    def events() -> None:
        interval = agent.poll()
        if not stop.is_set():
            with contextlib.suppress(Exception):  # the scheduler may be shutting down
                scheduler.reschedule_job("events", trigger="interval", seconds=max(1.0, interval))

    now = datetime.now(scheduler.timezone) if hasattr(scheduler, "timezone") else datetime.now()
    scheduler.add_job(
        guarded("scan", scan), "interval", seconds=agent.config.rescan_seconds, id="scan", next_run_time=now
    )

    def work_round() -> None:
        progress = agent.work(deliver=False)
        if progress.paid or progress.submitted:
            # centres often answer at once (acceptance on submission, issuance on payment): read the feed
            # half a second later rather than a whole interval later — one request for the whole round
            soon = datetime.now(scheduler.timezone) + timedelta(seconds=0.5)
            job = scheduler.get_job("events")
            if job is not None and job.next_run_time is not None and job.next_run_time > soon:
                with contextlib.suppress(Exception):
                    scheduler.modify_job("events", next_run_time=soon)

    work = _Kickable(scheduler, "work", guarded("work", work_round), stop)
    deliver = _Kickable(scheduler, "deliver", guarded("deliver", partial(_deliver_round, agent, work)), stop)
    scheduler.add_job(work, "interval", seconds=1.0, id="work", next_run_time=now)
    scheduler.add_job(deliver, "interval", seconds=1.0, id="deliver", next_run_time=now)
    # a rotated key is taken up within a second, however long a work round runs
    scheduler.add_job(guarded("keys", agent.check_key), "interval", seconds=1.0, id="keys", next_run_time=now)
    scheduler.add_job(guarded("events", events), "interval", seconds=2.0, id="events", next_run_time=now)
    if agent.shared:  # several instances on one state: heartbeat, leader lease, reaper (docs/state.md)

        def beat() -> None:
            was = agent.is_leader
            if agent.beat() and not was:  # just took the feed over: read it now, not at the next interval
                with contextlib.suppress(Exception):
                    scheduler.modify_job("events", next_run_time=datetime.now(scheduler.timezone))

        scheduler.add_job(
            guarded("beat", beat), "interval", seconds=agent.config.state.leader_seconds / 3, id="beat",
            next_run_time=now,
        )  # fmt: skip
    scheduler.add_job(
        guarded("deadlines", lambda: check_deadlines(agent.context) if agent.is_leader else None),
        "interval",
        minutes=10,
        id="deadlines",
        next_run_time=now + timedelta(seconds=5),
    )
    scheduler.add_job(
        guarded("limits", lambda: check_time_limits(agent.context) if agent.is_leader else None),
        "interval",
        minutes=10,
        id="limits",
        next_run_time=now + timedelta(seconds=7),
    )

    scheduler.add_job(
        guarded("bank_certificate", agent.check_bank_certificate),
        "interval",
        hours=1,
        id="bank_certificate",
        next_run_time=now + timedelta(seconds=3),
    )
    scheduler.add_job(
        guarded("collateral", lambda: watch_collateral(agent.context) if agent.is_leader else None),
        "interval",
        minutes=agent.config.collateral.run_minutes,
        id="collateral",
        next_run_time=now + timedelta(seconds=11),
    )
    if agent.config.recheck_hours > 0:  # stored certificates and notices checked again before use (seed 003)
        scheduler.add_job(
            guarded("recheck", lambda: recheck_certificates(agent.context) if agent.is_leader else None),
            "interval",
            hours=agent.config.recheck_hours,
            id="recheck",
            next_run_time=now + timedelta(hours=agent.config.recheck_hours),
        )

    def on_signal(signum: int, frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    reload_asked = threading.Event()

    def on_hangup(signum: int, frame: object) -> None:
        reload_asked.set()  # done by the main loop below: nothing but a flag in a signal handler

    if install_signals:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hangup)
    started = {"pid": os.getpid(), "version": __version__, "started_at": now_iso()}
    agent.store.set_meta(agent.daemon_meta_key, json.dumps(started))
    agent.audit.append("agent.started", agent.config.centre.institution_id, "ok")
    log.info("agent running", extra={"inboxes": len(agent.config.inbox), "centre": agent.config.centre.url})
    watchdog = watchdog_seconds()
    if watchdog:
        # pings only while the work loop runs: a hung agent is restarted by systemd
        def ping() -> None:
            if time.monotonic() - agent.metrics.last_work < max(watchdog, agent.config.metrics.stale_seconds):
                notify("WATCHDOG=1")

        scheduler.add_job(ping, "interval", seconds=max(0.5, watchdog / 3), id="watchdog", next_run_time=now)
    scheduler.start()
    notify("READY=1", f"STATUS=processing {len(agent.config.inbox)} inbox(es) for {agent.config.centre.url}")

    def wake() -> None:  # something changed: deliveries, the work round and the scan now, not at their interval
        deliver.kick()
        work.kick()
        with contextlib.suppress(Exception):  # the scheduler may be shutting down
            scheduler.modify_job("scan", next_run_time=datetime.now(scheduler.timezone))

    agent.supervision.wakers.append(wake)
    try:
        while not stop.wait(0.2):
            if reload_asked.is_set():
                reload_asked.clear()
                _reload(agent)
                wake()
    finally:
        notify("STOPPING=1", "STATUS=stopping: finishing running jobs")
        # Not shutdown(wait=True): apscheduler holds its job-store lock while it waits for running jobs,
        # and a running job that reschedules a job (the feed does, after each read; an event wakes the
        # work) waits for that same lock — the daemon hung on SIGTERM. Stop the scheduler, then wait for
        # the running jobs here, holding nothing they need.
        scheduler.shutdown(wait=False)
        if not running.wait_idle(STOP_GRACE_SECONDS):
            log.error("jobs still running at stop; their work resumes from the state at the next start")
        if metrics_server is not None:
            metrics_server.stop()
        if console_server is not None:
            console_server.stop()
        watcher.stop()
        if receiver is not None:
            receiver.stop()
        if notices is not None:
            notices.stop()
        agent.audit.append("agent.stopped", agent.config.centre.institution_id, "ok")
        log.info("agent stopped")
        agent.close()
