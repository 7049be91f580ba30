"""Accountable operators (seed 001 §4.2): the centre creates a 业务办理人员 account per staff member of
the bank, and an application names the one who prepared it (``declaration.operator_id``, the
export's 经办人 column or ``default_operator``).

Before an application is sent, its operator is checked against the centre's list
(``GET /v1/institution/operators``), kept in the state store and read again every
:data:`REFRESH_SECONDS` — and at once when an id is not in it (an account opened this morning).
An operator who is not an active account of this bank keeps the application from being sent:
it is quarantined with "经办人 X 不是本行在登记中心的有效账号" naming the row and column, the
centre never sees it, and no notice number is spent. When the list cannot be read the centre
judges (it refuses such an application itself with ``operator_not_authorised``).

A head office's agent acting for branches (``[branches]``) keeps one list per branch: each branch is an
institution of its own at the centres with its own accounts, so an application of branch B naming an
operator of branch A is held ("经办人 X 不是本行在登记中心的有效账号（B）").
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from agent.pipeline.context import StageContext
from agent.state.store import AppRow

__all__ = [
    "OPERATOR_HELD_NOTE",
    "OPERATOR_STATUS",
    "REFRESH_SECONDS",
    "branch_institution",
    "forget_accounts",
    "invalid_operator",
    "operator_accounts",
    "operator_message",
    "operator_of",
]

log = logging.getLogger("regbridge.agent.operators")
REFRESH_SECONDS = 300.0
_META = "centre_operators"
#: the loan system's receipt status of an application held here for its operator (never sent: not the centre's word)
OPERATOR_STATUS = "经办人账号无效，未提交"
#: the application's note when it is held here for its operator
OPERATOR_HELD_NOTE = "operator not an active account of this bank: held before sending"


def operator_of(payload: dict[str, Any]) -> str:
    """The 经办人 account an application names (every audit record about it names the operator too)."""
    return str((payload.get("declaration") or {}).get("operator_id") or "")


def operator_message(operator_id: str, branch: str | None = None) -> str:
    """What the loan system and the branch read when an operator is not one of the bank's (``branch``'s) accounts."""
    return f"经办人 {operator_id} 不是本行在登记中心的有效账号" + (f"（{branch}）" if branch else "")


def branch_institution(ctx: StageContext, app: AppRow) -> tuple[str, str] | None:
    """(branch, its 统一社会信用代码) when ``app`` belongs to a branch of ``[branches]``, else None."""
    branch = ctx.branch_of(app)
    known = ctx.config.branches.get(branch) if branch else None
    return (branch, known.institution_uscc) if branch and known is not None else None


def operator_accounts(
    ctx: StageContext, *, refresh: bool = False, institution_uscc: str | None = None
) -> dict[str, bool] | None:
    """The centre's operator accounts for this bank (for the branch of ``institution_uscc``), id → active; None
    when never read and unreadable now."""
    key = f"{_META}:{institution_uscc}" if institution_uscc else _META
    cached: dict[str, Any] | None = None
    raw = ctx.store.get_meta(key)
    if raw:
        cached = json.loads(raw)
    if cached is None or refresh or time.time() - float(cached["at"]) > REFRESH_SECONDS:
        try:
            listed = (ctx.centre.operators(institution_uscc=institution_uscc) if institution_uscc
                      else ctx.centre.operators())  # fmt: skip
            accounts = {o.operator_id: o.active for o in listed}
        except Exception as exc:  # the centre is away: keep what we had, the centre still judges
            log.warning("could not read the operator list", extra={"error": type(exc).__name__})
            # asked to refresh (an id we do not know) and the centre did not answer: do not judge on a stale list
            return None if cached is None or refresh else dict(cached["accounts"])
        ctx.store.set_meta(key, json.dumps({"at": time.time(), "accounts": accounts}))
        return accounts
    return dict(cached["accounts"])


def forget_accounts(ctx: StageContext) -> None:
    """Read the lists (the bank's and each branch's) again before the next check (the centre refused an
    operator we thought valid)."""
    for key in [_META] + [f"{_META}:{b.institution_uscc}" for b in ctx.config.branches.values()]:
        ctx.store.set_meta(key, json.dumps({"at": 0, "accounts": {}}))


def invalid_operator(ctx: StageContext, app: AppRow) -> str | None:
    """The operator id of ``app`` when it is not an active account of this bank at the centre, else None."""
    operator_id = operator_of(app.payload)
    branch = branch_institution(ctx, app)
    uscc = branch[1] if branch else None
    accounts = operator_accounts(ctx, institution_uscc=uscc)
    if accounts is None:
        return None
    if not accounts.get(operator_id):
        accounts = operator_accounts(ctx, refresh=True, institution_uscc=uscc)  # an account opened since the last read?
        if accounts is None or accounts.get(operator_id):
            return None
        return operator_id
    return None
