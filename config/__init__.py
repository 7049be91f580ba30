"""RegBridge's data: materials checklists, mapping profiles, code tables. Ships in the wheel."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from sdk.checklists import CONDITIONS
from sdk.models import APPLICATION_TYPES, MaterialChecklist

__all__ = ["load_checklists", "load_fees"]


@cache
def load_checklists() -> dict[str, MaterialChecklist]:
    """Every business type's checklist, by application type, checked on load.

    Raises:
        ValueError: a checklist file is for an unknown type, names an unknown condition, or a
            business type has no checklist.
    """
    found: dict[str, MaterialChecklist] = {}
    folder = resources.files(__name__).joinpath("checklists")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        checklist = MaterialChecklist.model_validate(data)
        where = f"config/checklists/{entry.name}"
        if checklist.application_type not in APPLICATION_TYPES:
            raise ValueError(f"{where}: unknown application_type {checklist.application_type!r}")
        for item in checklist.items:
            if item.requirement == "conditional" and item.condition not in CONDITIONS:
                raise ValueError(f"{where}: item {item.code!r} names unknown condition {item.condition!r}")
        found[checklist.application_type] = checklist
    missing = sorted(set(APPLICATION_TYPES) - set(found))
    if missing:
        raise ValueError(f"no checklist for: {', '.join(missing)}")
    return found


@cache
def load_fees() -> dict[str, list[dict[str, str]]]:
    """The sandbox's fee table (``config/fees.toml``): per application type, items per property unit.

    Raises:
        ValueError: a type without an entry, an unknown type, or an amount that is not exact to the fen.
    """
    from decimal import Decimal, InvalidOperation

    data = tomllib.loads(resources.files(__name__).joinpath("fees.toml").read_text(encoding="utf-8"))
    table: dict[str, list[dict[str, str]]] = {}
    for kind, entry in data.get("types", {}).items():
        if kind not in APPLICATION_TYPES:
            raise ValueError(f"config/fees.toml: unknown application type {kind!r}")
        for item in entry["items"]:
            try:
                amount = Decimal(item["amount"])
            except InvalidOperation:
                raise ValueError(f"config/fees.toml: {kind}: amount {item['amount']!r} is not a number") from None
            if amount < 0 or amount != amount.quantize(Decimal("0.01")):
                raise ValueError(
                    f"config/fees.toml: {kind}: amount {item['amount']!r} must be ≥ 0 and exact to the fen"
                )
        table[kind] = [dict(i) for i in entry["items"]]
    missing = sorted(set(APPLICATION_TYPES) - set(table))
    if missing:
        raise ValueError(f"config/fees.toml: no fees for: {', '.join(missing)}")
    return table
