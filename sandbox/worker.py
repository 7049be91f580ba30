"""The centre's background work: the review workflow's due steps and webhook deliveries.

One thread for the workflow (rendering and sealing certificates takes tens of milliseconds, which
must not stall request handling) and one for webhooks (a slow receiver must not stall reviews).
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import httpx

__all__ = ["DELIVERY_TIMEOUT", "Worker"]

log = logging.getLogger("regbridge.sandbox")
#: seconds a webhook receiver has to answer
DELIVERY_TIMEOUT = 10.0


class Ticking(Protocol):
    """What runs the due review steps (:class:`sandbox.workflow.Workflow`)."""

    def tick(self, now: float | None = None) -> int: ...


class Delivering(Protocol):
    """What sends the due webhook deliveries (:class:`sandbox.webhooks.Webhooks`)."""

    def deliver_due(self, client: httpx.Client, now: float | None = None) -> int: ...


class Worker:
    """Runs the workflow and webhook deliveries in the background until stopped.

    Args:
        interval: seconds to sleep when there was nothing to do (webhooks: four times as long).
    """

    def __init__(self, workflow: Ticking, webhooks: Delivering, interval: float = 0.05) -> None:
        self.workflow = workflow
        self.webhooks = webhooks
        self.interval = interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        for target, name in ((self._run_workflow, "sandbox-workflow"), (self._run_webhooks, "sandbox-webhooks")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()

    def _run_workflow(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.workflow.tick()
            except Exception:  # a bug in one step must not stop the centre
                log.exception("workflow step failed")
                busy = 0
            if not busy:
                self._stop.wait(self.interval)

    def _run_webhooks(self) -> None:
        with httpx.Client(timeout=DELIVERY_TIMEOUT) as client:
            while not self._stop.is_set():
                try:
                    busy = self.webhooks.deliver_due(client)
                except Exception:
                    log.exception("webhook delivery failed")
                    busy = 0
                if not busy:
                    self._stop.wait(self.interval * 4)
