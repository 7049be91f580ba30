"""登记资料查询: a bank's query of a unit's current rights, on the right holder's authorisation (seed 001 §3, §6.2).

A query names the unit by 不动产单元号, 不动产权证书号 or 坐落 (seed 002 §2.1.7). Its authorisation is checked
as the bank's agent checks it (:meth:`sdk.models.QueryAuthorisation.problems`: signed, not in the future,
within its validity period, for the mortgage business only) and against the register: the person authorising
must be a right holder of the unit. A refused query answers 422 (403 for a non-owner) with every reason.

The answer (查询结果) is signed by the centre's key (:meth:`sandbox.pki.CentreKeys.sign_detached`; verified by
:func:`sdk.certificates.verify_query_result`) and names its sealed document (``document_id``): the 查询结果
(权属查询证明) issued by the notice office as a document of kind ``query_result`` (:meth:`sandbox.notices.
NoticeOffice.issue_query_result`), sealed and served as the centre's notices and certificates (OFD in ``gm``,
PDF/PAdES in ``intl``; ``GET /v1/notices/{id}`` and ``/content``). Names of owners the query does not concern are
masked (:func:`sdk.privacy.mask_name`); the sealed document shows no names.

痕迹管理 (seed 001 §6.2): every query, answered or refused, is in ``query_trace`` with who asked (institution,
operator), why (purpose, the authorisation's number, its masked 授权人, its period and 用途), what it named,
what was shown (the rights' kinds, certificate numbers and ranks; flags) or why it was refused; the admin lists
and exports it (``GET /admin/v1/property-queries``, ``regbridge sandbox admin queries``).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sdk.models import PropertyQuery, PropertyQueryResult, PropertyRight
from sdk.privacy import mask_id, mask_name
from sdk.register_checks import owner_digest

from .accounts import Accounts
from .errors import CentreError
from .notices import NoticeOffice
from .pki import CentreKeys
from .register import Register
from .store import Store, new_id, now_utc

__all__ = ["TRACE_COLUMNS", "PropertyQueries"]

#: the trace's columns, in the order the export writes them (no plain names or ID numbers)
TRACE_COLUMNS = [
    "trace_id", "at", "institution_id", "operator_id", "outcome", "query_id", "key_kind", "key_value", "unit_id",
    "purpose", "authorisation_reference", "authoriser", "authorisation_purpose", "signed_at", "valid_from",
    "valid_until", "shown", "reasons",
]  # fmt: skip


#: the days an admin types (as the bank's agent reads its options and exports: agent.mapping.profile.DATE_FORMATS)
_DAYS = ("%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d", "%Y%m%d")


def trace_bound(text: str) -> str:
    """``since`` as an admin types it — ISO 8601 (China time unless an offset), 2026/11/30, 2026年11月30日,
    2026.11.30, 20261130, or such a day and a clock time (2026/11/30 09:00) — as the trace stores times (UTC ISO),
    so that it compares as a time: a ``+08:00`` time or a ``2026/11/30`` compared as text selected the wrong rows.

    Raises:
        ValueError: none of these (the message says what was expected).
    """
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    typed = text.strip()
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(typed)
    except ValueError:
        day, _, clock = typed.partition(" ")
        for fmt in _DAYS:
            for form, value in ((f"{fmt} %H:%M:%S", typed), (f"{fmt} %H:%M", typed), (fmt, day if not clock else "")):
                try:
                    moment = datetime.strptime(value, form)
                    break
                except ValueError:
                    continue
            if moment is not None:
                break
    if moment is None:
        raise ValueError(
            f"since {text!r}：应为日期或时间，如 2026-11-30、2026/11/30、2026年11月30日、2026/11/30 09:00 或 "
            "2026-11-30T09:00+08:00"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    return moment.astimezone(UTC).isoformat()


class PropertyQueries:
    def __init__(
        self, store: Store, *, register: Register, accounts: Accounts, keys: CentreKeys, notices: NoticeOffice
    ) -> None:
        self.store = store
        self.notices = notices
        self.register = register
        self.accounts = accounts
        self.keys = keys

    def query_property(self, institution_id: str, query: PropertyQuery) -> PropertyQueryResult:
        """Answer the unit's current rights, signed; record the query (answered or refused) in the trace.

        Raises:
            CentreError: 403 when the operator is not the institution's or the person authorising holds no right
                of the unit (``authorisation_not_owner``), 422 for an authorisation expired, future-dated, not yet
                valid or for another purpose (each reason in ``errors``), 404 for an unknown unit.
        """
        self.accounts.check_operator(institution_id, query.operator_id, "/operator_id")
        now = now_utc()
        problems = query.authorisation.problems(now=now)
        if problems:
            self._trace(institution_id, query, now, None, None, None, [(p.code, p.reason) for p in problems])
            raise CentreError(
                422,
                "validation_failed",
                "the authorisation does not allow this query: " + "; ".join(p.code for p in problems),
                errors=[{"code": p.code, "detail": p.reason, "pointer": p.pointer} for p in problems],
            )
        unit = self._unit(query)
        if unit is None:
            self._trace(institution_id, query, now, None, None, None, [("not_found", "no such unit")])
            raise CentreError(404, "not_found", "no such unit, title certificate or location in the register")
        # 权利人: the owners, and the holders of a current mortgage or notice on the unit (a mortgagee may query its
        # own right without the owner's authorisation: the agent's collateral watch does)
        holders = {r.holder_code for r in self.register.rights(unit.unit_id, current_only=True)
                   if r.kind in ("mortgage", "notice") and r.holder_code}  # fmt: skip
        owners = query.authorisation.problems(now=now, owner_ids=unit.owner_ids() | holders)
        if owners:
            self._trace(institution_id, query, now, unit.unit_id, None, None, [(p.code, p.reason) for p in owners])
            raise CentreError(
                403,
                "forbidden",
                "the authorising applicant is not a right holder of this unit",
                errors=[{"code": p.code, "detail": p.reason, "pointer": p.pointer} for p in owners],
            )
        applicant = query.authorisation.applicant.id_number
        bank_uscc = self.accounts.institution_row(institution_id)["uscc"]
        rights = []
        for r in self.register.rights(unit.unit_id, current_only=True):
            named = r.holder_code in (applicant, bank_uscc)
            rights.append(
                PropertyRight(
                    kind=r.kind,
                    right_id=r.id,
                    certificate_number=r.certificate_number,
                    holder=r.holder_name if named or r.kind != "ownership" else mask_name(r.holder_name or ""),
                    rank=r.rank,
                    amount=r.amount if r.method == "1" else r.maximum_amount,
                    registered_at=r.registered_at,
                    note=r.note,
                )
            )
        qid = new_id("qry")
        result = PropertyQueryResult(
            query_id=qid,
            unit_id=unit.unit_id,
            location=unit.location,
            property_type=unit.property_type,
            rights=rights,
            seized=any(r.kind == "seizure" for r in rights),
            objection=any(r.kind == "objection" for r in rights),
            mortgaged=any(r.kind == "mortgage" for r in rights),
            title_certificate=unit.title_certificate,
            owner_digests=sorted(owner_digest(qid, o) for o in unit.owner_ids()),
            answered_at=now,
            operator_id=query.operator_id,
            authorisation_reference=query.authorisation.reference,
            purpose=query.purpose,
        )
        # the sealed 查询结果 (权属查询证明), decided now in the same transaction, drawn and sealed when first read
        with self.store.transaction():
            document = self.notices.issue_query_result(institution_id, result)
        result = result.model_copy(update={"document_id": document})
        signature = self.keys.sign_detached(result.model_dump(mode="json", exclude={"signature"}))
        result = PropertyQueryResult.model_validate({**result.model_dump(mode="json"), "signature": signature})
        self.store.execute(
            "INSERT INTO queries VALUES (?, ?, ?, ?, ?, ?, ?)",
            qid,
            institution_id,
            query.operator_id,
            unit.unit_id,
            query.authorisation.reference,
            query.purpose,
            now.isoformat(),
        )
        shown = {
            "rights": [
                {"kind": r.kind, "certificate_number": r.certificate_number, "rank": r.rank} for r in result.rights
            ],
            "seized": result.seized,
            "objection": result.objection,
            "mortgaged": result.mortgaged,
        }
        self._trace(institution_id, query, now, unit.unit_id, qid, shown, [])
        self.store.audit(institution_id, "property.query", qid, "ok")
        return result

    def _unit(self, query: PropertyQuery) -> Any:
        if query.unit_id:
            return self.register.unit(query.unit_id)
        if query.title_certificate:
            row = self.store.one("SELECT unit_id FROM units WHERE title_certificate = ?", query.title_certificate)
        else:
            row = self.store.one("SELECT unit_id FROM units WHERE location = ?", (query.location or "").strip())
        return self.register.unit(row["unit_id"]) if row else None

    def _trace(
        self,
        institution_id: str,
        query: PropertyQuery,
        at: datetime,
        unit_id: str | None,
        query_id: str | None,
        shown: dict[str, Any] | None,
        reasons: list[tuple[str, str]],
    ) -> None:
        auth = query.authorisation
        kind, value = next(
            (k, v) for k, v in (("unit_id", query.unit_id), ("title_certificate", query.title_certificate),
                                ("location", query.location)) if v
        )  # fmt: skip
        self.store.execute(
            "INSERT INTO query_trace VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            new_id("qtr"),
            at.isoformat(),
            institution_id,
            query.operator_id,
            "answered" if query_id else "refused",
            query_id,
            kind,
            str(value),
            unit_id,
            query.purpose,
            auth.reference,
            f"{mask_name(auth.applicant.name)} ({mask_id(auth.applicant.id_number)})",
            auth.purpose,
            auth.signed_at.isoformat(),
            auth.valid_from.isoformat() if auth.valid_from else None,
            auth.valid_until.isoformat() if auth.valid_until else None,
            json.dumps(shown, ensure_ascii=False) if shown is not None else None,
            json.dumps([{"code": c, "reason": r} for c, r in reasons], ensure_ascii=False) if reasons else None,
        )

    def trace(
        self, *, institution_id: str | None = None, since: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The query trace, oldest first: every query an institution made (``since``, inclusive: as
        :func:`trace_bound` reads it).

        Raises:
            ValueError: ``since`` is not a date or time (the message says what was expected).
        """
        sql, args = "SELECT * FROM query_trace WHERE 1 = 1", list[Any]()
        if institution_id:
            sql, args = sql + " AND institution_id = ?", [*args, institution_id]
        if since:
            sql, args = sql + " AND at >= ?", [*args, trace_bound(since)]
        rows = self.store.all(sql + " ORDER BY at, trace_id LIMIT ?", *args, limit)
        out = []
        for r in rows:
            item = dict(r)
            item["shown"] = json.loads(item["shown"]) if item["shown"] else None
            item["reasons"] = json.loads(item["reasons"]) if item["reasons"] else []
            out.append(item)
        return out

    @staticmethod
    def trace_csv(rows: list[dict[str, Any]]) -> bytes:
        """The trace as CSV (UTF-8 with a BOM, for a spreadsheet), one query a line."""
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(TRACE_COLUMNS)
        for r in rows:
            cells = []
            for c in TRACE_COLUMNS:
                v = r.get(c)
                text = "" if v is None else str(v)
                if isinstance(v, dict | list):
                    text = json.dumps(v, ensure_ascii=False)
                # a cell a spreadsheet would run as a formula is neutralised (OWASP CSV injection)
                cells.append("'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text)
            writer.writerow(cells)
        return ("\ufeff" + buf.getvalue()).encode("utf-8")
