"""The agent's state: one SQLite file in WAL mode with ``synchronous=FULL``.

Persist first, act second: an application, its idempotency keys and its next step are
committed here before any request leaves the machine, so a crash at any instant leads to
neither loss nor a duplicate (shared/engineering.md). Every change of an application's stage
or centre status is recorded with its time in ``transitions``.

Personal data (the application JSON, quarantined row values) is encrypted at rest with a key
derived from the agent's secret (:class:`agent.state.secrets.DataCipher`); what is queried (stage,
status, loan number, references) has its own plain columns and holds no names or ID numbers.

:class:`StateStore` is the small interface the pipeline uses; :class:`SQLiteStore` implements
it, and a PostgreSQL store for multi-instance deployments implements the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["FINAL_STAGES", "AppRow", "StateStore", "now_iso"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


#: stages after which the agent has nothing left to do for an application
FINAL_STAGES = frozenset({"done", "rejected", "quarantined"})


@dataclass
class AppRow:
    """One application in the outbox (plain columns; the payload is decrypted on demand)."""

    reference: str
    loan_no: str
    type: str
    inbox: str
    profile: str
    source: list[dict[str, Any]]
    payload: dict[str, Any]
    idem_create: str
    idem_submit: str
    application_id: str | None
    stage: str
    centre_status: str | None
    attempts: int
    next_attempt_at: float
    last_error: str | None
    fee_total: str | None
    fee_status: str | None
    idem_pay: str | None
    correction: dict[str, Any] | None
    decision: dict[str, Any] | None
    deadline: str | None
    supplement: dict[str, Any] | None
    idem_supplement: str | None
    paper_status: str
    created_at: str
    updated_at: str


class StateStore(Protocol):
    """What the pipeline needs of its state; SQLite here, PostgreSQL for several instances."""

    def transaction(self) -> Any: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def file_seen(self, sha256: str) -> dict[str, Any] | None: ...
    def record_file(self, sha256: str, **fields: Any) -> None: ...
    def add_application(self, row: dict[str, Any]) -> None: ...
    def application(self, reference: str) -> AppRow | None: ...
    def by_centre_id(self, application_id: str) -> AppRow | None: ...
    def applications(self, *stages: str, due_before: float | None = None, limit: int = 1000) -> list[AppRow]: ...
    def update_application(self, reference: str, *, note: str | None = None, **fields: Any) -> None: ...
    def counts(self) -> dict[str, int]: ...
