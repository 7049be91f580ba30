"""The event feed (docs/api.md §8): every change an institution may react to, in order.

An event carries ids and codes only, never personal data. When the institution has a webhook,
the event is also queued for delivery (:mod:`sandbox.webhooks` sends it).
"""

from __future__ import annotations

import time
from typing import Any

from sdk.models import ApplicationRecord, ApplicationStatus

from .store import Store, new_id, now_utc

__all__ = ["EventFeed"]


class EventFeed:
    """Appends events to an institution's feed and queues their webhook deliveries."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def emit(
        self,
        institution_id: str,
        kind: str,
        record: ApplicationRecord | None,
        data: dict[str, Any] | None = None,
        previous: ApplicationStatus | None = None,
    ) -> int:
        """Append an event to the institution's feed (ids and codes only, never personal data); answer its sequence."""
        seq = self.store.append_event(
            institution_id,
            {
                "event_id": new_id("evt"),
                "type": kind,
                "occurred_at": now_utc().isoformat(),
                "application_id": record.application_id if record else None,
                "client_reference": record.client_reference if record else None,
                "status": record.status.value if record else None,
                "previous_status": previous.value if previous else None,
                "data": data or {},
            },
        )
        row = self.store.one("SELECT webhook_url FROM institutions WHERE id = ?", institution_id)
        if row is not None and row["webhook_url"]:
            self.store.execute(
                "INSERT OR IGNORE INTO deliveries (seq, institution_id, url, due_at) VALUES (?, ?, ?, ?)",
                seq,
                institution_id,
                row["webhook_url"],
                time.time(),
            )
        return seq
