"""``regbridge late``: the late list — accepted applications against their committed time limits (承诺办结时限).

The limits are ``config/time_limits.toml`` (per business type, per centre, with their source), counted
in working days from the day after 受理 (:mod:`agent.state.time_limits`). Exit 1 when any is overdue,
so a cron job or a monitoring check can act on it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from agent.cli.common import CONFIG, open_agent

__all__ = ["late", "register"]


def late(
    config: Path = CONFIG,
    show_all: bool = typer.Option(False, "--all", help="Every running limit, not only the overdue ones."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """Accepted applications past their committed time limit (超期), most overdue first (exit 1 if any)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from agent.state.time_limits import calendar_warnings, running_limits
    from config import working_calendar
    from sdk.support.working_days import beijing_date

    agent = open_agent(config)
    try:
        rows = running_limits(agent.store)
    finally:
        agent.close()
    cal = working_calendar()
    today = beijing_date(datetime.now(UTC))
    span = [beijing_date(r.accepted_at) for r in rows] + [r.due_at.date() for r in rows] + [today]
    warnings = calendar_warnings(cal, min(span), max(span))
    shown = rows if show_all else [r for r in rows if r.overdue]
    overdue = sum(r.overdue for r in rows)
    if as_json:
        typer.echo(
            json.dumps(
                {"overdue": overdue, "running": len(rows), "applications": [r.as_dict() for r in shown],
                 "calendar_warnings": warnings},
                ensure_ascii=False, indent=2,
            )
        )  # fmt: skip
    else:
        console = Console()
        for line in warnings:
            console.print(f"[yellow]{escape(line)}[/]")
        table = Table(title=f"承诺办结时限: {overdue} overdue of {len(rows)} running")
        for col in ("reference", "loan", "type", "受理", "limit", "due", "used", "overdue"):
            table.add_column(col)
        for r in shown:
            table.add_row(
                escape(r.reference), escape(r.loan_no), escape(r.type),
                r.accepted_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                f"{r.limit.working_days} 工作日", r.due_at.date().isoformat(), str(r.working_days_used),
                "超期" if r.overdue else "",
            )  # fmt: skip
        console.print(table)
    if overdue:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(late)
