"""``regbridge run``: the agent as a daemon, driven by apscheduler (3.x).

Jobs (each one at a time, missed runs coalesced):

- ``scan``: every ``rescan_seconds`` — supervise the inbox watchers (re-arm a folder that came
  back) and ingest every complete file; a watchdog event runs it at once;
- ``work``: every second, and at once when something changed — submit, read what events
  flagged, pay fees, answer 补正 with dropped materials, deliver certificates, write receipts;
- ``events``: the event feed, rescheduled after each read to the interval the centre hints;
- ``deadlines``: every ten minutes — 补正 deadlines coming up.

SIGTERM or SIGINT stops taking new work, lets running jobs finish, and closes the state cleanly;
whatever was in flight is resumed from the state store at the next start.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from datetime import datetime, timedelta
from typing import Any

from agent.runtime import Agent
from agent.track import check_deadlines
from agent.watch import InboxWatcher

__all__ = ["run_daemon"]

log = logging.getLogger("regbridge.agent")


def run_daemon(agent: Agent, *, stop: threading.Event | None = None, install_signals: bool = True) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
    agent.scheduler = scheduler
    watcher = InboxWatcher(agent)
    agent.watcher = watcher
    receiver = None
    if agent.config.webhook.enabled:
        from agent.webhook import WebhookReceiver

        hook = agent.config.webhook
        receiver = WebhookReceiver(agent, hook.listen, hook.port, hook.public_url).start()
        try:
            agent.client.institution.set_webhook(receiver.url)
            log.info("webhook receiver listening", extra={"url": receiver.url})
        except Exception as exc:
            log.warning("could not register the webhook; the event feed still works", extra={"error": str(exc)})

    def guarded(name: str, fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except Exception:  # a failing job is logged and runs again next time; the daemon stays up
                log.exception("job failed", extra={"job": name})

        return run

    def scan() -> None:
        watcher.supervise()
        agent.scan()

    def events() -> None:
        interval = agent.poll()
        scheduler.reschedule_job("events", trigger="interval", seconds=max(1.0, interval))

    now = datetime.now(scheduler.timezone) if hasattr(scheduler, "timezone") else datetime.now()
    scheduler.add_job(
        guarded("scan", scan), "interval", seconds=agent.config.rescan_seconds, id="scan", next_run_time=now
    )
    scheduler.add_job(guarded("work", agent.work), "interval", seconds=1.0, id="work", next_run_time=now)
    scheduler.add_job(guarded("events", events), "interval", seconds=2.0, id="events", next_run_time=now)
    scheduler.add_job(
        guarded("deadlines", lambda: check_deadlines(agent)),
        "interval",
        minutes=10,
        id="deadlines",
        next_run_time=now + timedelta(seconds=5),
    )

    def on_signal(signum: int, frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    if install_signals:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    agent.audit.append("agent.started", agent.config.centre.institution_id, "ok")
    log.info("agent running", extra={"inboxes": len(agent.config.inbox), "centre": agent.config.centre.url})
    scheduler.start()
    original_wake = agent.wake

    def wake_scan() -> None:
        original_wake()
        with contextlib.suppress(Exception):  # the scheduler may be shutting down
            scheduler.modify_job("scan", next_run_time=datetime.now(scheduler.timezone))

    agent.wake = wake_scan  # type: ignore[method-assign]
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)
        watcher.stop()
        if receiver is not None:
            receiver.stop()
        agent.audit.append("agent.stopped", agent.config.centre.institution_id, "ok")
        log.info("agent stopped")
        agent.close()
