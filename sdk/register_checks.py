"""Register checks (登记簿核对): the rules an application must meet against the register, as data.

The same rules are applied at two places: the bank's agent, before an application leaves the branch (pre-flight,
on the centre's signed 查询结果 obtained with the applicant's authorisation, seed 001 §3), and the sandbox
centre's review (受理 / 审核, ``sandbox/review.py``). Each rule is a row of ``config/register_checks.toml``:
its ``code`` (the centre's refusal code it foresees), the ``check`` it runs (one of :data:`CHECKS`), the
application types it applies to, the centre's outcome (``correction`` 补正, ``not_accepted`` 不予受理,
``refused`` 不予登记), the Chinese ``reason`` branch staff read and its legal ``source``.

A unit is seen through :class:`UnitView`, which either side builds from what it holds: the sandbox from its
register, the agent from a 查询结果 (whose owners come as digests: :func:`owner_digest`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CHECKS",
    "RegisterFinding",
    "RegisterRule",
    "UnitView",
    "owner_digest",
    "register_findings",
    "rules_by_code",
]

#: the checks a rule may name: ``unit_known`` (the unit is on the register), ``title_matches`` (the application's
#: 不动产权证书号 is the unit's), ``not_seized`` (no current 查封), ``mortgagors_are_owners`` (the mortgagors are
#: all the owners, co-owners included, and no one else), ``rank_free`` (the 抵押顺位 asked for holds no current
#: mortgage), ``reference_current`` (the mortgage or notice to change, discharge or convert is current on the unit)
CHECKS = (
    "unit_known",
    "title_matches",
    "not_seized",
    "mortgagors_are_owners",
    "rank_free",
    "reference_current",
)


class RegisterRule(BaseModel):
    """One rule of ``config/register_checks.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(description="the centre's code for a failure (e.g. property_seized)")
    check: Literal[
        "unit_known", "title_matches", "not_seized", "mortgagors_are_owners", "rank_free", "reference_current"
    ]
    types: frozenset[str] = Field(description="the application types it applies to")
    outcome: Literal["correction", "not_accepted", "refused"] = Field(description="what the centre answers")
    reason: str = Field(description="the reason in Chinese; {unit_id}, {rank}, {number}, {title} are filled in")
    source: str = Field(description="the law, standard or seed clause the rule follows")


def rules_by_code(rules: Iterable[RegisterRule]) -> dict[str, RegisterRule]:
    return {r.code: r for r in rules}


def owner_digest(salt: str, id_number: str) -> str:
    """SHA-256 (hex) of ``salt:id_number``: how a 查询结果 names its owners to a bank without disclosing the ID
    numbers of co-owners it does not already know (the salt is the query's id)."""
    return hashlib.sha256(f"{salt}:{id_number}".encode()).hexdigest()


@dataclass
class UnitView:
    """What a register check needs to know of one unit.

    Attributes:
        owners_are: answers whether a set of 证件号码 is exactly the unit's owners (all co-owners, no one else).
        mortgage_ranks: rank → the certificate number of the current mortgage at that 顺位.
        current_references: the 不动产登记证明号 of the current mortgages and notices on the unit.
    """

    unit_id: str
    title_certificate: str | None
    seized: bool
    owners_are: Callable[[Collection[str]], bool]
    mortgage_ranks: dict[int, str | None] = field(default_factory=dict)
    current_references: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class RegisterFinding:
    code: str
    reason: str
    pointer: str
    outcome: str


def _reference_field(app: Any) -> str | None:
    for name in ("mortgage_certificate", "notice_certificate"):
        if getattr(app, name, None):
            return name
    return None


def register_findings(
    app: Any, views: dict[str, UnitView | None], rules: Iterable[RegisterRule]
) -> list[RegisterFinding]:
    """Every rule of ``rules`` the application fails against the units in ``views`` (by 不动产单元号; None: the
    register has no such unit); rules for other types are skipped. ``app`` is an :class:`sdk.models.Application`.
    """
    kind = getattr(app, "type", "")
    found: list[RegisterFinding] = []
    for rule in rules:
        if kind not in rule.types:
            continue
        for i, prop in enumerate(app.properties):
            view = views.get(prop.unit_id)
            pointer = f"/properties/{i}/unit_id"
            values: dict[str, Any] = {"unit_id": prop.unit_id}
            failed = False
            if view is None:
                failed = rule.check == "unit_known"
            elif rule.check == "title_matches":
                title = prop.title_certificate
                failed = bool(title and view.title_certificate and title != view.title_certificate)
                pointer, values["title"] = f"/properties/{i}/title_certificate", title
            elif rule.check == "not_seized":
                failed = view.seized
            elif rule.check == "mortgagors_are_owners":
                ids = {p.id_number for p in getattr(app, "mortgagors", [])}
                failed, pointer = not view.owners_are(ids), "/mortgagors"
            elif rule.check == "rank_free":
                rank = getattr(getattr(app, "terms", None), "rank", None)
                failed = rank is not None and rank in view.mortgage_ranks
                pointer, values["rank"] = "/terms/rank", rank
            elif rule.check == "reference_current":
                name = _reference_field(app)
                number = getattr(app, name) if name else None
                failed = number is not None and number not in view.current_references
                pointer, values["number"] = f"/{name}", number
            if failed:
                found.append(RegisterFinding(rule.code, rule.reason.format(**values), pointer, rule.outcome))
    return found
