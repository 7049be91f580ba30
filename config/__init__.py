"""RegBridge's data: materials checklists, mapping profiles, code tables, time limits. Ships in the wheel."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib import resources

from sdk.checklists import CONDITIONS
from sdk.dialects.fields import FieldDictionary
from sdk.models import APPLICATION_TYPES, MaterialChecklist
from sdk.register_checks import RegisterRule
from sdk.support.working_days import WorkingCalendar, beijing_date, end_of_day

__all__ = [
    "TimeLimit", "TimeLimits", "load_checklists", "load_dialect", "load_districts", "load_fees",
    "load_register_checks", "load_time_limits", "working_calendar",
]


@cache
def load_register_checks() -> tuple[RegisterRule, ...]:
    """The register checks of ``config/register_checks.toml`` (:mod:`sdk.register_checks`), shared by the agent's
    pre-flight and the sandbox's review.

    Raises:
        ValueError: a rule names an unknown application type or check, or a code twice.
    """
    data = tomllib.loads(resources.files(__name__).joinpath("register_checks.toml").read_text(encoding="utf-8"))
    rules = tuple(RegisterRule.model_validate(r) for r in data["rule"])
    for r in rules:
        unknown = sorted(r.types - set(APPLICATION_TYPES))
        if unknown:
            raise ValueError(f"config/register_checks.toml: rule {r.code!r} names unknown types {unknown}")
    if len({r.code for r in rules}) != len(rules):
        raise ValueError("config/register_checks.toml: a rule code appears twice")
    return rules


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
def load_dialect(name: str) -> FieldDictionary:
    """A centre dialect's field dictionary and code tables (``config/dialects/<name>.toml``, docs/dialects.md).

    Raises:
        ValueError: no such dialect, or its file is wrong (naming the file and the entry).
    """
    entry = resources.files(__name__).joinpath("dialects", f"{name}.toml")
    if not name.isidentifier() or not entry.is_file():
        raise ValueError(f"no dialect {name!r} in config/dialects/")
    return FieldDictionary.from_toml(entry.read_text(encoding="utf-8"), source=f"config/dialects/{name}.toml")


@cache
def load_districts(name: str) -> dict[str, str]:
    """A dialect's ``[districts]``: 行政区划代码 (6 digits) → the county centre's name behind the platform.

    Raises:
        ValueError: a code that is not 6 digits.
    """
    load_dialect(name)
    data = tomllib.loads(resources.files(__name__).joinpath("dialects", f"{name}.toml").read_text(encoding="utf-8"))
    table = dict(data.get("districts", {}))
    for code, centre in table.items():
        if not (len(code) == 6 and code.isdigit() and isinstance(centre, str)):
            raise ValueError(f"config/dialects/{name}.toml: [districts] {code!r} is not a 6-digit 行政区划代码")
    return table


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


@dataclass(frozen=True)
class TimeLimit:
    """One business type's committed time limit (承诺办结时限) at one centre.

    Attributes:
        working_days: the limit, in working days counted from the day after 受理.
        source: where the number comes from (the seed, or the centre's published guide).
        centre: the 行政区划代码 whose own commitment this is; None for the project's default.
    """

    working_days: int
    source: str
    centre: str | None = None

    def due(self, accepted_at: datetime, calendar: WorkingCalendar) -> datetime:
        """The instant the limit runs out: the end of its last working day (Beijing time)."""
        return end_of_day(calendar.add_working_days(beijing_date(accepted_at), self.working_days))


@dataclass(frozen=True)
class TimeLimits:
    """Every business type's limit, by default and per centre (``config/time_limits.toml``)."""

    defaults: dict[str, int]
    default_source: str
    centres: dict[str, tuple[str, dict[str, int]]]  # 行政区划代码 → (source, {type: working days})

    def limit(self, application_type: str, centre: str | None = None) -> TimeLimit:
        """The limit of ``application_type`` at ``centre`` (a 行政区划代码; the default where it states none).

        Raises:
            KeyError: an unknown application type.
        """
        if centre is not None and centre in self.centres:
            source, limits = self.centres[centre]
            if application_type in limits:
                return TimeLimit(limits[application_type], source, centre)
        return TimeLimit(self.defaults[application_type], self.default_source)


def _days(where: str, kind: str, value: object) -> int:
    if kind not in APPLICATION_TYPES:
        raise ValueError(f"{where}: unknown application type {kind!r}")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: {kind} = {value!r}: expected a whole number of working days ≥ 0")
    return value


@cache
def load_time_limits() -> TimeLimits:
    """The committed time limits of ``config/time_limits.toml``, checked on load.

    Raises:
        ValueError: an unknown type, a limit that is not a whole number ≥ 0, a source missing, or a
            business type without a default.
    """
    where = "config/time_limits.toml"
    data = tomllib.loads(resources.files(__name__).joinpath("time_limits.toml").read_text(encoding="utf-8"))
    defaults = {k: _days(f"{where} [defaults.limits]", k, v) for k, v in data["defaults"]["limits"].items()}
    missing = sorted(set(APPLICATION_TYPES) - set(defaults))
    if missing:
        raise ValueError(f"{where}: no default limit for: {', '.join(missing)}")
    centres: dict[str, tuple[str, dict[str, int]]] = {}
    for code, entry in data.get("centres", {}).items():
        if not entry.get("source"):
            raise ValueError(f"{where}: [centres.{code!r}] states no source")
        limits = {k: _days(f"{where} [centres.{code!r}]", k, v) for k, v in entry.get("limits", {}).items()}
        centres[code] = (str(entry["source"]), limits)
    return TimeLimits(defaults, str(data["defaults"]["source"]), centres)


@cache
def working_calendar() -> WorkingCalendar:
    """The working-day calendar: chinese-calendar where installed and it knows the year, else the fallback
    table of ``config/time_limits.toml`` (``[holidays.<year>]``), else weekends alone.

    Raises:
        ValueError: a table lists a date of another year, or a year without a source.
    """
    where = "config/time_limits.toml"
    data = tomllib.loads(resources.files(__name__).joinpath("time_limits.toml").read_text(encoding="utf-8"))
    holidays: dict[int, list[date]] = {}
    workdays: dict[int, list[date]] = {}
    for year, entry in data.get("holidays", {}).items():
        if not entry.get("source"):
            raise ValueError(f"{where}: [holidays.{year}] states no source")
        holidays[int(year)] = list(entry.get("holidays", []))
        workdays[int(year)] = list(entry.get("workdays", []))
    return WorkingCalendar(holidays=holidays, workdays=workdays)
