"""Rows → applications: an export's records grouped, typed and mapped to the canonical wire JSON."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agent.mapping.profile import DATE_FORMATS, IDENTIFIER_KINDS, NUMERIC_IDENTIFIER, Profile
from agent.mapping.values import FieldError, check_amount_bound, convert, mask_value, parse_datetime
from connectors.readers import SourceRecord, row_label
from sdk.identifiers import normalise_text
from sdk.models import APPLICATION_TYPES

__all__ = ["TYPE_CODES", "MappedApplication", "Provenance", "map_group", "map_records"]

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
    #: (row, file name) of each applicant's signed PDF, in applicant order (the profile's esignatures column)
    esignature_files: list[tuple[int | None, str]] = field(default_factory=list)
    records: list[SourceRecord] = field(default_factory=list)
    #: the branch the loan belongs to, from the profile's ``declaration.branch`` column (None: the inbox's)
    branch: str | None = None
    #: the 查询授权书 on file (profile ``[authorisation]``): reference, signed_at, valid_until, purpose — no personal
    #: data (the person authorising is the first applicant of ``data``)
    authorisation: dict[str, str] | None = None

    def error(self, row: int | None, column: str, value: str, expected: str, target: str = "", kind: str = "") -> None:
        line = next((r.line for r in self.records if r.row == row), None) if row is not None else None
        self.errors.append(FieldError(row, column, mask_value(kind, target, value), expected, target, self.file, line))


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
        target = spec.target
        steps = _steps(target)
        if spec.column is None and None in steps:  # a constant for every element of a list
            cut = steps.index(None)
            rest = tuple(s for s in steps[cut + 1 :] if s is not None)
            list_constants.setdefault(tuple(str(s) for s in steps[:cut]), {})[rest] = spec.value
            continue
        for idx, record in enumerate(group):
            if spec.routes:  # the target is chosen by another column's value (一般 → secured, 最高额 → maximum)
                assert spec.route_by is not None
                choice = normalise_text(record.values.get(spec.route_by, ""))
                if choice not in spec.routes:
                    if _column_values(record, spec.column or "") and any(
                        v.strip() for _, v in _column_values(record, spec.column or "")
                    ):
                        app.error(
                            record.row, spec.route_by, choice, "one of " + ", ".join(repr(k) for k in spec.routes)
                        )
                    continue
                target = spec.routes[choice]
                steps = _steps(target)
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
                        app.error(record.row, key, raw, NUMERIC_IDENTIFIER, target, spec.kind)
                        continue
                    if spec.kind in ("date", "datetime") and record.numbers[key]:
                        raw = record.numbers[key]  # a date serial, whatever number format the workbook shows
                try:
                    value = convert(spec, raw, unit) if isinstance(raw, str) else raw
                    if spec.kind == "amount" and isinstance(raw, str):
                        bound = spec.max_amount or profile.limits.max_amount
                        check_amount_bound(value, raw.strip(), unit or spec.unit, bound)
                except ValueError as exc:
                    app.error(record.row, key or target, raw, str(exc), target, spec.kind)
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
                            key or target,
                            prov.value,
                            f"the same value as row {other.row} ({mask_value(spec.kind, path, other.value)}) — rows "
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
                element_steps: list[str | int] = [*head, n, *tail]
                _set(data, element_steps, value)
                app.provenance[concrete(element_steps)] = prov
            for tail, value in list_constants.get(head, {}).items():
                if tail not in parts:
                    _set(data, [*head, n, *tail], value)
    _declaration_inputs(group, profile, app)
    _authorisation_inputs(group, profile, app)
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
        # where the operator came from: a refusal of it names this row and column
        app.provenance["declaration.operator_id"] = Provenance(first.row, spec.operator, op, "text")
    if spec.branch:
        app.branch = normalise_text(first.values.get(spec.branch, "")) or None
    if spec.signatures:
        ids: list[str] = []
        for r in group:
            raw = r.values.get(spec.signatures, "")
            ids += [s.strip() for s in raw.split(spec.signature_split) if s.strip()]
        app.signature_ids = ids
    if spec.esignatures:
        for r in group:
            raw = r.values.get(spec.esignatures, "")
            app.esignature_files += [(r.row, s.strip()) for s in raw.split(spec.signature_split) if s.strip()]
    if spec.signed_at:
        raw = first.values.get(spec.signed_at, "")
        if raw.strip():
            try:
                app.signed_at = parse_datetime(raw, DATE_FORMATS)
            except ValueError as exc:
                app.error(first.row, spec.signed_at, raw, str(exc))


def _authorisation_inputs(group: list[SourceRecord], profile: Profile, app: MappedApplication) -> None:
    spec = profile.authorisation
    if spec is None:
        return
    first = group[0]
    reference = normalise_text(first.values.get(spec.reference, ""))
    if not reference:
        return  # no authorisation on file for this loan: it is sent without pre-flight
    found = {"reference": reference}
    for name, column in (("signed_at", spec.signed_at), ("valid_until", spec.valid_until)):
        raw = first.values.get(column, "").strip() if column else ""
        if not raw:
            continue
        try:
            moment = parse_datetime(raw, DATE_FORMATS)
        except ValueError as exc:
            app.error(first.row, column or "", raw, str(exc))
            continue
        found[name] = moment if name == "signed_at" else moment[:10]
    if "signed_at" not in found and app.signed_at:
        found["signed_at"] = app.signed_at
    if app.signature_ids:
        found["signature_id"] = app.signature_ids[0]
    if spec.purpose and first.values.get(spec.purpose, "").strip():
        purpose = normalise_text(first.values[spec.purpose])
        found["purpose"] = "mortgage" if purpose in ("办理不动产抵押登记业务", "抵押登记", "mortgage") else purpose
    app.authorisation = found


def map_records(records: list[SourceRecord], profile: Profile, file: str) -> list[MappedApplication]:
    """Group an export's records into applications and map each group's fields."""
    groups: dict[tuple[str, ...], list[SourceRecord]] = {}
    for r in records:
        groups.setdefault(_group_key(r, profile), []).append(r)
    return [map_group(g, profile, file) for g in groups.values()]
