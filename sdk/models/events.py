"""The event feed: ordered by sequence, delivered at least once, with no personal data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from ._base import Resource
from .status import ApplicationStatus

__all__ = ["Event", "EventPage", "EventType"]


class EventType(StrEnum):
    APPLICATION_STATUS_CHANGED = "application.status_changed"
    CORRECTION_REQUESTED = "application.correction_requested"
    CORRECTION_DEADLINE_NEAR = "application.correction_deadline_near"
    FEE_ASSESSED = "fee.assessed"
    FEE_PAID = "fee.paid"
    FEE_REFUNDED = "fee.refunded"
    FEE_CANCELLED = "fee.cancelled"
    CERTIFICATE_ISSUED = "certificate.issued"
    CERTIFICATE_SUPERSEDED = "certificate.superseded"
    NOTICE_ISSUED = "notice.issued"
    CHANNEL_SUSPENDED = "channel.suspended"
    CHANNEL_RESUMED = "channel.resumed"


class Event(Resource):
    """One thing that happened. Dedupe by ``event_id``: the same event may arrive twice."""

    event_id: str
    sequence: int = Field(ge=1, description="position in this institution's feed")
    type: EventType
    occurred_at: datetime
    application_id: str | None = None
    client_reference: str | None = None
    status: ApplicationStatus | None = None
    previous_status: ApplicationStatus | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="ids and codes, never personal data")


class EventPage(Resource):
    events: list[Event]
    next_cursor: str = Field(description="pass as ?after= to continue; stable when nothing is new")
    has_more: bool
    poll_interval_seconds: int = Field(ge=1, description="how long to wait before polling again when idle")
