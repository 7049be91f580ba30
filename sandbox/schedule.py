"""When the review workflow next looks at an application: :class:`Timing` and the due-step table."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from config import working_calendar
from sdk.support.working_days import beijing_date, end_of_day

from .store import Store

__all__ = ["Schedule", "Timing"]


@dataclass
class Timing:
    """How fast the centre works.

    Args:
        step_seconds: delay before each step; 0 moves an application as soon as the worker wakes.
        correction_days: time the bank has to answer a 补正 (a real centre: 15 days), may be fractional.
        correction_working_days: the same in working days (工作日, the agent's calendar:
            :func:`config.working_calendar`); when set it wins, and the deadline is the end of that Beijing day.
        warning_fraction: warn (``application.correction_deadline_near``) when this share of the time is left.
        manual: nothing moves until advanced (admin API / :meth:`sandbox.workflow.Workflow.advance`).
    """

    step_seconds: float = 0.0
    correction_days: float = 15.0
    warning_fraction: float = 0.2
    manual: bool = False
    correction_working_days: int | None = None

    def correction_deadline(self, requested_at: datetime) -> datetime:
        """When a 补正 requested at ``requested_at`` runs out."""
        if self.correction_working_days is None:
            return requested_at + timedelta(days=self.correction_days)
        last = working_calendar().add_working_days(beijing_date(requested_at), self.correction_working_days)
        return end_of_day(last)


class Schedule:
    """The applications whose next workflow step is due, and when (seconds since the epoch)."""

    def __init__(self, store: Store, timing: Timing) -> None:
        self.store = store
        self.timing = timing

    def schedule(self, institution_id: str, application_id: str, *, force: bool = False) -> None:
        """Due after ``timing.step_seconds`` (at once when ``force``); nothing when manual and not forced."""
        if self.timing.manual and not force:
            return
        self.at(institution_id, application_id, time.time() + (0 if force else self.timing.step_seconds))

    def at(self, institution_id: str, application_id: str, due_at: float) -> None:
        self.store.execute("INSERT OR REPLACE INTO schedule VALUES (?, ?, ?)", application_id, institution_id, due_at)

    def unschedule(self, application_id: str) -> None:
        self.store.execute("DELETE FROM schedule WHERE application_id = ?", application_id)

    def due(self, now: float) -> list[sqlite3.Row]:
        """The (application_id, institution_id) rows due at ``now``."""
        return self.store.all("SELECT application_id, institution_id FROM schedule WHERE due_at <= ?", now)
