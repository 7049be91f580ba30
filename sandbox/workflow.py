"""The review workflow: 已提交 → 受理 / 补正 / 不予受理 → 审核 → 登簿 → 缮证 → 办结.

Each step is one call of :meth:`Workflow.step`; :meth:`Workflow.tick` runs the steps that are due
and enforces 补正 deadlines. Timing is :class:`Timing`: instant (``step_seconds=0``), stepwise
(a delay between steps), or manual (nothing moves until the admin advances it). A script per
``client_reference`` (set through the admin API) can force an outcome at a stage or hold an
application there, for tests that need a particular path.

The workflow is given what it works with (the ledger, the schedule, the accounts, the register,
the fee and certificate offices); it never reaches back into the :class:`sandbox.centre.Centre`
that composes them.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from sdk.models import (
    TRANSITIONS,
    ApplicationRecord,
    ApplicationStatus,
    CertificateDispatch,
    Correction,
    CorrectionItem,
    Decision,
    MaterialChecklist,
)

from .accounts import Accounts
from .errors import CentreError
from .events import EventFeed
from .fees import FeeOffice
from .issuance import CertificateOffice
from .ledger import Ledger
from .notices import NoticeOffice
from .register import Register
from .review import Finding, Issue, Scope, Verdict, accept, examine, record
from .schedule import Schedule, Timing
from .store import CHINA, Store, now_utc

__all__ = ["STAGES", "Timing", "Workflow"]

log = logging.getLogger("regbridge.sandbox")
RETRY_SECONDS = 5.0

S = ApplicationStatus
#: where a script may act: the status an application is in when the step runs
STAGES = {"acceptance": S.SUBMITTED, "review": S.ACCEPTED, "examination": S.UNDER_REVIEW, "issue": S.RECORDED}


class Workflow:
    """Moves submitted applications through review, one due step at a time."""

    def __init__(
        self,
        store: Store,
        *,
        schedule: Schedule,
        ledger: Ledger,
        events: EventFeed,
        accounts: Accounts,
        register: Register,
        checklists: dict[str, MaterialChecklist],
        fees: FeeOffice,
        certificates: CertificateOffice,
        notices: NoticeOffice | None = None,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.ledger = ledger
        self.events = events
        self.accounts = accounts
        self.register = register
        self.checklists = checklists
        self.fees = fees
        self.certificates = certificates
        #: issues the sealed notices of 受理, 不予受理, 补正 and 不予登记 (seed 003 (四))
        self.notices = notices
        #: what banks may apply for online (在建建筑物: excluded unless the centre opens it)
        self.scope = Scope()

    @property
    def timing(self) -> Timing:
        return self.schedule.timing

    # --- scheduling ---------------------------------------------------------------------

    def tick(self, now: float | None = None) -> int:
        """Run every step that is due and enforce deadlines; answer how many steps ran."""
        now = time.time() if now is None else now
        due = self.schedule.due(now)
        for row in due:
            self.schedule.unschedule(row["application_id"])
            try:
                self.step(row["institution_id"], row["application_id"])
            except Exception:  # a failed step is retried, never lost
                log.exception("step of %s failed; retrying in %ss", row["application_id"], RETRY_SECONDS)
                self.schedule.at(row["institution_id"], row["application_id"], time.time() + RETRY_SECONDS)
        self._deadlines()
        return len(due)

    def advance(self, institution_id: str, application_id: str) -> ApplicationRecord:
        """One step now, whatever the timing (the admin's button)."""
        self.schedule.unschedule(application_id)
        return self.step(institution_id, application_id, manual=True)

    # --- scripts ------------------------------------------------------------------------

    def _script(self, client_reference: str, stage: str) -> dict[str, Any] | None:
        row = self.store.one(
            "SELECT script FROM scripts WHERE client_reference = ? AND stage = ?", client_reference, stage
        )
        if row is None:
            return None
        script: dict[str, Any] = json.loads(row["script"])
        if script.get("outcome") != "hold":  # outcomes happen once; a hold lasts until removed
            self.store.execute("DELETE FROM scripts WHERE client_reference = ? AND stage = ?", client_reference, stage)
        return script

    def set_script(self, client_reference: str, stage: str, script: dict[str, Any]) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}")
        if script.get("outcome") not in ("hold", "correction", "not_accepted", "refused"):
            raise ValueError("outcome must be hold, correction, not_accepted or refused")
        if stage in ("review", "issue") and script["outcome"] != "hold":
            raise ValueError(f"at {stage} an application can only be held")
        self.store.execute(
            "INSERT OR REPLACE INTO scripts VALUES (?, ?, ?)",
            client_reference,
            stage,
            json.dumps(script, ensure_ascii=False),
        )

    def clear_script(self, client_reference: str, stage: str) -> None:
        self.store.execute("DELETE FROM scripts WHERE client_reference = ? AND stage = ?", client_reference, stage)

    @staticmethod
    def _scripted(script: dict[str, Any]) -> Verdict:
        findings = [
            Finding(i.get("code", "scripted"), i.get("reason", "scripted"), i.get("pointer"), i.get("material"))
            for i in script.get("items", [{"code": "scripted", "reason": script.get("reason", "按脚本处理")}])
        ]
        return Verdict(script["outcome"], findings)

    # --- the steps ----------------------------------------------------------------------

    def step(self, institution_id: str, application_id: str, *, manual: bool = False) -> ApplicationRecord:
        rec = self.ledger.load(institution_id, application_id)
        stage = next((name for name, status in STAGES.items() if status is rec.status), None)
        script = self._script(rec.client_reference, stage) if stage else None
        if script and script["outcome"] == "hold" and not manual:
            return rec
        if script and script["outcome"] == "hold":
            script = None
        if rec.status is S.SUBMITTED:
            with self.store.transaction():  # the decision and its sealed notice together
                forced = self._scripted(script) if script else None
                rec = self._notify(institution_id, self._acceptance(institution_id, rec, forced))
        elif rec.status is S.ACCEPTED:
            rec = self.ledger.transition(institution_id, rec, S.UNDER_REVIEW)
            self.schedule.schedule(institution_id, rec.application_id)
        elif rec.status is S.UNDER_REVIEW:
            with self.store.transaction():
                forced = self._scripted(script) if script else None
                rec = self._notify(institution_id, self._examination(institution_id, rec, forced))
        elif rec.status is S.RECORDED:
            rec = self._issue(institution_id, rec)
        elif rec.status is S.CERTIFICATE_ISSUED:
            rec = self.ledger.transition(institution_id, rec, S.COMPLETED, "办结")
        return rec

    def _notify(self, institution_id: str, rec: ApplicationRecord) -> ApplicationRecord:
        """The sealed notice a decision calls for: 受理凭证, 不予受理通知书, 不予登记通知书 or 补正通知书."""
        if self.notices is None:
            return rec
        if rec.status is S.ACCEPTED:
            self.notices.issue(institution_id, rec, "acceptance_receipt")
        elif rec.status in (S.NOT_ACCEPTED, S.REFUSED) and rec.decision is not None:
            kind = "not_accepted" if rec.status is S.NOT_ACCEPTED else "refusal"
            self.notices.issue(institution_id, rec, kind, number=rec.decision.notice_number,
                               reason_code=rec.decision.code, reason=rec.decision.reason)  # fmt: skip
        elif rec.status is S.CORRECTION_REQUIRED and rec.correction is not None:
            items = "；".join(i.reason for i in rec.correction.items)
            self.notices.issue(institution_id, rec, "correction", reason_code="correction", reason=items,
                               deadline=rec.correction.deadline)  # fmt: skip
        return rec

    def _decision(self, verdict: Verdict, kind: str) -> Decision:
        number = self.store.next_number(f"notice:{kind}")
        prefix = {"not_accepted": "不予受理告知书", "refused": "不予登记告知书"}[kind]
        return Decision(
            code=verdict.code,
            reason=verdict.reason,
            notice_number=f"{self.certificates.county.short}不动产{prefix}〔{now_utc():%Y}〕{number}号",
            decided_at=now_utc(),
        )

    def _correction(self, institution_id: str, rec: ApplicationRecord, verdict: Verdict) -> ApplicationRecord:
        now = now_utc()
        correction = Correction(
            requested_at=now,
            deadline=self.timing.correction_deadline(now),
            items=[
                CorrectionItem(code=f.material or "field", reason=f.reason, pointer=f.pointer) for f in verdict.findings
            ],
            message="请在补正期限内补正下列材料或内容；逾期未补正的，申请作废。",
        )
        rec = self.ledger.transition(institution_id, rec, S.CORRECTION_REQUIRED, "补正", correction=correction)
        self.events.emit(
            institution_id,
            "application.correction_requested",
            rec,
            {
                "deadline": correction.deadline.isoformat(),
                "items": [{"code": i.code, "pointer": i.pointer} for i in correction.items],
            },
        )
        return rec

    def _acceptance(self, institution_id: str, rec: ApplicationRecord, forced: Verdict | None) -> ApplicationRecord:
        inst = self.accounts.institution_row(institution_id)
        verdict = forced or accept(
            rec.application,
            self.register,
            institution_uscc=inst["uscc"],
            checklist=self.checklists[rec.type],
            scope=self.scope,
        )
        if verdict.outcome == "not_accepted":
            return self.ledger.transition(
                institution_id, rec, S.NOT_ACCEPTED, "不予受理", decision=self._decision(verdict, "not_accepted")
            )
        if verdict.outcome == "correction":
            return self._correction(institution_id, rec, verdict)
        rec = self.ledger.transition(institution_id, rec, S.ACCEPTED, "受理", correction=None)
        self.schedule.schedule(institution_id, rec.application_id)
        return rec

    def _examination(self, institution_id: str, rec: ApplicationRecord, forced: Verdict | None) -> ApplicationRecord:
        inst = self.accounts.institution_row(institution_id)
        verdict = forced or examine(rec.application, self.register, institution_uscc=inst["uscc"])
        if verdict.outcome == "correction":
            return self._correction(institution_id, rec, verdict)
        if verdict.outcome in ("refused", "not_accepted"):
            return self.ledger.transition(
                institution_id, rec, S.REFUSED, "不予登记", decision=self._decision(verdict, "refused")
            )
        units = [p.unit_id for p in rec.application.properties]
        with self.store.transaction():
            current = self._current_rights(units)
            recording = record(rec.application, self.register, rec.application_id)
            self.store.execute(
                "INSERT OR REPLACE INTO pending VALUES (?, ?)",
                rec.application_id,
                json.dumps(
                    {
                        "issues": [_issue_json(i) for i in recording.issues],
                        "cancelled": recording.cancelled,
                        # the entries this recording ended, restored should the centre void it (撤销)
                        "ended": sorted(current - self._current_rights(units)),
                    },
                    ensure_ascii=False,
                ),
            )
            rec = self.ledger.transition(institution_id, rec, S.RECORDED, "登簿")
            rec = self.fees.assess(institution_id, rec)  # the result is known: now the fee (seed 001 §3)
        self.schedule.schedule(institution_id, rec.application_id)
        return rec

    def _issue(self, institution_id: str, rec: ApplicationRecord) -> ApplicationRecord:
        if rec.fee_status == "unpaid":
            return rec  # 缮证 waits for the fee; the payment schedules the step again
        row = self.store.one("SELECT data FROM pending WHERE application_id = ?", rec.application_id)
        pending = json.loads(row["data"]) if row else {"issues": [], "cancelled": []}
        # one transaction: a failure part-way (a bad font, a full disk) leaves nothing half-issued
        with self.store.transaction():
            for number in pending["cancelled"]:
                self.certificates.supersede(number, None)
            self.store.execute("DELETE FROM pending WHERE application_id = ?", rec.application_id)
            if not pending["issues"]:
                return self.ledger.transition(institution_id, rec, S.COMPLETED, "办结(注销登记)")
            issue = self.certificates.issue_certificate
            ids = [issue(institution_id, rec, Issue(**_issue_args(i))) for i in pending["issues"]]
            dispatch = self._dispatch(rec)
            rec = self.ledger.transition(
                institution_id, rec, S.CERTIFICATE_ISSUED, "缮证", certificate_ids=ids, dispatch=dispatch
            )
        self.schedule.schedule(institution_id, rec.application_id)
        return rec

    @property
    def collection_office(self) -> str:
        """Where certificates are collected at the counter (seed 004: 受理窗口 5号窗口): the centre's own."""
        return f"{self.certificates.name} 5号窗口"

    def _dispatch(self, rec: ApplicationRecord) -> CertificateDispatch:
        """The applicant's choice of delivery honoured at 缮证: a mailing with its tracking number, or the
        counter and the days to collect; electronic (also the default) is the download alone."""
        choice = rec.application.delivery
        method = choice.method if choice is not None else "electronic"
        now = now_utc()
        if method == "post":
            serial = self.store.next_number("mailing") % 100_000_000
            return CertificateDispatch(method="post", carrier="EMS", tracking_number=_s10("EA", serial), posted_at=now)
        if method == "collection":
            start = (now.astimezone(CHINA) + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
            while start.weekday() >= 5:  # the counter opens on working days
                start += timedelta(days=1)
            return CertificateDispatch(method="collection", office=self.collection_office, collect_from=start,
                                       collect_until=start + timedelta(days=30))  # fmt: skip
        return CertificateDispatch(method="electronic")

    def _current_rights(self, units: list[str]) -> set[str]:
        return {r.id for u in units for r in self.register.rights(u, current_only=True)}

    # --- voiding ------------------------------------------------------------------------

    def void(self, institution_id: str, application_id: str, reason: str) -> ApplicationRecord:
        """撤销: the centre annuls a recorded entry before 缮证 (it was made in error).

        The register is put back as it was before the recording (the entries it wrote are cancelled, the
        ones it ended are current again), no certificate is issued, and the fee is settled: an unpaid
        notice cancelled, a paid one refunded (``application_voided``). docs/api.md §6, §8.

        Raises:
            CentreError: 409 ``invalid_state`` unless the application is recorded (登簿) and not yet issued.
        """
        rec = self.ledger.load(institution_id, application_id)
        if S.VOIDED not in TRANSITIONS[rec.status]:
            raise CentreError(
                409, "invalid_state", f"only a recorded application can be voided (status {rec.status.value})"
            )
        self.schedule.unschedule(application_id)
        number = self.store.next_number("notice:voided")
        decision = Decision(
            code="voided",
            reason=reason,
            notice_number=f"{self.certificates.county.short}不动产撤销登记决定书〔{now_utc():%Y}〕{number}号",
            decided_at=now_utc(),
        )
        with self.store.transaction():
            row = self.store.one("SELECT data FROM pending WHERE application_id = ?", application_id)
            pending = json.loads(row["data"]) if row else {}
            self.store.execute(
                "UPDATE rights SET status = 'cancelled', note = ? WHERE application_id = ? AND status = 'current'",
                f"撤销登记: {reason}",
                application_id,
            )
            for right_id in pending.get("ended", []):
                self.store.execute("UPDATE rights SET status = 'current', note = NULL WHERE id = ?", right_id)
            self.store.execute("DELETE FROM pending WHERE application_id = ?", application_id)
            rec = self.ledger.transition(institution_id, rec, S.VOIDED, f"撤销: {reason}", decision=decision)
            rec = self.fees.void(institution_id, rec)
        self.store.audit("centre", "application.void", application_id, "ok")
        return rec

    # --- deadlines ----------------------------------------------------------------------

    def _deadlines(self) -> None:
        rows = self.store.all("SELECT id, institution_id FROM applications WHERE status = 'correction_required'")
        now = now_utc()
        for row in rows:
            rec = self.ledger.load(row["institution_id"], row["id"])
            corr = rec.correction
            if corr is None:
                continue
            if corr.deadline <= now:
                self.ledger.transition(row["institution_id"], rec, S.CANCELLED, "补正期限届满未补正，申请作废")
                continue
            left = (corr.deadline - now).total_seconds()
            window = (corr.deadline - corr.requested_at).total_seconds()
            if left <= window * self.timing.warning_fraction:
                warned = self.store.one(
                    "SELECT 1 FROM deadline_warnings WHERE application_id = ? AND deadline = ?",
                    rec.application_id,
                    corr.deadline.isoformat(),
                )
                if not warned:
                    self.store.execute(
                        "INSERT INTO deadline_warnings VALUES (?, ?)", rec.application_id, corr.deadline.isoformat()
                    )
                    self.events.emit(
                        row["institution_id"],
                        "application.correction_deadline_near",
                        rec,
                        {"deadline": corr.deadline.isoformat(), "seconds_left": int(left)},
                    )


def _issue_json(issue: Issue) -> dict[str, Any]:
    return {
        "right_or_matter": issue.right_or_matter,
        "right_ids": list(issue.rights),
        "holders": issue.holders,
        "obligors": issue.obligors,
        "terms": issue.terms,
        "notes": issue.notes,
        "supersedes": issue.supersedes,
    }


def _issue_args(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "right_or_matter": data["right_or_matter"],
        "rights": data["right_ids"],
        "holders": data["holders"],
        "obligors": data["obligors"],
        "terms": data["terms"],
        "notes": data["notes"],
        "supersedes": data["supersedes"],
    }


def _s10(prefix: str, serial: int) -> str:
    """A UPU S10 item number (EMS 运单号): two letters, eight digits, the check digit, ``CN``."""
    digits = f"{serial:08d}"
    total = sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    check = {10: 0, 11: 5}.get(check, check)
    return f"{prefix}{digits}{check}CN"
