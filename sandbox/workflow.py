"""The review workflow: 已提交 → 受理 / 补正 / 不予受理 → 审核 → 登簿 → 缮证 → 办结.

Each step is one call of :meth:`Workflow.step`; :meth:`Workflow.tick` runs the steps that are due
and enforces 补正 deadlines. Timing is :class:`Timing`: instant (``step_seconds=0``), stepwise
(a delay between steps), or manual (nothing moves until the admin advances it). A script per
``client_reference`` (set through the admin API) can force an outcome at a stage or hold an
application there, for tests that need a particular path.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sdk.models import (
    ApplicationRecord,
    ApplicationStatus,
    Correction,
    CorrectionItem,
    Decision,
    FeeItem,
    FeeNotice,
)

from .review import Finding, Issue, Verdict, accept, examine, record
from .store import now_utc

if TYPE_CHECKING:
    from .centre import Centre

__all__ = ["STAGES", "Timing", "Workflow"]

log = logging.getLogger("regbridge.sandbox")
RETRY_SECONDS = 5.0

S = ApplicationStatus
#: where a script may act: the status an application is in when the step runs
STAGES = {"acceptance": S.SUBMITTED, "review": S.ACCEPTED, "examination": S.UNDER_REVIEW, "issue": S.RECORDED}


@dataclass
class Timing:
    """How fast the centre works.

    Args:
        step_seconds: delay before each step; 0 moves an application as soon as the worker wakes.
        correction_days: time the bank has to answer a 补正 (a real centre: 15 days), may be fractional.
        warning_fraction: warn (``application.correction_deadline_near``) when this share of the time is left.
        manual: nothing moves until advanced (admin API / :meth:`Workflow.advance`).
    """

    step_seconds: float = 0.0
    correction_days: float = 15.0
    warning_fraction: float = 0.2
    manual: bool = False


class Workflow:
    def __init__(self, centre: Centre, timing: Timing) -> None:
        self.centre = centre
        self.timing = timing

    @property
    def store(self) -> Any:
        return self.centre.store

    # --- scheduling ---------------------------------------------------------------------

    def schedule(self, institution_id: str, application_id: str, *, force: bool = False) -> None:
        if self.timing.manual and not force:
            return
        self.store.execute(
            "INSERT OR REPLACE INTO schedule VALUES (?, ?, ?)",
            application_id,
            institution_id,
            time.time() + (0 if force else self.timing.step_seconds),
        )

    def unschedule(self, application_id: str) -> None:
        self.store.execute("DELETE FROM schedule WHERE application_id = ?", application_id)

    def tick(self, now: float | None = None) -> int:
        """Run every step that is due and enforce deadlines; answer how many steps ran."""
        now = time.time() if now is None else now
        due = self.store.all("SELECT application_id, institution_id FROM schedule WHERE due_at <= ?", now)
        for row in due:
            self.unschedule(row["application_id"])
            try:
                self.step(row["institution_id"], row["application_id"])
            except Exception:  # a failed step is retried, never lost
                log.exception("step of %s failed; retrying in %ss", row["application_id"], RETRY_SECONDS)
                self.store.execute(
                    "INSERT OR REPLACE INTO schedule VALUES (?, ?, ?)",
                    row["application_id"],
                    row["institution_id"],
                    time.time() + RETRY_SECONDS,
                )
        self._deadlines()
        return len(due)

    def advance(self, institution_id: str, application_id: str) -> ApplicationRecord:
        """One step now, whatever the timing (the admin's button)."""
        self.unschedule(application_id)
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
        c = self.centre
        rec = c.get_application(institution_id, application_id)
        stage = next((name for name, status in STAGES.items() if status is rec.status), None)
        script = self._script(rec.client_reference, stage) if stage else None
        if script and script["outcome"] == "hold" and not manual:
            return rec
        if script and script["outcome"] == "hold":
            script = None
        if rec.status is S.SUBMITTED:
            rec = self._acceptance(institution_id, rec, self._scripted(script) if script else None)
        elif rec.status is S.ACCEPTED:
            rec = c.transition(institution_id, rec, S.UNDER_REVIEW)
            self.schedule(institution_id, rec.application_id)
        elif rec.status is S.UNDER_REVIEW:
            rec = self._examination(institution_id, rec, self._scripted(script) if script else None)
        elif rec.status is S.RECORDED:
            rec = self._issue(institution_id, rec)
        elif rec.status is S.CERTIFICATE_ISSUED:
            rec = c.transition(institution_id, rec, S.COMPLETED, "办结")
        return rec

    def _decision(self, verdict: Verdict, kind: str) -> Decision:
        number = self.store.next_number(f"notice:{kind}")
        prefix = {"not_accepted": "不予受理告知书", "refused": "不予登记告知书"}[kind]
        return Decision(
            code=verdict.code,
            reason=verdict.reason,
            notice_number=f"长不动产{prefix}〔{now_utc():%Y}〕{number}号",
            decided_at=now_utc(),
        )

    def _correction(self, institution_id: str, rec: ApplicationRecord, verdict: Verdict) -> ApplicationRecord:
        now = now_utc()
        correction = Correction(
            requested_at=now,
            deadline=now + timedelta(days=self.timing.correction_days),
            items=[
                CorrectionItem(code=f.material or "field", reason=f.reason, pointer=f.pointer) for f in verdict.findings
            ],
            message="请在补正期限内补正下列材料或内容；逾期未补正的，申请作废。",
        )
        rec = self.centre.transition(institution_id, rec, S.CORRECTION_REQUIRED, "补正", correction=correction)
        self.centre.emit(
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
        c = self.centre
        inst = c.institution_row(institution_id)
        verdict = forced or accept(
            rec.application,
            c.register,
            institution_uscc=inst["uscc"],
            operators=c.operator_ids(institution_id),
            checklist=c.checklists[rec.type],
        )
        if verdict.outcome == "not_accepted":
            return c.transition(
                institution_id, rec, S.NOT_ACCEPTED, "不予受理", decision=self._decision(verdict, "not_accepted")
            )
        if verdict.outcome == "correction":
            return self._correction(institution_id, rec, verdict)
        rec = c.transition(institution_id, rec, S.ACCEPTED, "受理", correction=None)
        rec = self._assess(institution_id, rec)
        self.schedule(institution_id, rec.application_id)
        return rec

    def _examination(self, institution_id: str, rec: ApplicationRecord, forced: Verdict | None) -> ApplicationRecord:
        c = self.centre
        inst = c.institution_row(institution_id)
        verdict = forced or examine(rec.application, c.register, institution_uscc=inst["uscc"])
        if verdict.outcome == "correction":
            return self._correction(institution_id, rec, verdict)
        if verdict.outcome in ("refused", "not_accepted"):
            return c.transition(institution_id, rec, S.REFUSED, "不予登记", decision=self._decision(verdict, "refused"))
        with self.store.transaction():
            recording = record(rec.application, c.register, rec.application_id)
            self.store.execute(
                "INSERT OR REPLACE INTO pending VALUES (?, ?)",
                rec.application_id,
                json.dumps(
                    {
                        "issues": [_issue_json(i) for i in recording.issues],
                        "cancelled": recording.cancelled,
                    },
                    ensure_ascii=False,
                ),
            )
            rec = c.transition(institution_id, rec, S.RECORDED, "登簿")
        self.schedule(institution_id, rec.application_id)
        return rec

    def _issue(self, institution_id: str, rec: ApplicationRecord) -> ApplicationRecord:
        c = self.centre
        if rec.fee_status == "unpaid":
            return rec  # 缮证 waits for the fee; the payment schedules the step again
        row = self.store.one("SELECT data FROM pending WHERE application_id = ?", rec.application_id)
        pending = json.loads(row["data"]) if row else {"issues": [], "cancelled": []}
        # one transaction: a failure part-way (a bad font, a full disk) leaves nothing half-issued
        with self.store.transaction():
            for number in pending["cancelled"]:
                c.supersede(number, None)
            self.store.execute("DELETE FROM pending WHERE application_id = ?", rec.application_id)
            if not pending["issues"]:
                return c.transition(institution_id, rec, S.COMPLETED, "办结(注销登记)")
            ids = [c.issue_certificate(institution_id, rec, Issue(**_issue_args(i))) for i in pending["issues"]]
            rec = c.transition(institution_id, rec, S.CERTIFICATE_ISSUED, "缮证", certificate_ids=ids)
        self.schedule(institution_id, rec.application_id)
        return rec

    # --- fees ---------------------------------------------------------------------------

    def _assess(self, institution_id: str, rec: ApplicationRecord) -> ApplicationRecord:
        units = len(rec.application.properties)
        items = [
            FeeItem(code=i["code"], name=i["name"], amount=Decimal(i["amount"]) * units)
            for i in self.centre.fees[rec.type]
        ]
        total = sum((i.amount for i in items), Decimal("0.00"))
        notice = FeeNotice(
            application_id=rec.application_id,
            items=items,
            total=total,
            status="unpaid" if total > 0 else "waived",
            assessed_at=now_utc(),
        )
        self.store.execute("INSERT OR REPLACE INTO fees VALUES (?, ?)", rec.application_id, notice.model_dump_json())
        rec = rec.model_copy(update={"fee_status": notice.status})
        self.centre.save(institution_id, rec)
        self.centre.emit(institution_id, "fee.assessed", rec, {"total": str(notice.total), "fee_status": notice.status})
        return rec

    # --- deadlines ----------------------------------------------------------------------

    def _deadlines(self) -> None:
        c = self.centre
        rows = self.store.all("SELECT id, institution_id FROM applications WHERE status = 'correction_required'")
        now = now_utc()
        for row in rows:
            rec = c.get_application(row["institution_id"], row["id"])
            corr = rec.correction
            if corr is None:
                continue
            if corr.deadline <= now:
                c.transition(row["institution_id"], rec, S.CANCELLED, "补正期限届满未补正，申请作废")
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
                    c.emit(
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
