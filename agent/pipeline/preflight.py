"""Pre-flight (登记簿预检): check an application against the register before it leaves the branch (issue 24 item 2).

With the applicant's 查询授权书 on file (the profile's ``[authorisation]`` columns; seed 001 §3: the applicant
authorises the bank to query the register when applying), the agent asks the centre a 登记资料查询 for each unit
(:func:`agent.pipeline.queries.run_query`: the authorisation checked here first, the signed 查询结果 verified and
kept, every query in the centre's trace) and runs the register checks of ``config/register_checks.toml`` — the
same rows the sandbox centre's review applies (:mod:`sdk.register_checks`): the unit is on the register, the
title number is the unit's, no 查封, the mortgagors are all the owners, the 顺位 asked for is free, the mortgage
to change, discharge or convert is current. An application that fails one is held (quarantined as
``preflight``, with every reason in Chinese and a receipt line 登记簿预检未通过，未提交) instead of being sent
for a certain refusal (by the submit stage); ``regbridge quarantine requeue`` runs the pre-flight again after a fix.

Without an authorisation on file, or when the query cannot be made (the authorisation expired, not for the
mortgage business, the centre refused it for another reason, its answer does not verify), the application is
sent as before: the pre-flight only ever holds what the register shows would fail. Each outcome is audited
(``application.preflight``: passed / skipped with the reason; ``application.held_preflight``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

import sdk
from agent.centre.port import filer_uscc
from agent.messages import zh
from agent.pipeline.context import StageContext
from agent.pipeline.operators import operator_of
from agent.pipeline.queries import run_query
from agent.state.store import AppRow
from config import load_register_checks
from sdk.models import Application, PropertyQuery, PropertyQueryResult
from sdk.register_checks import RegisterFinding, UnitView, owner_digest, register_findings

__all__ = ["PREFLIGHT_STATUS", "authorisation_on_file", "hold_items", "preflight", "unit_view"]

log = logging.getLogger("regbridge.agent.preflight")
_APPLICATION = TypeAdapter(Application)
#: the receipt line's 状态 of a held application
PREFLIGHT_STATUS = "登记簿预检未通过，未提交"


def authorisation_on_file(app: AppRow) -> dict[str, Any] | None:
    """The newest 查询授权书 the loan's exports carried (no personal data), or None."""
    for src in reversed(app.source):
        if src.get("authorisation"):
            return dict(src["authorisation"])
    return None


def unit_view(result: PropertyQueryResult) -> UnitView:
    """A verified 查询结果 as the register checks see the unit; owners are compared by digest."""
    digests = set(result.owner_digests)

    def owners_are(ids: Collection[str]) -> bool:
        return {owner_digest(result.query_id, i) for i in ids} == digests

    return UnitView(
        result.unit_id,
        result.title_certificate,
        seized=result.seized,
        owners_are=owners_are,
        mortgage_ranks={r.rank: r.certificate_number for r in result.rights if r.kind == "mortgage" and r.rank},
        current_references={
            r.certificate_number for r in result.rights if r.kind in ("mortgage", "notice") and r.certificate_number
        },
    )


def _not_owners(_: Collection[str]) -> bool:
    return False


def _skip(ctx: StageContext, app: AppRow, why: str) -> list[RegisterFinding]:
    ctx.audit.append("application.preflight", app.reference, "skipped", reason=why, operator=operator_of(app.payload))
    log.info("pre-flight skipped", extra={"reference": app.reference, "reason": why})
    return []


def preflight(ctx: StageContext, app: AppRow, *, now: datetime | None = None) -> list[RegisterFinding]:
    """Run the pre-flight once for an application about to be created: the register checks it fails (empty: it
    may be sent; the submit stage holds it otherwise, with :func:`hold_items`).

    Transport errors of the query are not caught: the submit stage backs off and the pre-flight runs again on the
    next attempt.
    """
    if ctx.store.get_meta(f"preflight:{app.reference}") is not None:
        return []
    on_file = authorisation_on_file(app)
    if on_file is None:
        return []
    rules = [r for r in load_register_checks() if app.type in r.types]
    if not rules:
        return []
    application = _APPLICATION.validate_python(app.payload)
    # the person authorising: the first applicant, or for a discharge the mortgagee applies for, the owner
    fields = dict.fromkeys((*type(application).applicant_fields, "mortgagors"))
    applicants = [p for name in fields for p in getattr(application, name, [])]
    operator = operator_of(app.payload)
    if not applicants or not operator or not on_file.get("signed_at"):
        return _skip(ctx, app, "授权书缺少授权人、经办人或签署时间")
    views: dict[str, UnitView | None] = {}
    queries: list[str] = []
    for prop in application.properties:
        try:
            query = PropertyQuery.model_validate({
                "unit_id": prop.unit_id,
                "operator_id": operator,
                "authorisation": {
                    "reference": on_file["reference"],
                    "applicant": applicants[0].model_dump(mode="json"),
                    "signed_at": on_file["signed_at"],
                    "signature_id": on_file.get("signature_id") or on_file["reference"],
                    "valid_until": on_file.get("valid_until"),
                    "purpose": on_file.get("purpose", "mortgage"),
                },
            })  # fmt: skip
        except ValidationError as exc:
            return _skip(ctx, app, f"授权书无法构成查询：{zh(str(exc.errors()[0]['msg']))}")
        outcome = run_query(
            ctx,
            query,
            label=f"pre-flight {app.reference}",
            now=now,
            idempotency_key=sdk.new_idempotency_key(),
            institution_uscc=filer_uscc(app.payload),  # as the branch the application is filed as
        )
        codes = [c for c, _ in outcome.reasons]
        if outcome.outcome == "answered" and outcome.result is not None:
            views[prop.unit_id] = unit_view(outcome.result)
            queries.append(outcome.result.query_id)
        elif outcome.outcome == "refused_by_centre" and "not_found" in codes:
            views[prop.unit_id] = None  # the register has no such unit
        elif outcome.outcome == "refused_by_centre" and "authorisation_not_owner" in codes:
            # the first applicant, who signed the authorisation, holds no right of the unit: the mortgagors are
            # not its owners, whoever they are; nothing else of the unit can be seen
            if not any(r.check == "mortgagors_are_owners" for r in rules):
                return _skip(ctx, app, "授权人不是该不动产的权利人")
            views[prop.unit_id] = UnitView(prop.unit_id, None, seized=False, owners_are=_not_owners)
            rules = [r for r in rules if r.check == "mortgagors_are_owners"]
        else:
            return _skip(ctx, app, "；".join(f"{c}: {r}" for c, r in outcome.reasons) or outcome.outcome)
    findings = register_findings(application, views, rules)
    if findings:
        log.warning("held by the register pre-flight", extra={"reference": app.reference,
                                                               "codes": [f.code for f in findings]})  # fmt: skip
        return findings
    ctx.store.set_meta(f"preflight:{app.reference}", json.dumps({"at": datetime.now(UTC).isoformat(),
                                                                 "queries": queries}))  # fmt: skip
    ctx.audit.append("application.preflight", app.reference, "passed", queries=",".join(queries), operator=operator)
    return []


def hold_items(findings: list[RegisterFinding]) -> list[dict[str, Any]]:
    """The failed register checks as quarantine reasons (``pointer``, ``code``, ``detail`` in Chinese)."""
    outcome = {"correction": "将被要求补正", "not_accepted": "将不予受理", "refused": "将不予登记"}
    return [
        {
            "pointer": f.pointer,
            "code": f.code,
            "detail": f"{f.reason}（登记簿预检：提交后{outcome[f.outcome]}，{f.code}）",
        }
        for f in findings
    ]
