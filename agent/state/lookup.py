"""Finding a loan and telling its whole story: ``regbridge search``, ``regbridge show`` and the web console.

Search keys (the ``search_keys`` table): an application is found by its loan number (贷款编号), its
reference (业务编号), the centre's application id (受理号), the number of a certificate issued for it
(不动产登记证明号), a 不动产单元号 (GB/T 37346-2019) in it, or the ID number of one of its parties.
ID numbers are personal data: only an HMAC-SHA256 of the normalised number is kept, with a key
derived from the agent secret (:func:`person_key`), so the table says nothing without the secret and
an ID number is never stored, logged or printed in full (:func:`sdk.privacy.mask_id` where shown).

A loan's history (:func:`loan_history`) gathers, for each of its applications, the export rows it
came from, its stage and centre-status transitions with their times, the centre's notices (补正,
refusal), fees, certificates, receipt lines, quarantine items and the audit records that name it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.state.status import quarantine_reasons
from agent.state.store import StateStore
from connectors.readers import rows_label
from sdk.privacy import mask_name, mask_text

__all__ = [
    "Match",
    "audit_records",
    "loan_history",
    "looks_like_id_number",
    "masked_query",
    "person_digest",
    "person_key",
    "search",
    "search_keys_of",
]

#: GB/T 37346-2019 不动产单元号 (domain.md: 28 characters, no check digit)
UNIT_NUMBER = re.compile(r"^[0-9]{12}[GJZ][ABSXCDEFGHWY][0-9]{5}[FLQW][0-9]{8}$")
_CERT_NUMBER = re.compile(r"不动产(?:证明|权)第")
_ID_LIKE = re.compile(r"^[0-9]{17}[0-9Xx]$|^[0-9A-HJ-NPQRTUWXY]{18}$")


def person_key(secret: bytes) -> bytes:
    """The key ID numbers are hashed with: derived from the agent secret, for this use only."""
    return hmac.new(secret, b"regbridge/search-keys/person/v1", hashlib.sha256).digest()


def _normalise_id(number: str) -> str:
    # full-width digits and letters (real exports carry them), spaces or dashes between groups, a lower-case x
    text = "".join(chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c for c in number)
    return re.sub(r"[\s\-\u2010-\u2015]+", "", text).upper()


def masked_query(query: str) -> str:
    """What was searched, fit for a screen or the audit log: an ID number (however typed: spaces, dashes,
    full-width digits) or a person's name (no key is Chinese characters alone: staff try a borrower's name)
    masked as everywhere, anything else through :func:`mask_text`."""
    if re.fullmatch(r"[\u4e00-\u9fff·•]{2,}", query.strip()):
        return mask_name(query)
    return mask_text(_normalise_id(query) if looks_like_id_number(query) else query)


def person_digest(key: bytes, id_number: str) -> str:
    """HMAC-SHA256 (hex) of the normalised ID number: what is stored and compared, never the number."""
    return hmac.new(key, _normalise_id(id_number).encode(), hashlib.sha256).hexdigest()


def search_keys_of(key: bytes) -> Any:
    """The indexer :class:`~agent.state.sqlite.SQLiteStore` is given: ``payload`` → ``[(kind, value)]``.

    ``("unit", 不动产单元号)`` for each unit number in the payload, ``("person", digest)`` for each
    party's ``id_number`` (persons and organisations alike).
    """

    def keys(payload: dict[str, Any]) -> list[tuple[str, str]]:
        found: set[tuple[str, str]] = set()

        def walk(value: Any, name: str = "") -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, k)
            elif isinstance(value, list):
                for v in value:
                    walk(v, name)
            elif isinstance(value, str):
                if name == "id_number" and value.strip():
                    found.add(("person", person_digest(key, value)))
                elif UNIT_NUMBER.match(value.strip()):
                    found.add(("unit", value.strip()))

        walk(payload)
        return sorted(found)

    return keys


def looks_like_id_number(query: str) -> bool:
    """Is ``query`` shaped like an 18-character ID number or USCC (full-width digits and spaces allowed)?"""
    return bool(_ID_LIKE.match(_normalise_id(query)))


@dataclass
class Match:
    """One application found: how it was found, and what identifies it on a screen."""

    reference: str
    loan_no: str
    by: str  # loan_no, reference, application_id, certificate_number, unit, person
    stage: str
    centre_status: str | None


def search(store: StateStore, query: str, key: bytes | None = None, *, by: str | None = None) -> list[Match]:
    """The applications ``query`` names, by every key it could be (or only ``by``).

    ``key`` (:func:`person_key`) is needed to search by ID number; without it, that key is skipped.
    """
    q = query.strip()
    hits: dict[str, str] = {}

    def add(refs: list[str], how: str) -> None:
        for ref in refs:
            hits.setdefault(ref, how)

    kinds = [by] if by else ["loan_no", "reference", "application_id", "certificate_number", "unit", "person"]
    for kind in kinds:
        if kind == "loan_no":
            add(store.loan_references(q), kind)
        elif kind == "reference" and store.application(q) is not None:
            add([q], kind)
        elif kind == "application_id":
            app = store.by_centre_id(q)
            if app is not None:
                add([app.reference], kind)
        elif kind == "certificate_number":
            cert = store.certificate_by_number(q) or (
                store.certificate_by_number(q.replace("（", "(").replace("）", ")")) if _CERT_NUMBER.search(q) else None
            )
            if cert is not None:
                add([cert["reference"]], kind)
        elif kind == "unit":
            add(store.find_by_key("unit", q.upper()), kind)
        elif kind == "person" and key is not None and (by == "person" or _ID_LIKE.match(_normalise_id(q))):
            add(store.find_by_key("person", person_digest(key, q)), kind)
    out = []
    for ref, how in hits.items():
        app = store.application(ref)
        if app is not None:
            out.append(Match(ref, app.loan_no, how, app.stage, app.centre_status))
    return out


def audit_records(path: Path, targets: set[str] | None = None) -> list[dict[str, Any]]:
    """The audit log's records (all, or those whose target is one of ``targets``); torn lines skipped."""
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            if targets is None or rec.get("target") in targets:
                out.append(rec)
    return out


@dataclass
class LoanHistory:
    loan_no: str
    applications: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)


def _rows(source: list[dict[str, Any]]) -> list[str]:
    return [f"{s.get('file')} {row_ref(s.get('rows') or [])}".strip() for s in source]


def row_ref(rows: Any) -> str:
    """Export rows in the one format used everywhere (receipts, status, console): ``第3行``, ``第3行、第4行``."""
    return rows_label(rows)


def loan_history(store: StateStore, loan_no: str, audit_log: Path | None = None) -> LoanHistory:
    """Everything that happened to one loan, each with its time; empty when the loan is unknown.

    Args:
        loan_no: the loan number, or one of its applications' references.
        audit_log: the agent's audit log, whose records naming the applications join the timeline.
    """
    refs = store.loan_references(loan_no)
    if not refs and store.application(loan_no) is not None:
        app0 = store.application(loan_no)
        assert app0 is not None
        loan_no = app0.loan_no
        refs = store.loan_references(loan_no)
    history = LoanHistory(loan_no)
    timeline: list[dict[str, Any]] = []
    for ref in refs:
        app = store.application(ref)
        if app is None:
            continue
        certs = store.certificates(reference=ref)
        receipts = store.receipts(ref)
        decision = app.decision or {}
        history.applications.append(
            {
                "reference": ref,
                "type": app.type,
                "inbox": app.inbox,
                "stage": app.stage,
                "centre_status": app.centre_status,
                "application_id": app.application_id,
                "rows": _rows(app.source),
                "operator": (app.payload.get("declaration") or {}).get("operator_id"),
                "attempts": app.attempts,
                "last_error": mask_text(app.last_error or "") or None,
                "correction": {
                    "deadline": app.deadline,
                    "items": [i.get("code") for i in (app.correction or {}).get("items", [])],
                }
                if app.correction
                else None,
                "decision": {"status": decision.get("status"), "reason": decision.get("reason")} if decision else None,
                "fee": {"amount": app.fee_total, "status": app.fee_status} if app.fee_total else None,
                "paper": app.paper_status,
                "certificates": [
                    {
                        "certificate_id": c["certificate_id"],
                        "number": c["certificate_number"],
                        "stage": c["stage"],
                        "location": c["location"],
                        "error": c["error"],
                        "superseded_by": c["superseded_by"],
                    }
                    for c in certs
                ],
                "created_at": app.created_at,
                "updated_at": app.updated_at,
            }
        )
        for t in store.transitions(ref):
            what = t["stage"] + (f" / {t['centre_status']}" if t.get("centre_status") else "")
            timeline.append({"at": t["at"], "reference": ref, "kind": "stage", "what": what, "note": t.get("note"),
                             "stage": t["stage"], "centre_status": t.get("centre_status")})  # fmt: skip
        for c in certs:
            timeline.append(
                {"at": c["created_at"], "reference": ref, "kind": "certificate", "what": "issued",
                 "note": c["certificate_number"] or c["certificate_id"]}
            )  # fmt: skip
        for r in receipts:
            p = r["payload"]
            timeline.append(
                {"at": r["created_at"], "reference": ref, "kind": "receipt", "what": p.get("event") or r["kind"],
                 "note": f"batch {r['batch']}" if r.get("batch") else "not yet written",
                 "event": p.get("event") or r["kind"], "receipt_status": p.get("status"), "batch": r.get("batch")}
            )  # fmt: skip
    for q in store.quarantined(None):
        if q["loan_no"] == loan_no or (q["reference"] and q["reference"] in refs):
            item = {
                "id": q["id"],
                "kind": q["kind"],
                "status": q["status"],
                "file": q["path"],
                "row": row_ref(q["row"]),
                "errors": [mask_text(quarantine_reasons({"errors": [e]})) for e in q["errors"]],
                "created_at": q["created_at"],
                "resolved_at": q["resolved_at"],
            }
            history.quarantine.append(item)
            timeline.append(
                {"at": q["created_at"], "reference": q["reference"] or "", "kind": "quarantine",
                 "what": f"quarantined ({q['kind']}) #{q['id']}", "note": "; ".join(item["errors"]),
                 "item": q["id"], "qkind": q["kind"], "reasons": "；".join(item["errors"])}
            )  # fmt: skip
            if q["resolved_at"]:
                timeline.append(
                    {"at": q["resolved_at"], "reference": q["reference"] or "", "kind": "quarantine",
                     "what": f"quarantine #{q['id']} {q['status']}", "note": None,
                     "item": q["id"], "status": q["status"], "resolved": True}
                )  # fmt: skip
    if audit_log is not None and refs:
        for rec in audit_records(audit_log, set(refs)):
            detail = rec.get("detail") or {}
            note = ", ".join(f"{k}={v}" for k, v in detail.items())
            timeline.append(
                {"at": rec.get("at"), "reference": rec.get("target"), "kind": "audit",
                 "what": f"{rec.get('action')} ({rec.get('outcome')})", "note": note or None,
                 "actor": rec.get("actor"), "action": rec.get("action"), "outcome": rec.get("outcome"),
                 "detail": detail}
            )  # fmt: skip
    history.timeline = sorted(timeline, key=lambda e: str(e["at"]))
    return history
