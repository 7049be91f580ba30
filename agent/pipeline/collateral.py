"""Collateral watch (抵押物监控, issue 24 item 4): what happens to a registered mortgage's unit afterwards.

For each mortgage the agent registered and keeps (a stored, not superseded 不动产登记证明 of a type that writes a
mortgage), the agent notices a 查封 or an 异议 recorded on the unit, a later mortgage written onto it, and its own
mortgage no longer current (superseded or cancelled by someone else's act — the bank's own change or discharge
through the agent supersedes the certificate first and is not reported). It looks by a scheduled 登记资料查询:
the bank, as the mortgage's 权利人, authorises its own query (no owner's authorisation needed, seed 001 §3's
query is the owner's; the mortgagee's own right is its own to query), each mortgage at most every
``collateral.interval_hours``, at most ``collateral.max_queries`` queries a run (the request budget), oldest
checked first; each query is in the centre's trace like any other. Where the centre pushes its sealed
查封/解封/异议 notices (agent/pipeline/notices.py, a platform's: agent/daemon/notify.py) they reach the loan system at
once; the watch is for what no one pushes.

Each change is reported once per loan — one event is ``(不动产单元号, the restriction's id or the 证明号, what)``
(:func:`agent.pipeline.outbox.report_collateral`), whoever sees it first, the push or the watch: a receipt line to
the loan system (事件 ``collateral``, 状态 查封 / 解封 / 异议 / 后顺位抵押 / 抵押权已注销或变更, the reason with the
unit and what the register shows), an alert ``collateral:<证明号>:<what>`` (a 解封 clears the seizure's) and an audit
record ``collateral.<what>``. The last view of each mortgage is kept in the state's meta
(``collateral:<证明号>``, no personal data).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from agent.centre.port import filer_uscc
from agent.pipeline.context import StageContext
from agent.pipeline.outbox import report_collateral
from agent.pipeline.queries import run_query
from agent.state.store import AppRow
from sdk.models import PropertyQuery, PropertyQueryResult

__all__ = ["WATCHED_TYPES", "watch_collateral", "watched_mortgages"]

log = logging.getLogger("regbridge.agent.collateral")

#: the application types whose certificate proves a mortgage the bank holds
WATCHED_TYPES = frozenset(
    {"mortgage_first", "mortgage_first_with_determination", "mortgage_notice_conversion", "mortgage_change",
     "maximum_determination"}
)  # fmt: skip


def watched_mortgages(ctx: StageContext) -> list[tuple[AppRow, str, list[str]]]:
    """``(application, 证明号, 不动产单元号s)`` of every mortgage the agent registered and still holds."""
    found = []
    for cert in ctx.store.certificates(stage="stored"):
        if cert["superseded_at"] or not cert["certificate_number"]:
            continue
        app = ctx.store.application(cert["reference"])
        if app is None or app.type not in WATCHED_TYPES or not app.payload.get("mortgagee"):
            continue
        units = [p["unit_id"] for p in app.payload.get("properties", [])]
        found.append((app, str(cert["certificate_number"]), units))
    return found


def _view(ctx: StageContext, number: str) -> dict[str, Any]:
    raw = ctx.store.get_meta(f"collateral:{number}")
    return dict(json.loads(raw)) if raw else {}


def _query(app: AppRow, number: str, unit_id: str, now: datetime) -> PropertyQuery:
    bank = app.payload["mortgagee"]
    return PropertyQuery.model_validate({
        "unit_id": unit_id,
        "operator_id": (app.payload.get("declaration") or {}).get("operator_id") or "collateral-watch",
        "authorisation": {
            "reference": f"抵押权人自查-{number}"[:64],
            "applicant": {"kind": "organisation", "name": bank["name"], "id_number": bank["id_number"]},
            "signed_at": now.isoformat(),
            "signature_id": f"mortgagee:{bank['id_number']}",
        },
    })  # fmt: skip


def _seen(result: PropertyQueryResult, number: str) -> dict[str, Any]:
    ours = next((r for r in result.rights if r.kind == "mortgage" and r.certificate_number == number), None)
    return {
        "seized": result.seized,
        "objection": result.objection,
        "current": ours is not None,
        "rank": ours.rank if ours else None,
        "others": sorted(
            r.certificate_number for r in result.rights
            if r.kind == "mortgage" and r.certificate_number and r.certificate_number != number
        ),
        # each restriction by its id on the register (a centre that names none: by its note)
        "seizures": sorted(f"{result.unit_id}:{r.right_id or r.note or '-'}" for r in result.rights
                           if r.kind == "seizure"),
        "objections": sorted(f"{result.unit_id}:{r.right_id or r.note or '-'}" for r in result.rights
                             if r.kind == "objection"),
    }  # fmt: skip


def _changes(before: dict[str, Any], now: dict[str, Any], number: str) -> list[tuple[str, str, str]]:
    """What is new since the last view, as ``(unit, subject, what)`` events (the first view: a seizure or a mortgage
    no longer current only, since the register held neither when the mortgage was recorded; objections and other
    mortgages then are the baseline). A view kept before restrictions had ids counts its seizures as known."""
    first = "current" not in before
    found = []
    known = set(before.get("seizures", now["seizures"] if before.get("seized") else []))
    for item in now["seizures"]:
        if item not in known:
            found.append((*item.split(":", 1), "seized"))
    for item in sorted(known - set(now["seizures"])):
        found.append((*item.split(":", 1), "released"))
    known = set(before.get("objections", now["objections"] if before.get("objection") else []))
    if not first:
        for item in now["objections"]:
            if item not in known:
                found.append((*item.split(":", 1), "objection"))
    units = now.get("units") or ["-"]
    new = sorted(set(now["others"]) - set(before.get("others", [])))
    if new and not first:
        found += [(units[0], other, "later_mortgage") for other in new]
    if not now["current"] and (first or before.get("current")):
        found.append((units[0], number, "not_current"))
    return [(u, s, w) for u, s, w in found]


_REASONS = {
    "seized": "抵押物已被查封",
    "released": "抵押物已解除查封",
    "objection": "抵押物上已有异议登记",
    "not_current": "登记簿中本抵押权已不是现势（已注销或已变更），本行未办理该业务",
}


def watch_collateral(ctx: StageContext, *, now: datetime | None = None) -> int:
    """One run of the watch within the request budget; answers how many changes were reported."""
    settings = ctx.config.collateral
    if not settings.enabled:
        return 0
    now = now or datetime.now(UTC)
    interval = settings.interval_hours * 3600
    due = []
    for app, number, units in watched_mortgages(ctx):
        view = _view(ctx, number)
        if time.time() - float(view.get("checked_at", 0)) >= interval:
            due.append((float(view.get("checked_at", 0)), app.reference, app, number, units, view))
    due.sort(key=lambda d: (d[0], d[1]))
    budget, reported = settings.max_queries, 0
    for _, _, app, number, units, before in due:
        if budget < len(units):
            break
        merged: dict[str, Any] = {"seized": False, "objection": False, "current": False, "others": [],
                                  "seizures": [], "objections": [], "units": units}  # fmt: skip
        for unit_id in units:
            budget -= 1
            outcome = run_query(
                ctx,
                _query(app, number, unit_id, now),
                label=f"collateral {number}",
                now=now,
                institution_uscc=filer_uscc(app.payload),
            )  # as the branch that holds the mortgage
            if outcome.result is None:
                log.warning("collateral query refused", extra={"certificate": number, "outcome": outcome.outcome})
                merged = {}
                break
            seen = _seen(outcome.result, number)
            merged = {
                "seized": merged["seized"] or seen["seized"],
                "objection": merged["objection"] or seen["objection"],
                "current": merged["current"] or seen["current"],
                "others": sorted({*merged["others"], *seen["others"]}),
                "seizures": sorted({*merged["seizures"], *seen["seizures"]}),
                "objections": sorted({*merged["objections"], *seen["objections"]}),
                "units": units,
            }
        if not merged:
            continue
        with ctx.store.transaction():
            for unit_id, subject, what in _changes(before, merged, number):
                reason = f"抵押物上新设抵押权 {subject}" if what == "later_mortgage" else _REASONS[what]
                where = unit_id if unit_id != "-" else ", ".join(units)
                text = f"{reason}（不动产单元 {where}，不动产登记证明 {number}）"
                reported += report_collateral(ctx, app, number, unit_id, subject, what, text)
            ctx.store.set_meta(f"collateral:{number}", json.dumps({**merged, "checked_at": time.time()}))
    return reported
