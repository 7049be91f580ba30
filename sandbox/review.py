"""The centre's review rules: 受理 (acceptance), 审核 (examination) and 登簿 (recording).

Deterministic and documented (docs/sandbox.md lists every rule with its code). Acceptance checks
what can be judged from the application and the register at a glance; examination checks the
rights; recording (sandbox/recording.py, re-exported here) writes the register and says which
certificates to issue and which earlier ones it supersedes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from config import load_register_checks
from sdk.checklists import missing_materials
from sdk.models import ApplicationBase, MaterialChecklist, MortgageDischarge, court_document_problems
from sdk.register_checks import UnitView, register_findings, rules_by_code

from .recording import Issue, record
from .register import Register, Unit
from .store import china_today

__all__ = [
    "EXCLUDED_PROPERTY_TYPES",
    "Finding",
    "Issue",
    "Scope",
    "Verdict",
    "accept",
    "china_today",
    "examine",
    "record",
]

#: seed 001's pilot leaves out 在建工程 and 纯土地 (BDCLX 1 土地, 4 土地和在建建筑物); :class:`Scope` may admit 在建
EXCLUDED_PROPERTY_TYPES = frozenset({"1", "4"})
UNDER_CONSTRUCTION = "4"


@dataclass(frozen=True)
class Scope:
    """What this centre lets banks apply for online.

    Args:
        under_construction: admit 在建建筑物抵押 (BDCLX 4). Seed 001's pilot excludes it (the default);
            seed 004 lists its materials, so a centre may open it. 纯土地 stays excluded.
    """

    under_construction: bool = False

    @property
    def excluded(self) -> frozenset[str]:
        return EXCLUDED_PROPERTY_TYPES - ({UNDER_CONSTRUCTION} if self.under_construction else set())


_REFERENCE_FIELD = {
    "mortgage_change": "mortgage_certificate",
    "mortgage_discharge": "mortgage_certificate",
    "maximum_determination": "mortgage_certificate",
    "mortgage_notice_conversion": "notice_certificate",
}


@dataclass
class Finding:
    code: str
    reason: str
    pointer: str | None = None
    material: str | None = None  # the material code a 补正 asks for


@dataclass
class Verdict:
    outcome: Literal["ok", "correction", "not_accepted", "refused"]
    findings: list[Finding] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "；".join(f.reason for f in self.findings)

    @property
    def code(self) -> str:
        return self.findings[0].code if self.findings else "ok"


def _ids(parties: list[Any]) -> set[str]:
    return {p.id_number for p in parties}


def unit_view(register: Register, unit: Unit) -> UnitView:
    """The unit as the shared register checks see it (:mod:`sdk.register_checks`, ``config/register_checks.toml``)."""
    rights = register.rights(unit.unit_id, current_only=True)
    owners = unit.owner_ids()
    return UnitView(
        unit.unit_id,
        unit.title_certificate,
        seized=any(r.kind == "seizure" for r in rights),
        owners_are=lambda ids: set(ids) == owners,
        mortgage_ranks={r.rank: r.certificate_number for r in rights if r.kind == "mortgage" and r.rank is not None},
        current_references={r.certificate_number for r in rights if r.kind in ("mortgage", "notice") and
                            r.certificate_number},
    )  # fmt: skip


def _shared(
    app: ApplicationBase, register: Register, units: list[Unit | None], codes: tuple[str, ...]
) -> list[Finding]:
    """The findings of the shared register checks named by ``codes`` (the same rows the bank's pre-flight runs)."""
    rules = rules_by_code(load_register_checks())
    views = {p.unit_id: unit_view(register, u) if u else None for p, u in zip(app.properties, units, strict=True)}
    found = register_findings(app, views, [rules[c] for c in codes])
    # a field the bank corrects is a 补正 item of code "field" (the agent answers it with a corrected row)
    return [Finding("field" if f.outcome == "correction" else f.code, f.reason, f.pointer) for f in found]


_DOTS = str.maketrans({"・": "·", "•": "·", "‧": "·", "･": "·", "．": "·", "∙": "·"})


def normalise_name(name: str) -> str:
    """A name as the register compares it: NFKC (full-width letters and digits to half-width),
    every kind of space removed, the middle dots of minority names made one (陈 明 = 陈明,
    ＡＢＣ = ABC, 阿依古丽・买买提 = 阿依古丽·买买提)."""
    folded = unicodedata.normalize("NFKC", name).translate(_DOTS)
    return "".join(ch for ch in folded if not ch.isspace())


def _names_differ(parties: list[Any], registered: list[dict[str, Any]], field: str, role: str) -> list[Finding]:
    """A party whose ID number the register knows under another name: the name differs, and says so.

    The ID numbers already agree (the caller checked); a different person's name with the owner's
    ID number is refused as ``name_mismatch``, naming the party and which field differs (the ID is
    shown masked in the reason)."""
    names = {r["id_number"]: r.get("name") or "" for r in registered}
    found = []
    for i, party in enumerate(parties):
        on_register = names.get(party.id_number)
        if on_register is not None and normalise_name(party.name) != normalise_name(on_register):
            masked = party.id_number[:4] + "*" * (len(party.id_number) - 8) + party.id_number[-4:]
            reason = f"{role}姓名与登记簿不一致：证件号 {masked} 在登记簿中登记的是另一姓名（证件号一致，姓名不同）"
            found.append(Finding("name_mismatch", reason, f"/{field}/{i}/name"))
    return found


def _referenced(app: ApplicationBase) -> tuple[str, str] | None:
    name = _REFERENCE_FIELD.get(getattr(app, "type", ""))
    return (name, getattr(app, name)) if name else None


def _junior_worsened(app: ApplicationBase, register: Register, institution_uscc: str) -> str | None:
    """Why a junior mortgagee must consent to this change, or None (民法典 第四百零九条).

    Only when a later-ranked mortgage held by someone else exists on a unit, and the change worsens
    its position: moving this mortgage ahead of it, raising the secured amount or the maximum amount.
    """
    if getattr(app, "type", "") != "mortgage_change":
        return None
    number = app.mortgage_certificate  # type: ignore[attr-defined]
    ours = [r for r in register.by_certificate(number) if r.status == "current" and r.kind == "mortgage"]
    for right in ours:
        rank = right.rank or 0
        juniors = [
            r
            for r in register.rights(right.unit_id, current_only=True)
            if r.kind == "mortgage" and r.id != right.id and (r.rank or 0) > rank and r.holder_code != institution_uscc
        ]
        for change in app.changes:  # type: ignore[attr-defined]
            if change.kind == "rank" and change.new_rank < rank:
                ahead = [r for r in register.rights(right.unit_id, current_only=True)
                         if r.kind == "mortgage" and change.new_rank <= (r.rank or 0) < rank
                         and r.holder_code != institution_uscc]  # fmt: skip
                if ahead:
                    return f"顺位由第{rank}位提前至第{change.new_rank}位"
            if not juniors:
                continue
            if (
                change.kind == "secured_debt"
                and change.new_amount is not None
                and (right.amount is None or change.new_amount > right.amount)
            ):
                return f"被担保债权数额增加至 {change.new_amount} 元"
            if change.kind == "maximum_amount" and (
                right.maximum_amount is None or change.new_amount > right.maximum_amount
            ):
                return f"最高债权额增加至 {change.new_amount} 元"
    return None


def accept(
    app: ApplicationBase,
    register: Register,
    *,
    institution_uscc: str,
    checklist: MaterialChecklist,
    scope: Scope | None = None,
    today: date | None = None,
) -> Verdict:
    """受理: 不予受理 for what cannot be registered at all, 补正 for what the bank can supply.

    A mortgagor's unilateral 注销 stands only on an effective court or arbitration document (seed 004):
    without one it is not accepted (``court_document_required``), nor with one whose effective date is
    after ``today`` (China's date unless given; ``court_document_not_effective``).

    The operator is not judged here: an application whose operator is not an active account of the
    institution never reaches 受理 (refused at create/submit, ``operator_not_authorised``).
    """
    refusals: list[Finding] = []
    corrections: list[Finding] = []
    excluded = (scope or Scope()).excluded
    units: list[Unit | None] = [register.unit(p.unit_id) for p in app.properties]
    refusals += _shared(app, register, units, ("unit_unknown",))
    for i, (prop, unit) in enumerate(zip(app.properties, units, strict=True)):
        if unit is None:
            continue
        if unit.property_type in excluded or prop.property_type.value in excluded:
            what = "纯土地" if UNDER_CONSTRUCTION not in excluded else "在建工程、纯土地"
            refusals.append(Finding("outside_scope", f"{what}不在银行网上办理范围内", f"/properties/{i}/property_type"))
    corrections += _shared(app, register, units, ("title_certificate_mismatch",))
    representation = app.representation
    if representation is not None and representation.agent.institution_uscc != institution_uscc:
        refusals.append(
            Finding(
                "agent_not_institution",
                f"委托代理人所在机构（{representation.agent.institution_uscc}）不是提交申请的机构",
                "/representation/agent/institution_uscc",
            )
        )
    mortgagee = getattr(app, "mortgagee", None)
    if mortgagee is not None and mortgagee.id_number != institution_uscc:
        refusals.append(Finding("mortgagee_not_institution", "抵押权人不是申请机构", "/mortgagee/id_number"))
    reference = _referenced(app)
    if reference is not None:
        name, number = reference
        known = [u.unit_id for u in units if u is not None]
        if not any(r.unit_id in known for r in register.by_certificate(number)):
            refusals.append(Finding("mortgage_not_found", f"登记簿中无 {number} 记载的权利", f"/{name}"))
    if isinstance(app, MortgageDischarge):
        standing = court_document_problems(app.applicant_side.value, app.court_document, today or china_today())
        refusals += [Finding(code, reason, pointer) for code, reason, pointer in standing]
    for item in missing_materials(app, checklist):
        corrections.append(Finding("material", f"缺少{item.name}", "/materials", material=item.code))
    worsened = _junior_worsened(app, register, institution_uscc)
    if worsened and not any(m.code == "junior_consent" for m in app.materials):
        corrections.append(
            Finding(
                "material",
                f"缺少后顺位抵押权人同意变更的书面材料（{worsened}）",
                "/materials",
                material="junior_consent",
            )
        )
    if refusals:
        return Verdict("not_accepted", refusals)
    if corrections:
        return Verdict("correction", corrections)
    return Verdict("ok")


def _rank_taken(unit_id: str, rank: int, pointer: str) -> Finding:
    """Two mortgages at one 顺位 cannot both be on the register (民法典 第四百一十四条 orders them by rank)."""
    return Finding("rank_taken", f"不动产单元 {unit_id} 第{rank}顺位已有抵押权，同一顺位不予登记两个抵押权", pointer)


def examine(app: ApplicationBase, register: Register, *, institution_uscc: str) -> Verdict:
    """审核: the rights on the register decide; 不予登记 with every reason found."""
    kind = getattr(app, "type", "")
    units = [register.unit(p.unit_id) for p in app.properties]  # None: accepted before the register changed
    # the rules the bank's pre-flight runs too (config/register_checks.toml)
    found = _shared(app, register, units, ("unit_unknown", "property_seized", "mortgagor_not_owner", "rank_taken"))
    owner_rule = rules_by_code(load_register_checks())["mortgagor_not_owner"]
    for i, (prop, unit) in enumerate(zip(app.properties, units, strict=True)):
        if unit is None:
            continue
        rights = register.rights(unit.unit_id, current_only=True)
        owners = unit.owner_ids()
        if kind in owner_rule.types and _ids(getattr(app, "mortgagors", [])) == owners:
            found += _names_differ(app.mortgagors, unit.owners, "mortgagors", "抵押人")  # type: ignore[attr-defined]
        mortgages = [r for r in rights if r.kind == "mortgage"]
        changed = getattr(app, "mortgage_certificate", None)
        own = any(r.certificate_number == changed for r in mortgages)  # else mortgage_not_current says why
        for j, change in enumerate(getattr(app, "changes", [])):
            if (
                own
                and change.kind == "rank"
                and any(r.rank == change.new_rank and r.certificate_number != changed for r in mortgages)
            ):
                found.append(_rank_taken(prop.unit_id, change.new_rank, f"/changes/{j}/new_rank"))
        if kind in ("purchase_notice", "purchase_and_mortgage_notice"):
            if _ids(getattr(app, "sellers", [])) != owners:
                found.append(Finding("seller_not_owner", "出卖人与登记簿记载的权利人不一致", "/sellers"))
            else:
                found += _names_differ(app.sellers, unit.owners, "sellers", "出卖人")  # type: ignore[attr-defined]
            if any(r.kind == "notice" and r.subkind == "purchase" for r in rights):
                found.append(Finding("notice_exists", "该不动产已办理预告登记", f"/properties/{i}/unit_id"))
        if kind == "mortgage_notice":
            purchase = [r for r in rights if r.kind == "notice" and r.subkind == "purchase"]
            if not purchase:
                found.append(Finding("no_purchase_notice", "该不动产未办理预告登记", f"/properties/{i}/unit_id"))
            elif not any(_ids(app.mortgagors) == {p["id_number"] for p in r.parties} for r in purchase):  # type: ignore[attr-defined]
                found.append(Finding("mortgagor_not_buyer", "抵押人不是预告登记权利人", "/mortgagors"))
            else:
                ids = _ids(app.mortgagors)  # type: ignore[attr-defined]
                buyers = next(r.parties for r in purchase if ids == {p["id_number"] for p in r.parties})
                found += _names_differ(app.mortgagors, buyers, "mortgagors", "抵押人")  # type: ignore[attr-defined]
    reference = _referenced(app)
    if reference is not None:
        name, number = reference
        entries = [r for r in register.by_certificate(number) if r.kind in ("mortgage", "notice")]
        if entries and not any(r.status == "current" for r in entries):
            found.append(Finding("mortgage_not_current", f"{number} 记载的权利已注销或已变更", f"/{name}"))
        if any(r.holder_code != institution_uscc for r in entries):
            found.append(Finding("not_mortgagee", "申请机构不是该抵押权的权利人", f"/{name}"))
        current = [r for r in entries if r.status == "current"]
        if kind == "mortgage_notice_conversion" and any(r.subkind != "mortgage" for r in current):
            found.append(Finding("not_mortgage_notice", f"{number} 不是抵押权预告登记", f"/{name}"))
        needs_maximum = kind == "maximum_determination" or any(
            c.kind in ("maximum_amount", "determination_period") for c in getattr(app, "changes", [])
        )
        if needs_maximum and any(r.method != "2" for r in current):
            found.append(Finding("not_maximum_mortgage", f"{number} 不是最高额抵押权", f"/{name}"))
        if kind == "maximum_determination" and any(r.subkind == "determined" for r in current):
            found.append(Finding("already_determined", "最高额抵押权已确定", f"/{name}"))
    return Verdict("refused", found) if found else Verdict("ok")
