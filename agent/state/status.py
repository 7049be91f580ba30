"""``regbridge status``: the queue by state, errors, quarantine, deadlines, fees and alerts.

Everything here is safe to show on a screen: references, loan numbers, codes and reasons, never
names or ID numbers (quarantine values were masked when they were recorded).
"""

from __future__ import annotations

import re
from typing import Any

from agent.messages import accounting_line, error_value, field_line
from agent.state.store import StateStore
from agent.state.time_limits import running_limits

__all__ = [
    "alert_branch",
    "alert_fix",
    "first_time_acceptance",
    "held_by_preflight",
    "needing_person",
    "quarantine_reasons",
    "snapshot",
]

#: what to do about each kind of alert (the part of the kind before ``:``), in the words of the status view
ALERT_FIXES: dict[str, str] = {
    "collateral": "a mortgaged unit changed at the register (查封, 异议, a later mortgage, or the mortgage no longer "
    "current): the loan system has the receipt line; tell the loan officer, then dismiss the alert",
    "paused": "the centre refused the credential or suspended the channel: run `regbridge doctor`, check "
    "`regbridge keys show` and call the centre; the agent resumes by itself once the centre accepts it",
    "centre_unreachable": "check the network, proxy and DNS to centre.url (`regbridge doctor`); the queue is kept "
    "and sent when the centre answers",
    "disk_full": "free disk space where data_dir lives; the agent resumes by itself",
    "key": "the config names a key that cannot be loaded: `regbridge keys show`, fix centre.key_id, then "
    "`systemctl reload regbridge`",
    "metrics": "the metrics port is taken (by another program, or another agent instance on this host): give "
    "this instance its own [metrics] port (0: any free one; it is logged at the start), then restart it; the agent "
    "runs meanwhile, without /metrics and /healthz",
    "inbox": "the inbox folder is gone: reconnect the share (mount it again); exports and receipts wait until then",
    "inbox-file": "take the file out of the inbox (or replace the link with a real file); it will not be read",
    "completion": 'set completion = "rename" or "marker" for this inbox, then `systemctl reload regbridge`',
    "deadline": "answer the 补正: drop the listed materials into the inbox's materials folder (`regbridge show "
    "LOAN` lists them) before the deadline",
    "document_store": "check the document store (free space, permissions, S3 credentials); delivery resumes by itself",
    "bank_certificate": "the bank's institution certificate (机构证书) ends soon or has ended: before it ends, "
    "`regbridge keys rotate` renews it; after, ask the centre for a new enrolment bundle and `regbridge enroll` it "
    "into the agent's folder (the state is kept); `regbridge doctor` checks it against the centre's CRL",
    "certificate": "a certificate failed verification: check the trust anchors (`regbridge doctor`), then "
    "`regbridge quarantine list` and `regbridge requeue ID`",
    "fee_cap": "raise [fees] daily_cap (then `systemctl reload regbridge`) or pay by hand with `regbridge fees pay`",
    "overdue": "the centre is past its committed time limit (承诺办结时限): `regbridge late` lists them; ask the "
    "centre (受理号 in `regbridge show LOAN`); the alert clears when it decides",
    "calendar": "upgrade chinesecalendar (pip install -U chinesecalendar) or add the year's State Council schedule "
    "to config/time_limits.toml; until then working days of that year are estimates",
    "query": "a 查询结果 whose centre signature does not verify was not kept: check the trust anchors "
    "(`regbridge doctor`) and query again",
    "console": "the web console could not start (port taken, or LAN mode without TLS): fix [console], then restart",
    "platform_notify": "the notify receiver of [platform] could not start (port taken, no SM2 encryption key): fix "
    "[platform.notify] or run `regbridge platform enroll`, then restart; the platform's 查封/解封/异议/产权变动 "
    "notices are not received until then",
    "reload": "the edited config or profile does not load: fix it (`regbridge config show`, `regbridge profile "
    "check`), then reload again; the agent runs on with the config it had",
}


def quarantine_reasons(item: dict[str, Any]) -> str:
    """A quarantine item's errors on one line (values were masked when they were recorded)."""
    return "; ".join(
        field_line(e.get("row"), e.get("line"), e["field"], error_value(e), e["expected"]) for e in item["errors"]
    )


def alert_fix(kind: str) -> str:
    """What a person does about an alert of ``kind`` (``inbox:corebank`` → the ``inbox`` advice)."""
    return ALERT_FIXES.get(kind.split(":", 1)[0], "see the message, then `regbridge doctor`")


def needing_person(store: StateStore) -> list[dict[str, Any]]:
    """The loans only a person can move on: refused (with the reason), 补正 (with the deadline),
    quarantined (with the reason), fees due. One entry each, oldest first."""
    out: list[dict[str, Any]] = []

    def need(loan_no: str, reference: str, why: str, detail: str, since: str, **more: Any) -> None:
        out.append({"loan_no": loan_no, "reference": reference, "why": why, "detail": detail, "since": since, **more})

    open_items = store.quarantined()
    itemised = {q["reference"] for q in open_items if q["reference"]}  # an application held with an item: listed once
    for a in store.applications("rejected", "tracking", "quarantined"):
        decision = a.decision or {}
        if a.stage == "rejected":
            reason = decision.get("reason") or a.last_error or a.centre_status or ""
            need(a.loan_no, a.reference, "refused", reason, a.updated_at)
        elif a.centre_status == "correction_required":
            items = ", ".join(i.get("code", "") for i in (a.correction or {}).get("items", []))
            codes = [i.get("code", "") for i in (a.correction or {}).get("items", [])]
            need(a.loan_no, a.reference, "补正", f"deadline {a.deadline or '?'}: {items}", a.updated_at,
                 deadline=a.deadline, items=codes)  # fmt: skip
        elif a.fee_status == "unpaid":
            need(a.loan_no, a.reference, "fee due", f"{a.fee_total} 元", a.updated_at)
        elif a.stage == "quarantined" and a.reference not in itemised:
            why = a.last_error or "a certificate failed verification"
            need(a.loan_no, a.reference, "quarantined", why, a.updated_at)
    for q in open_items:
        reasons = quarantine_reasons(q)
        need(q["loan_no"] or "", q["reference"] or "", f"quarantine #{q['id']}", reasons, q["created_at"])
    return sorted(out, key=lambda e: str(e["since"]))


#: centre statuses of an application that registered (登簿 and after)
REGISTERED = ("recorded", "certificate_issued", "completed")
#: centre statuses of a decided application (registered, or ended without registering by the centre's act;
#: a withdrawal is the bank's own act and is not counted)
DECIDED = (*REGISTERED, "refused", "not_accepted", "cancelled", "voided")
#: a step that makes a registration not first-time: a 补正, a 不予受理 or a 不予登记 on the way
SETBACKS = ("correction_required", "refused", "not_accepted")


def first_time_acceptance(store: StateStore) -> dict[str, Any]:
    """The first-time acceptance figure (issue 24 item 3; HM Land Registry's "processed first time"): of the
    applications the centre decided, the share registered without any 补正 or refusal on the way.

    Answers ``{"decided", "registered", "first_time", "share"}`` (``share`` None before anything was decided).
    Three counting queries, whatever the number of applications; the refusals avoided are
    :func:`held_by_preflight`.
    """
    marks = ", ".join(f"'{s}'" for s in SETBACKS)
    clean = f"reference NOT IN (SELECT reference FROM transitions WHERE centre_status IN ({marks}))"
    registered_where = f"centre_status IN ({', '.join('?' * len(REGISTERED))})"
    decided = len(store.references(where=f"centre_status IN ({', '.join('?' * len(DECIDED))})", args=DECIDED))
    registered = len(store.references(where=registered_where, args=REGISTERED))
    first = len(store.references(where=f"{registered_where} AND {clean}", args=REGISTERED))
    return {
        "decided": decided,
        "registered": registered,
        "first_time": first,
        "share": round(first / decided, 4) if decided else None,
    }


def held_by_preflight(store: StateStore) -> int:
    """The refusals (and 补正) avoided: applications the register pre-flight held before sending
    (agent/pipeline/preflight.py; quarantine kind ``preflight``, open or since resolved). One counting query."""
    return len(store.references(where="reference IN (SELECT reference FROM quarantine WHERE kind = 'preflight')"))


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


#: the branch a collateral alert names first (``【长丰支行】…``: :func:`agent.pipeline.outbox.collateral_alert`)
ALERT_BRANCH = re.compile(r"^【([^】]+)】")


def alert_branch(message: str) -> str | None:
    """The branch (or institution) an alert's message names first, None when it names none."""
    named = ALERT_BRANCH.match(message or "")
    return named.group(1) if named else None


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
                field_line(e.get("row"), e.get("line"), e["field"], error_value(e), e["expected"])
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
        # several instances on one state: each one's id, host, leases, claims, and which one leads
        "instances": store.instances(),
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
        "first_time_acceptance": first_time_acceptance(store),
        "held_by_preflight": held_by_preflight(store),
        "calendar_warnings": [a["message"] for a in store.alerts() if a["kind"] == "calendar"],
        "certificates": {s: sum(1 for c in certs if c["stage"] == s) for s in sorted({c["stage"] for c in certs})},
        "paper_owed": len(store.paper_owed()),
        "alerts": [
            {"kind": a["kind"], "message": a["message"], "since": a["raised_at"], "fix": alert_fix(a["kind"]),
             "branch": alert_branch(a["message"])}
            for a in store.alerts()
        ],
        "inboxes": store.counts_by_inbox(),
        "needing_person": needing_person(store),
        "last_contact": store.get_meta("last_contact"),
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
