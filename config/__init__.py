"""RegBridge's data: materials checklists, mapping profiles, code tables. Ships in the wheel."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from sdk.checklists import CONDITIONS
from sdk.models import APPLICATION_TYPES, MaterialChecklist

__all__ = ["load_checklists"]


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
