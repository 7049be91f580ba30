"""Waiting for an application to reach a status, resumable across restarts.

A waiter's state is a small, versioned continuation token (``rbw1.`` + base64url JSON). Save it
anywhere; ``Client.applications.resume_wait(token)`` picks up where the old process stopped,
with the same target statuses and the same deadline.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import ContinuationTokenError
from .models import ApplicationRecord, ApplicationStatus
from .models.status import FINAL_STATUSES

__all__ = ["TOKEN_PREFIX", "WaitState"]

TOKEN_PREFIX = "rbw1."
DEFAULT_POLL_SECONDS = 5.0


@dataclass
class WaitState:
    """What a waiter needs to resume: which application, until which statuses, by when."""

    application_id: str
    until: frozenset[ApplicationStatus] = FINAL_STATUSES
    deadline: float | None = None  # epoch seconds
    polls: int = 0
    last_status: ApplicationStatus | None = None
    record: ApplicationRecord | None = field(default=None, repr=False)

    @classmethod
    def start(cls, application_id: str, until: Iterable[ApplicationStatus] | None, timeout: float | None) -> WaitState:
        targets = frozenset(until) if until is not None else FINAL_STATUSES
        if not targets:
            raise ValueError("until must name at least one status")
        return cls(application_id, targets, time.time() + timeout if timeout is not None else None)

    def done(self) -> bool:
        return self.last_status is not None and (self.last_status in self.until or self.last_status in FINAL_STATUSES)

    def observe(self, record: ApplicationRecord) -> None:
        self.polls += 1
        self.record = record
        self.last_status = record.status

    def next_delay(self, retry_after: float | None) -> float:
        """The centre's hint (``Retry-After`` or ``next_poll_seconds``) or a default."""
        if retry_after is not None:
            return retry_after
        if self.record is not None and self.record.next_poll_seconds:
            return float(self.record.next_poll_seconds)
        return DEFAULT_POLL_SECONDS

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    def to_token(self) -> str:
        payload = {
            "v": 1,
            "application_id": self.application_id,
            "until": sorted(s.value for s in self.until),
            "deadline": self.deadline,
            "polls": self.polls,
            "last_status": self.last_status.value if self.last_status else None,
        }
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> WaitState:
        if not token.startswith(TOKEN_PREFIX):
            raise ContinuationTokenError("not a RegBridge waiter token (expected the rbw1. prefix)")
        body = token[len(TOKEN_PREFIX) :]
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            if data.get("v") != 1:
                raise ContinuationTokenError(f"waiter token version {data.get('v')} is not supported")
            return cls(
                application_id=str(data["application_id"]),
                until=frozenset(ApplicationStatus(s) for s in data["until"]),
                deadline=data["deadline"],
                polls=int(data["polls"]),
                last_status=ApplicationStatus(data["last_status"]) if data["last_status"] else None,
            )
        except ContinuationTokenError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise ContinuationTokenError(f"waiter token is malformed: {e}") from None
