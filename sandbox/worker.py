"""The centre's background work: the review workflow's due steps and webhook deliveries.

One thread for the workflow (rendering and sealing certificates takes tens of milliseconds, which
must not stall request handling) and one for webhooks (a slow receiver must not stall reviews).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

import httpx

from sdk.signing import KeySigner, sign_request

from .store import now_utc

if TYPE_CHECKING:
    from .centre import Centre
    from .faults import Faults

__all__ = ["MAX_DELIVERY_SECONDS", "Worker", "deliver_due"]

log = logging.getLogger("regbridge.sandbox")
MAX_DELIVERY_SECONDS = 24 * 3600
DELIVERY_TIMEOUT = 10.0


def _backoff(attempts: int) -> float:
    return float(min(3600, 2 ** min(attempts, 12)))


def deliver_due(centre: Centre, client: httpx.Client, faults: Faults | None = None, now: float | None = None) -> int:
    """POST every due webhook delivery once; answer how many were delivered."""
    now = time.time() if now is None else now
    rows = centre.store.all(
        "SELECT d.seq, d.url, d.attempts, d.institution_id, e.event FROM deliveries d JOIN events e ON e.seq = d.seq "
        "WHERE d.delivered_at IS NULL AND d.due_at <= ? ORDER BY d.seq LIMIT 100",
        now,
    )
    signer = KeySigner(centre.keys.centre_key_id, centre.keys.centre_key)
    delivered = 0
    for row in rows:
        event = json.loads(row["event"])
        body = json.dumps(event, ensure_ascii=False).encode()
        copies = 2 if faults is not None and faults.duplicate_event() else 1
        ok, error = False, ""
        for _ in range(copies):
            request = client.build_request(
                "POST",
                row["url"],
                content=body,
                headers={"Content-Type": "application/json", "Webhook-Id": event["event_id"]},
            )
            sign_request(request, signer)
            try:
                response = client.send(request)
                ok = 200 <= response.status_code < 300
                error = "" if ok else f"HTTP {response.status_code}"
            except httpx.HTTPError as e:
                ok, error = False, type(e).__name__
        attempts = row["attempts"] + 1
        if ok:
            centre.store.execute(
                "UPDATE deliveries SET attempts = ?, delivered_at = ?, last_error = NULL WHERE seq = ? AND url = ?",
                attempts,
                now_utc().isoformat(),
                row["seq"],
                row["url"],
            )
            delivered += 1
            continue
        give_up = sum(_backoff(a) for a in range(attempts)) > MAX_DELIVERY_SECONDS
        centre.store.execute(
            "UPDATE deliveries SET attempts = ?, due_at = ?, last_error = ? WHERE seq = ? AND url = ?",
            attempts,
            float("inf") if give_up else now + _backoff(attempts),
            error,
            row["seq"],
            row["url"],
        )
        log.info("webhook delivery of event %s failed (%s), attempt %d", event["event_id"], error, attempts)
    return delivered


class Worker:
    """Runs the workflow and webhook deliveries in the background until stopped."""

    def __init__(self, centre: Centre, faults: Faults | None = None, interval: float = 0.05) -> None:
        self.centre = centre
        self.faults = faults
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
                busy = self.centre.workflow.tick()
            except Exception:  # a bug in one step must not stop the centre
                log.exception("workflow step failed")
                busy = 0
            if not busy:
                self._stop.wait(self.interval)

    def _run_webhooks(self) -> None:
        with httpx.Client(timeout=DELIVERY_TIMEOUT) as client:
            while not self._stop.is_set():
                try:
                    busy = deliver_due(self.centre, client, self.faults)
                except Exception:
                    log.exception("webhook delivery failed")
                    busy = 0
                if not busy:
                    self._stop.wait(self.interval * 4)
