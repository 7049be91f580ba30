"""Mapping profiles: a loan system's export layout → canonical applications, as data (TOML).

A new loan system is a new profile in ``config/mappings/`` (or any path), never new code. A
profile says how to read the file (``[source]``, see connectors/readers.py), which rows make one
application (``[identity]``), which business type each is (``[type]``), where each canonical
field comes from (``[[fields]]``), how the declaration is formed (``[declaration]``), where the
materials are (``[materials]``) and how receipts go back (``[receipts]``). docs/agent.md has the
whole schema; config/mappings/*.toml are worked examples.

Mapping never raises on bad data: every problem becomes a :class:`FieldError` naming the row,
the source column, the value (masked when it is personal data) and what was expected.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.readers import SourceRecord, row_label
from sdk.identifiers import normalise_code, normalise_text
from sdk.models import APPLICATION_TYPES
from sdk.privacy import mask_id, mask_name

__all__ = ["FieldError", "FieldSpec", "MappedApplication", "Profile", "load_profile", "map_records"]

CHINA = timezone(timedelta(hours=8))
DATE_FORMATS = ["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d", "%Y%m%d"]
TRUE = {"是", "y", "yes", "true", "1", "有", "√"}
FALSE = {"否", "n", "no", "false", "0", "无", ""}
PERSONAL_KINDS = {"name", "id"}
IDENTIFIER_KINDS = {"id", "unit_id", "certificate_number"}
NUMERIC_IDENTIFIER = (
    "an identifier stored as text: this cell is a spreadsheet number, and a spreadsheet number keeps only "
    "15 significant digits, so the digits after them are lost (单元格是数字而非文本：电子表格的数字只保留15位有效数字，"
    "其后各位已丢失。请把该列设为文本格式后重新导出)"
)

Kind = Literal["text", "name", "id", "unit_id", "certificate_number", "amount", "date", "datetime", "int", "bool"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    format: Literal["csv", "xlsx", "json", "jsonl", "xml", "fixed"]
    encoding: str | list[str] | None = None
    delimiter: str = ","
    header_row: int = Field(default=1, ge=1)
    sheet: str | None = None
    records: str | None = None
    skip_lines: int = 0
    fields: list[dict[str, Any]] = Field(default_factory=list, description="fixed-width: name, start, width (bytes)")
    patterns: list[str] = Field(default_factory=lambda: ["*"], description="file names this profile reads")
    all_or_nothing: bool = False

    def reader_options(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class IdentitySpec(_Strict):
    loan_no: str = Field(description="the column holding the loan number (贷款编号)")
    reference: str = Field(
        default="{loan_no}-{type_code}",
        description="client_reference template: {loan_no}, {type}, {type_code}, or {column name}",
    )
    group_by: list[str] = Field(default_factory=list, description="rows sharing these columns make one application")


class CombineRule(_Strict):
    when: list[str]
    type: str


class TypeSpec(_Strict):
    column: str | None = None
    map: dict[str, str] = Field(default_factory=dict)
    constant: str | None = None
    combine: list[CombineRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> TypeSpec:
        if (self.column is None) == (self.constant is None):
            raise ValueError("[type] needs exactly one of column or constant")
        for name in [*self.map.values(), *(r.type for r in self.combine), *filter(None, [self.constant])]:
            if name not in APPLICATION_TYPES:
                raise ValueError(f"[type]: unknown application type {name!r}; known: {', '.join(APPLICATION_TYPES)}")
        return self


class FieldSpec(_Strict):
    target: str = Field(description="canonical path, e.g. terms.secured_amount or mortgagors[].name")
    column: str | None = None
    value: Any = None
    kind: Kind = "text"
    map: dict[str, str] = Field(default_factory=dict)
    strict_map: bool = True
    unit: Literal["元", "万元"] = "元"
    unit_column: str | None = None
    formats: list[str] = Field(default_factory=lambda: list(DATE_FORMATS))
    split: str | None = None
    default: Any = None
    max_amount: Decimal | None = Field(default=None, gt=0, description="this field's bound (元), else [limits]")
    types: list[str] = Field(default_factory=list, description="only for these application types")

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        if self.column is None and self.value is None:
            raise ValueError(f"field {self.target!r}: give a column or a constant value")
        if self.target.count("[]") > 1:
            raise ValueError(f"field {self.target!r}: at most one [] per target")
        for t in self.types:
            if t not in APPLICATION_TYPES:
                raise ValueError(f"field {self.target!r}: unknown application type {t!r}")
        return self


class InquirySpec(_Strict):
    code: str
    question: str
    answer: str


class DeclarationSpec(_Strict):
    operator: str | None = Field(default=None, description="column of the 经办人 account; else the agent's default")
    signatures: str | None = Field(default=None, description="column of e-signature ids, in applicant order")
    signature_split: str = ";"
    signed_at: str | None = Field(default=None, description="column of the signing date or time")
    commitment: str | bool = True
    inquiry: list[InquirySpec] = Field(
        default_factory=lambda: [
            InquirySpec(code="true_intent", question="申请登记事项是否为申请人的真实意思表示", answer="是"),
            InquirySpec(code="property_disputed", question="申请登记的不动产是否存在争议", answer="否"),
        ]
    )


class MaterialsSpec(_Strict):
    folder: str = "materials"
    pattern: str = Field(default="{loan_no}_", description="file name prefix (before the material code or name)")
    manifest: str | None = Field(default=None, description="a column of code:filename pairs instead of the folder rule")
    manifest_split: str = ";"


class LimitsSpec(_Strict):
    """Plausibility bounds: a value beyond them is held (quarantined with the likely slip), not sent."""

    max_amount: Decimal = Field(
        default=Decimal(100_000_000),
        gt=0,
        description="the largest plausible amount (元) of any amount field; default 1亿元, a residential mortgage",
    )


class ReceiptsSpec(_Strict):
    format: Literal["csv", "json"] = "csv"
    encoding: str = "utf-8"
    folder: str = "receipts"


class Profile(_Strict):
    """One loan system's export layout (a TOML file)."""

    name: str
    description: str = ""
    source: SourceSpec
    identity: IdentitySpec
    type: TypeSpec
    fields: list[FieldSpec]
    declaration: DeclarationSpec = DeclarationSpec()
    materials: MaterialsSpec = MaterialsSpec()
    receipts: ReceiptsSpec = ReceiptsSpec()
    limits: LimitsSpec = LimitsSpec()
    path: str = ""


def load_profile(name_or_path: str | Path, *, base: Path | None = None) -> Profile:
    """A profile by path, or by name from ``config/mappings/`` (``corebank_csv`` → corebank_csv.toml).

    Raises:
        FileNotFoundError: no such profile.
        ValueError: the profile is not valid (the message names the problem).
    """
    candidate = Path(name_or_path)
    if base is not None and not candidate.is_absolute():
        candidate = base / candidate
    if candidate.suffix == ".toml" and candidate.exists():
        text, where = candidate.read_text(encoding="utf-8"), str(candidate)
    else:
        entry = resources.files("config").joinpath("mappings", f"{name_or_path}.toml")
        if not entry.is_file():
            raise FileNotFoundError(
                f"no mapping profile {str(name_or_path)!r} (a .toml path or a name in config/mappings)"
            )
        text, where = entry.read_text(encoding="utf-8"), f"config/mappings/{name_or_path}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from None
    try:
        return Profile.model_validate({**data, "path": where})
    except Exception as exc:
        raise ValueError(f"{where}: {exc}") from None


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "row": self.row,
            "field": self.field,
            "value": self.value,
            "expected": self.expected,
            "target": self.target,
        }

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "file"
        shown = f"{self.value!r}" if self.value else "(empty)"
        return f"{self.file}: {where}, field {self.field!r}: {shown} — expected {self.expected}"


def _mask(kind: str, target: str, value: str) -> str:
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


def parse_datetime(value: str, formats: list[str]) -> str:
    text = normalise_text(value)
    try:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=CHINA)).isoformat()
    except ValueError:
        pass
    day = date.fromisoformat(parse_date(text, formats))
    return datetime.combine(day, time(9, 0), CHINA).isoformat()


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


# --- paths -----------------------------------------------------------------------------------

_STEP = re.compile(r"([^.\[\]]+)|\[(\d*)\]")


def _steps(target: str) -> list[str | int | None]:
    """``mortgagors[].name`` → ["mortgagors", None, "name"]; ``properties[0].unit_id`` → [..., 0, ...]."""
    out: list[str | int | None] = []
    for m in _STEP.finditer(target):
        if m.group(1) is not None:
            out.append(m.group(1))
        else:
            out.append(int(m.group(2)) if m.group(2) else None)
    return out


def _set(doc: dict[str, Any], steps: list[str | int], value: Any) -> None:
    cur: Any = doc
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        nxt = None if last else steps[i + 1]
        if isinstance(step, int):
            while len(cur) <= step:
                cur.append({} if not isinstance(nxt, int) else [])
            if last:
                cur[step] = value
            else:
                cur = cur[step]
        else:
            if last:
                cur[step] = value
            else:
                if step not in cur:
                    cur[step] = [] if isinstance(nxt, int) else {}
                cur = cur[step]


def concrete(steps: list[str | int]) -> str:
    out = ""
    for s in steps:
        out += f"[{s}]" if isinstance(s, int) else (f".{s}" if out else s)
    return out


def _column_values(record: SourceRecord, column: str) -> list[tuple[str, str]]:
    """The (key, value) pairs a column spec addresses; ``[]`` in a column spans a repeated key."""
    if "[]" not in column:
        return [(column, record.values[column])] if column in record.values else []
    head, tail = column.split("[]", 1)
    pattern = re.compile(re.escape(head) + r"(?:\.(\d+)|\[(\d+)\])?" + re.escape(tail) + "$")
    found = []
    for key, value in record.values.items():
        m = pattern.match(key)
        if m:
            found.append((int(m.group(1) or m.group(2) or 0), key, value))
    return [(k, v) for _, k, v in sorted(found)]


# --- rows → applications -------------------------------------------------------------------


@dataclass
class Provenance:
    row: int | None
    column: str
    value: str
    kind: str


@dataclass
class MappedApplication:
    """The canonical application (wire JSON, not yet validated) built from one group of rows."""

    file: str
    rows: list[int]
    loan_no: str
    type: str | None
    reference: str
    data: dict[str, Any]
    operator: str | None
    signature_ids: list[str]
    signed_at: str | None
    provenance: dict[str, Provenance] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)
    records: list[SourceRecord] = field(default_factory=list)

    def error(self, row: int | None, column: str, value: str, expected: str, target: str = "", kind: str = "") -> None:
        self.errors.append(FieldError(row, column, _mask(kind, target, value), expected, target, self.file))


TYPE_CODES = {
    "mortgage_first": "DYSC",
    "mortgage_change": "DYBG",
    "mortgage_discharge": "DYZX",
    "purchase_notice": "YG",
    "mortgage_notice": "DYYG",
    "purchase_and_mortgage_notice": "YGDY",
    "mortgage_notice_conversion": "YGZB",
    "maximum_determination": "ZGQD",
    "mortgage_first_with_determination": "DYQD",
}


def _group_key(record: SourceRecord, profile: Profile) -> tuple[str, ...]:
    cols = profile.identity.group_by or [profile.identity.loan_no, *(filter(None, [profile.type.column]))]
    return tuple(normalise_text(record.values.get(c, "")) for c in cols)


def _type_of(group: list[SourceRecord], profile: Profile, app: MappedApplication) -> str | None:
    spec = profile.type
    if spec.constant:
        return spec.constant
    assert spec.column is not None
    raw_values = []
    for r in group:
        raw = normalise_text(r.values.get(spec.column, ""))
        if raw not in raw_values:
            raw_values.append(raw)
    for rule in spec.combine:
        if sorted(raw_values) == sorted(normalise_text(w) for w in rule.when):
            return rule.type
    if len(raw_values) > 1:
        app.error(
            group[0].row,
            spec.column,
            " / ".join(raw_values),
            "one business type per application (or a [[type.combine]] rule for these values)",
        )
        return None
    raw = raw_values[0] if raw_values else ""
    if raw in spec.map:
        return spec.map[raw]
    if raw in APPLICATION_TYPES:
        return raw
    app.error(group[0].row, spec.column, raw, "one of " + ", ".join(repr(k) for k in spec.map))
    return None


def _render_reference(template: str, loan_no: str, kind: str | None, record: SourceRecord) -> str:
    values = {**record.values, "loan_no": loan_no, "type": kind or "", "type_code": TYPE_CODES.get(kind or "", "")}
    try:
        text = template.format_map(values)
    except (KeyError, ValueError, IndexError):
        text = loan_no
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", normalise_text(text))[:64]


def map_group(group: list[SourceRecord], profile: Profile, file: str) -> MappedApplication:
    first = group[0]
    loan_no = normalise_text(first.values.get(profile.identity.loan_no, ""))
    app = MappedApplication(file, [r.row for r in group], loan_no, None, "", {}, None, [], None, records=group)
    if not loan_no:
        app.error(first.row, profile.identity.loan_no, "", "the loan number (贷款编号)")
    elif not re.fullmatch(r"[A-Za-z0-9_.:-]{1,48}", loan_no):
        app.error(
            first.row,
            profile.identity.loan_no,
            loan_no,
            "a loan number of letters, digits, '-', '_', '.', ':' (at most 48)",
        )
    _record_problems(group, profile, app)
    kind = _type_of(group, profile, app)
    app.type = kind
    app.reference = _render_reference(profile.identity.reference, loan_no, kind, first)
    data: dict[str, Any] = {"type": kind, "client_reference": app.reference}
    scalars: dict[str, tuple[Any, Provenance]] = {}
    lists: dict[tuple[str, ...], dict[tuple[int, int], dict[tuple[str | int, ...], tuple[Any, Provenance]]]] = {}
    list_constants: dict[tuple[str, ...], dict[tuple[str | int, ...], Any]] = {}
    for spec in profile.fields:
        if spec.types and kind not in spec.types:
            continue
        steps = _steps(spec.target)
        if spec.column is None and None in steps:  # a constant for every element of a list
            cut = steps.index(None)
            rest = tuple(s for s in steps[cut + 1 :] if s is not None)
            list_constants.setdefault(tuple(str(s) for s in steps[:cut]), {})[rest] = spec.value
            continue
        for idx, record in enumerate(group):
            unit = None
            if spec.unit_column:
                unit = normalise_text(record.values.get(spec.unit_column, "")) or None
                if unit not in (None, "元", "万元"):
                    app.error(record.row, spec.unit_column, unit or "", "元 or 万元")
                    continue
            cells = [("", spec.value)] if spec.column is None else _column_values(record, spec.column)
            items: list[tuple[int, str, str]] = []
            for k, (key, raw) in enumerate(cells):
                if not isinstance(raw, str):
                    items.append((k, key, raw))
                elif spec.split and None in steps:
                    items += [(k * 100 + j, key, part) for j, part in enumerate(p for p in raw.split(spec.split))]
                else:
                    items.append((k, key, raw))
            for k, key, raw in items:
                if isinstance(raw, str) and not raw.strip():
                    if spec.default is None:
                        continue
                    raw = spec.default
                prov = Provenance(record.row, key or "(constant)", raw if isinstance(raw, str) else str(raw), spec.kind)
                if key in record.numbers:
                    if spec.kind in IDENTIFIER_KINDS:
                        app.error(record.row, key, raw, NUMERIC_IDENTIFIER, spec.target, spec.kind)
                        continue
                    if spec.kind in ("date", "datetime") and record.numbers[key]:
                        raw = record.numbers[key]  # a date serial, whatever number format the workbook shows
                try:
                    value = convert(spec, raw, unit) if isinstance(raw, str) else raw
                    if spec.kind == "amount" and isinstance(raw, str):
                        bound = spec.max_amount or profile.limits.max_amount
                        check_amount_bound(value, raw.strip(), unit or spec.unit, bound)
                except ValueError as exc:
                    app.error(record.row, key or spec.target, raw, str(exc), spec.target, spec.kind)
                    continue
                if None in steps:
                    cut = steps.index(None)
                    head = tuple(str(s) for s in steps[:cut])
                    tail: tuple[str | int, ...] = tuple(s for s in steps[cut + 1 :] if s is not None)
                    lists.setdefault(head, {}).setdefault((idx, k), {})[tail] = (value, prov)
                else:
                    path = concrete([s for s in steps if s is not None])
                    if path in scalars and scalars[path][0] != value:
                        other = scalars[path][1]
                        app.error(
                            record.row,
                            key or spec.target,
                            prov.value,
                            f"the same value as row {other.row} ({_mask(spec.kind, path, other.value)}) — rows "
                            "of one application must agree",
                            path,
                            spec.kind,
                        )
                        continue
                    scalars[path] = (value, prov)
                if spec.column is None:
                    break  # a constant is set once
            if spec.column is None:
                break
    for path, (value, prov) in scalars.items():
        _set(data, [int(s) if s.isdigit() else s for s in _path_steps(path)], value)
        app.provenance[path] = prov
    for head, elements in lists.items():
        for n, (_, parts) in enumerate(sorted(elements.items())):
            for tail, (value, prov) in parts.items():
                steps = [*head, n, *tail]
                _set(data, list(steps), value)
                app.provenance[concrete(list(steps))] = prov
            for tail, value in list_constants.get(head, {}).items():
                if tail not in parts:
                    _set(data, [*head, n, *tail], value)
    _declaration_inputs(group, profile, app)
    app.data = data
    return app


def _record_problems(group: list[SourceRecord], profile: Profile, app: MappedApplication) -> None:
    """What the reader saw in a cell (characters not the same on every system), and exact duplicate rows."""
    kinds = {spec.column: spec.kind for spec in profile.fields if spec.column}
    for record in group:
        for column, why in record.problems:
            app.error(record.row, column, record.values.get(column, ""), why, kind=kinds.get(column, "name"))
    first: dict[tuple[tuple[str, str], ...], SourceRecord] = {}
    for record in group:
        key = tuple(sorted((k, normalise_text(v)) for k, v in record.values.items()))
        seen = first.setdefault(key, record)
        if seen is not record:
            app.error(
                record.row,
                "(整行)",
                "",
                f"a row that differs from row {seen.row}: it repeats {row_label(seen.row, seen.line)} exactly "
                f"(与{row_label(seen.row, seen.line)}完全相同：同一申请中同一人不能出现两次，请删除重复行)",
            )


def _path_steps(path: str) -> list[str]:
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _STEP.finditer(path)]


def _declaration_inputs(group: list[SourceRecord], profile: Profile, app: MappedApplication) -> None:
    spec = profile.declaration
    first = group[0]
    if spec.operator:
        op = normalise_text(first.values.get(spec.operator, ""))
        if not op:
            app.error(first.row, spec.operator, "", "the 经办人 account that prepared the row")
        app.operator = op or None
    if spec.signatures:
        ids: list[str] = []
        for r in group:
            raw = r.values.get(spec.signatures, "")
            ids += [s.strip() for s in raw.split(spec.signature_split) if s.strip()]
        app.signature_ids = ids
    if spec.signed_at:
        raw = first.values.get(spec.signed_at, "")
        if raw.strip():
            try:
                app.signed_at = parse_datetime(raw, DATE_FORMATS)
            except ValueError as exc:
                app.error(first.row, spec.signed_at, raw, str(exc))


def map_records(records: list[SourceRecord], profile: Profile, file: str) -> list[MappedApplication]:
    """Group an export's records into applications and map each group's fields."""
    groups: dict[tuple[str, ...], list[SourceRecord]] = {}
    for r in records:
        groups.setdefault(_group_key(r, profile), []).append(r)
    return [map_group(g, profile, file) for g in groups.values()]
