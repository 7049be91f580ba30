"""``regbridge status``: the queue by state, errors, quarantine, deadlines, fees and alerts.

Everything here is safe to show on a screen: references, loan numbers, codes and reasons, never
names or ID numbers (quarantine values were masked when they were recorded).
"""

from __future__ import annotations

from typing import Any

from agent.messages import accounting_line, field_line
from agent.state.store import StateStore
from agent.state.time_limits import running_limits

__all__ = ["snapshot"]


def _summary(f: dict[str, Any]) -> str:
    """One line per export, in the words of its receipt line."""
    if f.get("records") is None:
        return str(f.get("reason") or f["status"])
    if f["status"] == "quarantined" and f.get("reason"):
        return f"整个文件隔离：{f['reason']}"
    rows = {
        "queue": f.get("rows_queued") or 0,
        "supplement": f.get("rows_supplement") or 0,
        "duplicate": f.get("rows_duplicate") or 0,
        "quarantine": f.get("rows_quarantined") or 0,
    }
    return accounting_line(f["records"], rows, f.get("encoding"))


def snapshot(store: StateStore) -> dict[str, Any]:
    """The whole status view as plain data (``regbridge status --json``)."""
    apps = store.applications()
    errors = [
        {"reference": a.reference, "stage": a.stage, "attempts": a.attempts, "error": a.last_error}
        for a in apps
        if a.last_error and a.stage not in ("done", "rejected")
    ]
    deadlines = [
        {
            "reference": a.reference,
            "loan_no": a.loan_no,
            "deadline": a.deadline,
            "items": [i["code"] for i in (a.correction or {}).get("items", [])],
        }
        for a in apps
        if a.centre_status == "correction_required"
    ]
    fees = [{"reference": a.reference, "amount": a.fee_total} for a in apps if a.fee_status == "unpaid"]
    quarantine = [
        {
            "id": q["id"],
            "kind": q["kind"],
            "loan_no": q["loan_no"],
            "reference": q["reference"],
            "file": q["path"],
            "row": q["row"],
            "errors": [
                field_line(e.get("row"), e.get("line"), e["field"], e.get("value") or "", e["expected"])
                for e in q["errors"]
            ],
        }
        for q in store.quarantined()
    ]
    certs = store.certificates()
    limits = running_limits(store)
    return {
        "paused": store.get_meta("paused") or None,  # the daemon keeps its pause there
        "stages": store.counts(),
        "centre_statuses": store.status_counts(),
        "applications": [
            {
                "reference": a.reference,
                "loan_no": a.loan_no,
                "type": a.type,
                "stage": a.stage,
                "centre_status": a.centre_status,
                "certificates": [c["certificate_number"] for c in certs if c["reference"] == a.reference],
                "reason": (a.decision or {}).get("reason"),
                "reapplies": next((src["reapplies"] for src in a.source if src.get("reapplies")), None),
            }
            for a in apps
        ],
        "reapplied": [
            {"reference": a.reference, "loan_no": a.loan_no, "reapplies": src["reapplies"], "stage": a.stage}
            for a in apps
            for src in a.source[:1]
            if src.get("reapplies")
        ],
        "errors": errors,
        "quarantine": quarantine,
        "deadlines": deadlines,
        "fees_unpaid": fees,
        # 承诺办结时限 (agent.state.time_limits): the accepted applications past their limit, and the
        # calendar's warning when a limit counts days of a year without the State Council's schedule
        "overdue": [
            {k: v for k, v in r.as_dict().items() if k in ("reference", "loan_no", "type", "due", "limit_working_days")}
            for r in limits
            if r.overdue
        ],
        "time_limits_running": len(limits),
        "calendar_warnings": [a["message"] for a in store.alerts() if a["kind"] == "calendar"],
        "certificates": {s: sum(1 for c in certs if c["stage"] == s) for s in sorted({c["stage"] for c in certs})},
        "paper_owed": len(store.paper_owed()),
        "alerts": [{"kind": a["kind"], "message": a["message"], "since": a["raised_at"]} for a in store.alerts()],
        "files": [
            {
                "file": f["path"],
                "status": f["status"],
                "rows_ok": f["rows_ok"],
                "rows_bad": f["rows_bad"],
                "encoding": f.get("encoding"),
                "records": f.get("records"),
                "accounting": {
                    "queue": f.get("rows_queued") or 0,
                    "supplement": f.get("rows_supplement") or 0,
                    "duplicate": f.get("rows_duplicate") or 0,
                    "quarantine": f.get("rows_quarantined") or 0,
                },
                "summary": _summary(f),
            }
            for f in store.files(20)
        ],
    }
