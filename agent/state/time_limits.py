"""Committed time limits (承诺办结时限) of the applications the centre has accepted, and the late list.

The limit of each business type is in ``config/time_limits.toml`` (per centre, by the 行政区划代码 that
starts the first 不动产单元号; the default where a centre states none), counted in working days
(:mod:`sdk.support.working_days`: chinese-calendar, else the config's holiday table, else weekends) from
the day after 受理 to the centre's decision (登簿 or 不予登记). The 受理 time is the event's own time
(``occurred_at``, kept in the transition's note by :mod:`agent.pipeline.track`), else when the agent
learnt of it. A 补正 after 受理 stops the clock; the centre's next 受理 starts it afresh.

Read-only over the state store: :func:`running_limits` answers every application whose clock runs
(受理 or 审核 at the centre), :func:`calendar_warnings` the years counted without the library's data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from agent.state.store import StateStore
from config import TimeLimit, TimeLimits, load_time_limits, working_calendar
from sdk.support.working_days import WorkingCalendar, beijing_date

__all__ = ["RunningLimit", "accepted_at", "calendar_warnings", "running_limits"]

#: centre statuses during which the committed time limit runs
RUNNING = ("accepted", "under_review")
#: centre statuses that (re)start the wait for a new 受理
RESTART = ("submitted", "correction_required")
_EVENT_TIME = re.compile(r"^event \d+ at (\S+)$")


@dataclass(frozen=True)
class RunningLimit:
    """One accepted application against its committed time limit.

    Attributes:
        working_days_used: working days run out since 受理 (today's counts once it has begun).
        overdue: the limit's last day has passed (Beijing time) without a decision.
    """

    reference: str
    loan_no: str
    type: str
    centre: str | None
    application_id: str | None
    accepted_at: datetime
    limit: TimeLimit
    due_at: datetime
    working_days_used: int
    overdue: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "loan_no": self.loan_no,
            "type": self.type,
            "centre": self.centre,
            "application_id": self.application_id,
            "accepted_at": self.accepted_at.isoformat(),
            "limit_working_days": self.limit.working_days,
            "limit_source": self.limit.source,
            "due": self.due_at.date().isoformat(),
            "working_days_used": self.working_days_used,
            "overdue": self.overdue,
        }


def _when(transition: dict[str, Any]) -> datetime:
    match = _EVENT_TIME.match(transition.get("note") or "")
    text = match.group(1) if match else str(transition["at"])
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def accepted_at(transitions: list[dict[str, Any]]) -> datetime | None:
    """When the centre last accepted (受理) the application, if its clock runs now; else None."""
    start: datetime | None = None
    for t in transitions:
        status = t.get("centre_status")
        if status in RESTART:
            start = None
        elif status in RUNNING and start is None:
            start = _when(t)
    return start


def _centre(payload: dict[str, Any]) -> str | None:
    for unit in payload.get("properties") or []:
        unit_id = str(unit.get("unit_id") or "")
        if len(unit_id) >= 6:
            return unit_id[:6]
    return None


def running_limits(
    store: StateStore,
    *,
    now: datetime | None = None,
    limits: TimeLimits | None = None,
    calendar: WorkingCalendar | None = None,
) -> list[RunningLimit]:
    """Every application whose time limit runs, most overdue first (then the soonest due)."""
    now = now or datetime.now(UTC)
    limits = limits or load_time_limits()
    calendar = calendar or working_calendar()
    today = beijing_date(now)
    rows: list[RunningLimit] = []
    for reference in store.references(where=f"centre_status IN ({', '.join('?' * len(RUNNING))})", args=RUNNING):
        app = store.application(reference)
        if app is None:
            continue
        start = accepted_at(store.transitions(reference))
        if start is None:
            continue
        centre = _centre(app.payload)
        try:
            limit = limits.limit(app.type, centre)
        except KeyError:
            continue  # a type this release does not know: no committed limit to hold it to
        due = limit.due(start, calendar)
        rows.append(
            RunningLimit(
                reference=app.reference,
                loan_no=app.loan_no,
                type=app.type,
                centre=centre,
                application_id=app.application_id,
                accepted_at=start,
                limit=limit,
                due_at=due,
                working_days_used=calendar.working_days_between(beijing_date(start), today),
                overdue=now > due,
            )
        )
    rows.sort(key=lambda r: (not r.overdue, r.due_at, r.reference))
    return rows


def calendar_warnings(calendar: WorkingCalendar, start: date, end: date) -> list[str]:
    """One line (Chinese, for branch staff) per year in [start, end] counted without the library's data."""
    lines = []
    for year in calendar.fallback_years(start, end):
        how = (
            "按 config/time_limits.toml 的节假日表（仅法定假日，调休未知）"
            if calendar.source(year) == "config"
            else "仅按周末（config/time_limits.toml 无该年节假日表）"
        )
        lines.append(
            f"{year} 年无国务院节假日安排数据（chinese-calendar 未收录或未安装），工作日{how}计算，期限仅供参考；"
            "请升级 chinesecalendar 或在 config/time_limits.toml 补充该年安排"
        )
    return lines
