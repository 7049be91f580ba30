"""登簿 (recording): the register written from an accepted application, and the certificates it calls for."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .register import Register, Right
from .store import new_id, now_utc


@dataclass
class Issue:
    """A certificate recording calls for: the right it proves and the parties it names."""

    right_or_matter: str
    rights: list[str]  # ids of the register entries it proves
    holders: list[dict[str, Any]]
    obligors: list[dict[str, Any]]
    terms: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    supersedes: list[str] = field(default_factory=list)  # earlier 证明号


@dataclass
class Recording:
    issues: list[Issue]
    cancelled: list[str]  # 证明号 whose rights ended without a successor certificate


def _party(p: Any) -> dict[str, Any]:
    return {"name": p.name, "id_number": p.id_number}


def _terms(app: Any) -> dict[str, Any]:
    terms = getattr(app, "terms", None)
    return terms.model_dump(mode="json", exclude_none=True) if terms is not None else {}


def record(app: Any, register: Register, application_id: str) -> Recording:
    """登簿: write the application into the register; answer what to certify and what it supersedes."""
    kind = app.type
    at = now_utc().isoformat()
    units = [p.unit_id for p in app.properties]
    notes: list[str] = []
    for uid in units:
        if any(r.kind == "objection" for r in register.rights(uid, current_only=True)):
            notes.append(f"不动产单元 {uid} 存在异议登记")

    def mortgage(subkind: str | None = None, **extra: Any) -> Issue:
        terms = _terms(app)
        rights = []
        for uid in units:
            rank = terms.get("rank") or register.next_rank(uid)
            rights.append(
                register.add(
                    Right(
                        new_id("rt"), uid, "mortgage", "current", None, app.mortgagee.name, app.mortgagee.id_number,
                        rank=rank, method=terms["method"],
                        amount=Decimal(extra.get("determined", terms.get("secured_amount") or 0)) or None,
                        maximum_amount=Decimal(terms["maximum_amount"]) if terms.get("maximum_amount") else None,
                        subkind=subkind, terms=terms, registered_at=at, application_id=application_id,
                        parties=[_party(p) for p in app.mortgagors],
                    )
                )
            )  # fmt: skip
        terms = {**terms, "rank": rights[0].rank} if rights else terms
        contract = f"主债权合同编号: {app.main_contract_number}"
        if getattr(app, "mortgage_contract_number", None):
            contract += f"；抵押合同编号: {app.mortgage_contract_number}"
        return Issue(
            "抵押权",
            [r.id for r in rights],
            [_party(app.mortgagee)],
            [_party(p) for p in app.mortgagors],
            terms,
            [contract, *notes],
        )

    if kind in ("mortgage_first", "mortgage_first_with_determination"):
        determined = {"determined": app.determined_amount} if kind != "mortgage_first" else {}
        issue = mortgage("determined" if determined else None, **determined)
        if determined:
            issue.notes.append(
                f"最高额抵押权已确定，确定的债权数额 {app.determined_amount} 元 ({app.determination_fact})"
            )
            issue.terms = {**issue.terms, "determined_amount": str(app.determined_amount)}
        return Recording([issue], [])

    if kind == "purchase_notice":
        rights = [
            register.add(Right(new_id("rt"), uid, "notice", "current", None, app.buyers[0].name,
                               app.buyers[0].id_number, subkind="purchase", registered_at=at,
                               application_id=application_id, parties=[_party(p) for p in app.buyers]))
            for uid in units
        ]  # fmt: skip
        label = "预告登记(" + app.notice_kind.label.removesuffix("预告登记") + ")"
        issue = Issue(
            label, [r.id for r in rights], [_party(p) for p in app.buyers], [_party(p) for p in app.sellers], {}, notes
        )
        return Recording([issue], [])

    if kind in ("mortgage_notice", "purchase_and_mortgage_notice"):
        issues = []
        if kind == "purchase_and_mortgage_notice":
            buyers = [_party(p) for p in app.mortgagors]
            rights = [
                register.add(Right(new_id("rt"), uid, "notice", "current", None, buyers[0]["name"],
                                   buyers[0]["id_number"], subkind="purchase", registered_at=at,
                                   application_id=application_id, parties=buyers))
                for uid in units
            ]  # fmt: skip
            issues.append(
                Issue(
                    "预告登记(预售商品房买卖)",
                    [r.id for r in rights],
                    buyers,
                    [_party(p) for p in app.sellers],
                    {},
                    notes,
                )
            )
        terms = _terms(app)
        rights = [
            register.add(Right(new_id("rt"), uid, "notice", "current", None, app.mortgagee.name,
                               app.mortgagee.id_number, method=terms["method"],
                               amount=Decimal(terms["secured_amount"]) if terms.get("secured_amount") else None,
                               maximum_amount=Decimal(terms["maximum_amount"]) if terms.get("maximum_amount") else None,
                               subkind="mortgage", terms=terms, registered_at=at, application_id=application_id,
                               parties=[_party(p) for p in app.mortgagors]))
            for uid in units
        ]  # fmt: skip
        issues.append(
            Issue(
                "抵押权预告登记",
                [r.id for r in rights],
                [_party(app.mortgagee)],
                [_party(p) for p in app.mortgagors],
                terms,
                notes,
            )
        )
        return Recording(issues, [])

    if kind == "mortgage_notice_conversion":
        old = [r for r in register.by_certificate(app.notice_certificate) if r.status == "current"]
        for r in old:
            register.cancel(r.id, "抵押权预告登记转为抵押权首次登记")
        issue = mortgage()
        issue.supersedes = [app.notice_certificate]
        return Recording([issue], [])

    # change, determination and discharge act on an existing mortgage
    number = app.mortgage_certificate
    old = [r for r in register.by_certificate(number) if r.status == "current" and r.kind == "mortgage"]
    for r in old:
        register.cancel(r.id, {"mortgage_discharge": "注销登记"}.get(kind, "变更登记"))
    if kind == "mortgage_discharge":
        return Recording([], [number])
    rights = []
    notes = list(notes)
    for r in old:
        new = Right(
            new_id("rt"), r.unit_id, "mortgage", "current", None, r.holder_name, r.holder_code, rank=r.rank,
            method=r.method, amount=r.amount, maximum_amount=r.maximum_amount, subkind=r.subkind,
            terms=dict(r.terms), registered_at=at, application_id=application_id, parties=r.parties,
        )  # fmt: skip
        if kind == "maximum_determination":
            new.subkind = "determined"
            new.amount = app.determined_amount
            new.terms["determined_amount"] = str(app.determined_amount)
        else:
            _apply_changes(new, app.changes)
        rights.append(register.add(new))
    if kind == "maximum_determination":
        notes.append(f"最高额抵押权确定，确定的债权数额 {app.determined_amount} 元 ({app.determination_fact})")
    else:
        notes.append("变更事项: " + "、".join(_CHANGE_NAMES[c.kind] for c in app.changes) + f"；原因: {app.reason}")
    first = rights[0] if rights else None
    terms = {**(first.terms if first else {}), "method": first.method if first else None}
    if first is not None:
        if first.amount is not None and first.method == "1":
            terms["secured_amount"] = str(first.amount)
        if first.maximum_amount is not None:
            terms["maximum_amount"] = str(first.maximum_amount)
        terms["rank"] = first.rank
    holders = [_party(app.mortgagee)]
    issue = Issue(
        "抵押权", [r.id for r in rights], holders, [_party(p) for p in app.mortgagors], terms, notes, [number]
    )
    return Recording([issue], [])


_CHANGE_NAMES = {
    "guarantee_scope": "担保范围",
    "rank": "抵押权顺位",
    "secured_debt": "被担保债权种类或数额",
    "debt_period": "债务履行期限",
    "maximum_amount": "最高债权额",
    "determination_period": "最高额抵押权债权确定期间",
}


def _apply_changes(right: Right, changes: list[Any]) -> None:
    for c in changes:
        if c.kind == "guarantee_scope":
            right.terms["guarantee_scope"] = c.new_scope
        elif c.kind == "rank":
            right.rank = c.new_rank
        elif c.kind == "secured_debt":
            if c.new_amount is not None:
                right.amount = c.new_amount
                right.terms["secured_amount"] = str(c.new_amount)
            if c.new_debt_kind:
                right.terms["debt_kind"] = c.new_debt_kind
        elif c.kind == "debt_period":
            right.terms["debt_start"], right.terms["debt_end"] = c.new_start.isoformat(), c.new_end.isoformat()
        elif c.kind == "maximum_amount":
            right.maximum_amount = c.new_amount
            right.terms["maximum_amount"] = str(c.new_amount)
        elif c.kind == "determination_period":
            right.terms["determination_start"] = c.new_start.isoformat()
            right.terms["determination_end"] = c.new_end.isoformat()
