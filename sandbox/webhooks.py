"""Webhook deliveries: each queued event POSTed to the institution's URL, signed with the centre's key
(RFC 9421, as the SDK verifies it: :mod:`sdk.webhooks`), retried with backoff for a day at most. A gm
centre asking for the personal-field envelope seals an event's personal fields to the bank's SM2
encryption key (:func:`sandbox.credentials.seal_for_bank`) before signing."""

from __future__ import annotations

import json
import logging
import time

import httpx

from sdk.signing import KeySigner, sign_request

from .credentials import seal_for_bank
from .errors import CentreError
from .faults import Faults
from .pki import CentreKeys
from .store import Store, now_utc
from .urls import check_webhook_url

__all__ = ["MAX_DELIVERY_SECONDS", "Webhooks"]

log = logging.getLogger("regbridge.sandbox")
#: a delivery is given up when its backoff adds up to more than this (seconds)
MAX_DELIVERY_SECONDS = 24 * 3600


def _backoff(attempts: int) -> float:
    return float(min(3600, 2 ** min(attempts, 12)))


class Webhooks:
    """Sends the due webhook deliveries (``faults`` may duplicate them, as a real network would)."""

    def __init__(
        self, store: Store, keys: CentreKeys, faults: Faults | None = None, *, development: bool = True
    ) -> None:
        self.store = store
        self.keys = keys
        self.faults = faults
        #: a real centre checks the URL again before each delivery: a name may resolve inside later
        self.development = development

    def deliver_due(self, client: httpx.Client, now: float | None = None) -> int:
        """POST every due webhook delivery once; answer how many were delivered."""
        store, faults = self.store, self.faults
        now = time.time() if now is None else now
        rows = store.all(
            "SELECT d.seq, d.url, d.attempts, d.institution_id, e.event FROM deliveries d "
            "JOIN events e ON e.seq = d.seq WHERE d.delivered_at IS NULL AND d.due_at <= ? ORDER BY d.seq LIMIT 100",
            now,
        )
        signer = KeySigner(self.keys.centre_key_id, self.keys.centre_key)
        delivered = 0
        for row in rows:
            event = json.loads(row["event"])
            # a centre asking for the envelope seals any personal field to the bank's encryption key
            sealed = seal_for_bank(store, self.keys.suite, row["institution_id"], event)
            body = json.dumps(event if sealed is None else sealed, ensure_ascii=False).encode()
            copies = 2 if faults is not None and faults.duplicate_event() else 1
            ok, error = False, ""
            try:
                check_webhook_url(row["url"], development=self.development)
            except CentreError as refused:
                copies, error = 0, refused.detail[:200]
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
                store.execute(
                    "UPDATE deliveries SET attempts = ?, delivered_at = ?, last_error = NULL WHERE seq = ? AND url = ?",
                    attempts,
                    now_utc().isoformat(),
                    row["seq"],
                    row["url"],
                )
                delivered += 1
                continue
            give_up = sum(_backoff(a) for a in range(attempts)) > MAX_DELIVERY_SECONDS
            store.execute(
                "UPDATE deliveries SET attempts = ?, due_at = ?, last_error = ? WHERE seq = ? AND url = ?",
                attempts,
                float("inf") if give_up else now + _backoff(attempts),
                error,
                row["seq"],
                row["url"],
            )
            log.info("webhook delivery of event %s failed (%s), attempt %d", event["event_id"], error, attempts)
        return delivered
