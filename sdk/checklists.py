"""Materials checklists (清单式管理): which materials an application must carry.

A checklist is data (``config/checklists/<type>.toml``, loaded by :func:`config.load_checklists`);
its conditional items name one of the :data:`CONDITIONS` below, each a rule over the
application (seed 004). The bank checks an application before sending it; the sandbox centre
applies the same rules when it reviews, so a 补正 for a missing material is avoidable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .codes import ApplicantSide, MortgageMethod, PropertyType
from .models import ApplicationBase, MaterialChecklist, MaterialRequirement

__all__ = ["CONDITIONS", "condition_holds", "missing_materials", "required_materials"]


def _terms(app: ApplicationBase) -> Any:
    return getattr(app, "terms", None)


def _maximum(app: ApplicationBase) -> bool:
    terms = _terms(app)
    return terms is not None and terms.method is MortgageMethod.MAXIMUM


def _existing_debts(app: ApplicationBase) -> bool:
    terms = _terms(app)
    return terms is not None and bool(terms.includes_existing_debts)


def _under_construction(app: ApplicationBase) -> bool:
    terms = _terms(app)
    return any(p.property_type is PropertyType.LAND_AND_BUILDING_UNDER_CONSTRUCTION for p in app.properties) or (
        terms is not None and bool(terms.under_construction_scope)
    )


def _separate_mortgage_contract(app: ApplicationBase) -> bool:
    return getattr(app, "mortgage_contract_number", None) is not None


def _side(app: ApplicationBase) -> ApplicantSide | None:
    return getattr(app, "applicant_side", None)


def _rank_or_amount_change(app: ApplicationBase) -> bool:
    kinds = {c.kind for c in getattr(app, "changes", [])}
    return bool(kinds & {"rank", "secured_debt", "maximum_amount"})


def _junior_right_worsened(app: ApplicationBase) -> bool:
    """A junior (later-ranked) mortgage exists and the change worsens it (民法典 第四百零九条): only the
    register tells whether a junior right exists, so the bank does not require the material — the centre
    asks for it by 补正 when the condition holds (docs/sandbox.md)."""
    return False


#: conditions whose truth only the register knows: the bank's check treats them as not holding
REGISTER_CONDITIONS = frozenset({"junior_right_worsened"})

#: condition name → rule; the names are what checklists may use in ``condition``
CONDITIONS: dict[str, Callable[[ApplicationBase], bool]] = {
    "maximum_mortgage": _maximum,
    "existing_debts": _existing_debts,
    "under_construction": _under_construction,
    "separate_mortgage_contract": _separate_mortgage_contract,
    "joint_application": lambda app: _side(app) is ApplicantSide.JOINT,
    "mortgagee_party": lambda app: _side(app) in (ApplicantSide.JOINT, ApplicantSide.MORTGAGEE),
    "mortgagor_alone": lambda app: _side(app) is ApplicantSide.MORTGAGOR,
    "rank_or_amount_change": _rank_or_amount_change,
    "junior_right_worsened": _junior_right_worsened,
}


def condition_holds(name: str, app: ApplicationBase) -> bool:
    """Whether the named condition holds for ``app``.

    Raises:
        KeyError: the checklist names a condition this version does not know.
    """
    return CONDITIONS[name](app)


def required_materials(app: ApplicationBase, checklist: MaterialChecklist) -> list[MaterialRequirement]:
    """The checklist items this application must carry."""
    return [
        item
        for item in checklist.items
        if item.requirement == "required" or (item.condition and condition_holds(item.condition, app))
    ]


def missing_materials(app: ApplicationBase, checklist: MaterialChecklist) -> list[MaterialRequirement]:
    """The required items for which the application declares no material of that code."""
    if checklist.application_type != getattr(app, "type", None):
        raise ValueError(f"checklist {checklist.application_type!r} is not for {getattr(app, 'type', None)!r}")
    present = {m.code for m in app.materials}
    return [item for item in required_materials(app, checklist) if item.code not in present]
