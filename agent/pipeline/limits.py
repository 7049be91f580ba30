"""The overdue check: an accepted application past its committed time limit (承诺办结时限) is reported.

:func:`check_time_limits` runs as the daemon's ``limits`` job (every 10 minutes, and once a round in
the demo): each application whose limit (``config/time_limits.toml``, counted by
:mod:`agent.state.time_limits`) has run out without a decision gets, once, an alert
(``overdue:<reference>``, cleared when the centre decides), a receipt line to the loan system
(事件 ``overdue``, 状态 超期) and an audit record; the metric ``regbridge_applications_overdue`` counts
the open ones. When a running limit counts days of a year the calendar library has no data for, the
``calendar`` alert says so (logs, ``regbridge status``, ``regbridge doctor``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from agent.pipeline.context import StageContext
from agent.pipeline.outbox import queue_receipt
from agent.state.time_limits import calendar_warnings, running_limits
from config import working_calendar
from sdk.support.working_days import beijing_date

__all__ = ["OVERDUE_PREFIX", "check_time_limits"]

log = logging.getLogger("regbridge.agent.limits")

#: alert kinds of overdue applications: ``overdue:<reference>``
OVERDUE_PREFIX = "overdue:"


def check_time_limits(ctx: StageContext, *, now: datetime | None = None) -> int:
    """Report every application newly past its limit; answers how many were newly reported."""
    now = now or datetime.now(UTC)
    calendar = working_calendar()
    rows = running_limits(ctx.store, now=now, calendar=calendar)
    overdue = {r.reference: r for r in rows if r.overdue}
    reported = 0
    with ctx.store.transaction():
        for ref, r in overdue.items():
            due = r.due_at.date().isoformat()
            what = f"{r.limit.working_days} 个工作日（{r.limit.source}）"
            if not ctx.store.raise_alert(
                OVERDUE_PREFIX + ref, f"{r.loan_no} ({ref}) 超过承诺办结时限 {what}：{due} 届满，中心尚未登簿"
            ):
                continue  # reported before
            app = ctx.store.application(ref)
            if app is not None:
                queue_receipt(
                    ctx, app, "overdue", "overdue", status="超期", application_id=r.application_id,
                    reason=f"承诺办结时限 {what} 已于 {due} 届满，中心尚未登簿",
                )  # fmt: skip
            ctx.audit.append("application.overdue", ref, "warned", due=due, limit=r.limit.working_days)
            log.warning("time limit passed", extra={"reference": ref, "due": due})
            reported += 1
        for alert in ctx.store.alerts():
            kind = str(alert["kind"])
            if kind.startswith(OVERDUE_PREFIX) and kind[len(OVERDUE_PREFIX) :] not in overdue:
                ctx.store.clear_alert(kind)  # decided (or back in 补正): nothing more is owed now
        span = [beijing_date(r.accepted_at) for r in rows] + [r.due_at.date() for r in rows]
        warnings = calendar_warnings(calendar, min(span), max(span)) if span else []
        if warnings:
            if ctx.store.raise_alert("calendar", "；".join(warnings)):
                for line in warnings:
                    log.warning(line)
        else:
            ctx.store.clear_alert("calendar")
    return reported
