"""One field's value: converted by its kind (amounts, dates, names, identifiers), or a :class:`FieldError`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from agent.mapping.profile import CHINA, FALSE, TRUE, FieldSpec
from sdk.identifiers import normalise_code, normalise_text
from sdk.privacy import mask_id, mask_name

__all__ = [
    "FieldError",
    "amount_unit",
    "check_amount_bound",
    "convert",
    "mask_value",
    "normalise_name",
    "parse_amount",
    "parse_date",
    "parse_datetime",
    "parse_when",
]

# --- values ----------------------------------------------------------------------------------


@dataclass
class FieldError:
    """One problem with one field of one row: what the branch staff need to fix it."""

    row: int | None
    field: str
    value: str
    expected: str
    target: str = ""
    file: str = ""
    #: the physical line of the file where the record starts, when it is not the row a spreadsheet shows
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "row": self.row,
            "field": self.field,
            "value": self.value,
            "expected": self.expected,
            "target": self.target,
        }
        if self.line is not None and self.line != self.row:
            out["line"] = self.line
        return out

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "file"
        shown = f"{self.value!r}" if self.value else "(empty)"
        return f"{self.file}: {where}, field {self.field!r}: {shown} — expected {self.expected}"


def mask_value(kind: str, target: str, value: str) -> str:
    if not value:
        return value
    if kind == "id" or target.endswith("id_number") or target.endswith("phone"):
        return mask_id(value)
    if kind == "name" or target.endswith(".name"):
        return mask_name(value)
    return value


_BRACKETS = str.maketrans({"(": "（", ")": "）"})


def normalise_name(value: str) -> str:
    """Full-width letters and digits folded, brackets made full-width (as registers write them), spaces between
    Chinese characters removed."""
    text = normalise_text(value).translate(_BRACKETS)
    text = re.sub(r"(?<=[\u4e00-\u9fff（）])\s+(?=[\u4e00-\u9fff（）])", "", text)
    return re.sub(r"\s+", " ", text)


_CURRENCY = re.compile(r"^(?:¥|￥|RMB|CNY|人民币)")


def amount_unit(value: str, unit: str) -> str:
    """The unit an amount cell is in: its own suffix (``150万``, ``150万元``, ``150元``) or the column's."""
    text = normalise_text(value).rstrip()
    if text.endswith(("万元", "万")):
        return "万元"
    if text.endswith("元"):
        return "元"
    return unit


def parse_amount(value: str, unit: str) -> str:
    """An amount cell → 元 with two decimals (text). ``unit`` is the column's (元 or 万元); a cell may carry
    its own: ``150万``, ``150万元``, ``98.5元``; a currency sign or code before it (``¥``, ``￥``, ``RMB``,
    ``CNY``, ``人民币``) and thousands separators are read past.

    Raises:
        ValueError: not an exact non-negative amount (what was expected, in the unit).
    """
    text = normalise_text(value).replace(",", "").replace("，", "").replace(" ", "")
    text = _CURRENCY.sub("", text)
    if text.endswith("万元"):
        unit, text = "万元", text[:-2]
    elif text.endswith("万"):
        unit, text = "万元", text[:-1]
    elif text.endswith("元"):
        unit, text = "元", text[:-1]
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"an amount in {unit} such as 1,234.56") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"a non-negative amount in {unit}")
    if unit == "万元":
        amount *= 10000
    if amount.adjusted() >= 15:  # "1E+30" parses; no loan is a quadrillion 元, and quantize would overflow
        raise ValueError(f"an amount in {unit} below 10¹⁵ 元")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"an amount exact to the fen (分) in {unit}")
    return str(amount.quantize(Decimal("0.01")))


def parse_date(value: str, formats: list[str]) -> str:
    text = normalise_text(value)
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    try:  # an ISO date-time: keep its date
        return datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        pass
    raise ValueError("a date such as 2026-03-05, 2026/3/5 or 2026年3月5日")


def check_amount_bound(yuan: str, raw: str, unit: str, bound: Decimal) -> None:
    """An amount above the profile's plausibility bound is held: for a 万元 column, the likely slip is a
    figure in 元 (``1500000`` in 贷款金额(万元) would be 150亿元).

    Raises:
        ValueError: the amount is above ``bound`` (元), with what the user probably meant.
    """
    amount = Decimal(yuan)
    if amount <= bound:
        return
    shown = f"{bound:,.0f}"
    if amount_unit(raw, unit) == "万元" and amount / 10000 <= bound:
        raise ValueError(
            f"a plausible amount: {raw} 万元 = {amount:,.2f} 元, above this profile's bound of {shown} 元 — "
            f"did you mean 元? (金额 {raw} 按万元计为 {amount:,.2f} 元，超过合理上限 {shown} 元：是否应为 元？)"
        )
    raise ValueError(
        f"a plausible amount: {amount:,.2f} 元 is above this profile's bound of {shown} 元 "
        f"(金额 {amount:,.2f} 元 超过合理上限 {shown} 元，请核对)"
    )


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^(.*\S)\s+(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_when(value: str, formats: list[str]) -> tuple[datetime, bool]:
    """A date or a time as staff and loan systems write it — ISO 8601 (``2026-11-30``, ``2026-11-30T09:00+08:00``),
    a day in one of ``formats`` (``2026/11/30``, ``2026年11月30日``, ``20261130``…), or such a day and a clock time
    (``2026/11/30 09:00``) — as ``(moment, whole_day)``: ``moment`` naive unless an offset was written, at 00:00
    when only a day was (``whole_day``). The one parser of dates typed on the CLI, in a batch file or an export.

    Raises:
        ValueError: none of these forms (the message says what was expected).
    """
    text = normalise_text(value)
    try:
        moment = datetime.fromisoformat(text)
        return moment, len(text) <= 10 and "T" not in text and ":" not in text
    except ValueError:
        pass
    clock = _CLOCK.match(text)
    try:
        if clock:
            day = date.fromisoformat(parse_date(clock[1], formats))
            at = time(int(clock[2]), int(clock[3]), int(clock[4] or 0))
            return datetime.combine(day, at), False
        return datetime.combine(date.fromisoformat(parse_date(text, formats)), time()), True
    except ValueError:
        raise ValueError(
            "a date such as 2026-03-05, 2026/3/5 or 2026年3月5日, or a time such as 2026/3/5 09:00"
        ) from None


def parse_datetime(value: str, formats: list[str], *, day_at: time = time(9, 0)) -> str:
    """:func:`parse_when` as an ISO time in China time unless an offset was written; a day alone is at ``day_at``
    (an ISO day, ``2026-11-30``, at 00:00 as ISO 8601 reads it)."""
    moment, whole_day = parse_when(value, formats)
    if whole_day and not _ISO_DAY.match(normalise_text(value)):
        moment = datetime.combine(moment.date(), day_at)
    return (moment if moment.tzinfo else moment.replace(tzinfo=CHINA)).isoformat()


def convert(spec: FieldSpec, raw: str, unit: str | None = None) -> Any:
    """One cell → its canonical value. Raises ValueError with what was expected."""
    text = raw.strip()
    if spec.map:
        key = normalise_text(text)
        if key in spec.map:
            text = spec.map[key]
        elif text in spec.map:
            text = spec.map[text]
        elif spec.strict_map:
            raise ValueError("one of " + ", ".join(repr(k) for k in spec.map))
    kind = spec.kind
    if kind == "text":
        return normalise_text(text)
    if kind == "name":
        return normalise_name(text)
    if kind in ("id", "unit_id"):
        return normalise_code(text)
    if kind == "certificate_number":
        return re.sub(r"\s+", "", normalise_text(text))
    if kind == "amount":
        return parse_amount(text, unit or spec.unit)
    if kind == "date":
        return parse_date(text, spec.formats)
    if kind == "datetime":
        return parse_datetime(text, spec.formats)
    if kind == "int":
        try:
            return int(normalise_text(text))
        except ValueError:
            raise ValueError("a whole number") from None
    if kind == "bool":
        low = normalise_text(text).lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        raise ValueError("是 or 否 (yes or no)")
    raise ValueError(f"unknown kind {kind}")  # pragma: no cover - the profile model forbids it
