"""Mapping profiles: a loan system's export layout → canonical applications, as data (TOML).

This module is the profile's schema and its loading; :mod:`agent.mapping.records` applies it.

A new loan system is a new profile in ``config/mappings/`` (or any path), never new code. A
profile says how to read the file (``[source]``, see connectors/readers/), which rows make one
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
from datetime import timedelta, timezone
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.mapping.validation import ProfileProblem, key_lines, locate, target_problems
from sdk.models import APPLICATION_TYPES, SIGNED_DOCUMENT_CODES

__all__ = [
    "FieldSpec",
    "LimitsSpec",
    "Profile",
    "ProfileInvalid",
    "declaration_problems",
    "delivery_problems",
    "load_profile",
    "parse_profile",
    "profile_gaps",
    "profile_source",
    "query_problems",
]

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
    reapply_after_refusal: bool = Field(
        default=False,
        description="a changed row of a refused (withdrawn, cancelled, voided) application is applied for again "
        "as a new operation <reference>-R<n>; else it is held and `regbridge reapply` does it",
    )


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
    target: str = Field(default="", description="canonical path, e.g. terms.secured_amount or mortgagors[].name")
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
    route_by: str | None = Field(default=None, description="a column whose value chooses the target (routes)")
    routes: dict[str, str] = Field(
        default_factory=dict, description="route_by's value → target, e.g. 一般 → terms.secured_amount"
    )

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        if bool(self.routes) != bool(self.route_by):
            raise ValueError("routes and route_by go together: the column that chooses, and its value → target")
        if self.routes and self.column is None:
            raise ValueError("a routed field reads a column")
        if not self.target and not self.routes:
            raise ValueError("give a target (or route_by and routes)")
        if self.column is None and self.value is None:
            raise ValueError(f"field {self.target!r}: give a column or a constant value")
        if self.target.count("[]") > 1:
            raise ValueError(f"field {self.target!r}: at most one [] per target")
        for t in self.types:
            if t not in APPLICATION_TYPES:
                raise ValueError(f"field {self.target!r}: unknown application type {t!r}")
        return self


class InquirySpec(_Strict):
    """One question of the 询问笔录 and where the applicant's answer is: a ``column`` of the export
    (the applicant's own answer, seed 003 细则 (五)); a constant ``answer`` is an older form that
    `profile check` and `doctor` refuse."""

    code: str
    question: str
    column: str | None = Field(default=None, description="the export column holding the applicant's answer")
    answer: str | None = Field(default=None, description="older form: a constant answer (refused by profile check)")

    @model_validator(mode="after")
    def _one(self) -> InquirySpec:
        if (self.column is None) == (self.answer is None):
            raise ValueError(f'询问笔录 {self.code}: give the answer\'s column (column = "...")')
        return self


class DeclarationSpec(_Strict):
    operator: str | None = Field(default=None, description="column of the 经办人 account; else the agent's default")
    branch: str | None = Field(
        default=None,
        description="column naming the branch (a key of the agent's [branches]) the loan belongs to; else the"
        " inbox's branch",
    )
    signatures: str | None = Field(default=None, description="column of e-signature ids, in applicant order")
    signature_split: str = ";"
    signed_at: str | None = Field(default=None, description="column of the signing date or time")
    esignatures: str | None = Field(
        default=None,
        description="column naming each applicant's signed PDF (电子签名文件, PAdES from the signing platform), a path"
        " relative to the export's folder; several split by signature_split, in applicant order",
    )
    signed_document: str = Field(
        default="application_form",
        description="the material code of the document the applicants sign (申请书 application_form, 询问笔录 "
        "inquiry_record): each signed PDF must be that material of the same loan, signed",
    )
    commitment: str | bool = True
    inquiry: list[InquirySpec] = Field(
        default_factory=lambda: [
            InquirySpec(code="true_intent", question="申请登记事项是否为申请人的真实意思表示", answer="是"),
            InquirySpec(code="property_disputed", question="申请登记的不动产是否存在争议", answer="否"),
        ]
    )


class AuthorisationSpec(_Strict):
    """The applicant's 查询授权书 on file with the loan (seed 001 §3: the applicant authorises the bank to query the
    register when applying): with it, the agent's pre-flight checks the application against the centre's register
    before sending it (agent/pipeline/preflight.py). The person authorising is the first applicant (抵押人)."""

    reference: str = Field(description="column of the 授权书编号")
    signed_at: str | None = Field(
        default=None, description="column of the signing date or time; else the declaration's signed_at"
    )
    valid_until: str | None = Field(default=None, description="column of 有效期止 (else 90 days from signing)")
    purpose: str | None = Field(default=None, description="column of the 授权用途 (else 办理不动产抵押登记业务)")
    query_types: list[str] = Field(
        default_factory=list,
        description="values of the [type] column that ask for a 登记资料查询 instead of an application (e.g. "
        "登记资料查询): such a row is queried with its authorisation and answered on a receipt line",
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
    authorisation: AuthorisationSpec | None = None
    materials: MaterialsSpec = MaterialsSpec()
    receipts: ReceiptsSpec = ReceiptsSpec()
    limits: LimitsSpec = LimitsSpec()
    path: str = ""


class ProfileInvalid(ValueError):
    """A profile with problems, each with the line of the TOML it is on (``problems``)."""

    def __init__(self, where: str, problems: list[ProfileProblem]) -> None:
        self.where = where
        self.problems = problems
        super().__init__("; ".join(f"{where}:{p.line}: {p.message}" for p in problems))


def profile_source(name_or_path: str | Path, *, base: Path | None = None) -> tuple[str, str]:
    """A profile's TOML text and where it is from: a path, or a name in ``config/mappings/``.

    Raises:
        FileNotFoundError: no such profile.
    """
    candidate = Path(name_or_path)
    if base is not None and not candidate.is_absolute():
        candidate = base / candidate
    if candidate.suffix == ".toml" and candidate.exists():
        return candidate.read_text(encoding="utf-8"), str(candidate)
    entry = resources.files("config").joinpath("mappings", f"{name_or_path}.toml")
    if not entry.is_file():
        raise FileNotFoundError(f"no mapping profile {str(name_or_path)!r} (a .toml path or a name in config/mappings)")
    return entry.read_text(encoding="utf-8"), f"config/mappings/{name_or_path}.toml"


def parse_profile(text: str, where: str) -> Profile:
    """A profile from its TOML text, checked beyond the schema: targets no application type has, map values
    the target cannot take, routes to unknown targets.

    Raises:
        ProfileInvalid: every problem found, each with its line.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ProfileInvalid(where, [ProfileProblem(int(m.group(1)) if m else 0, f"not valid TOML: {exc}")]) from None
    lines = key_lines(text)
    try:
        profile = Profile.model_validate({**data, "path": where})
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            shown = ".".join(str(x) if isinstance(x, str) else f"[{x}]" for x in loc).replace(".[", "[")
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(ProfileProblem(locate(lines, loc), f"{shown}: {message}" if shown else message))
        raise ProfileInvalid(where, problems) from None
    problems = []
    for i, spec in enumerate(profile.fields):
        targets: list[tuple[str, tuple[str | int, ...]]] = (
            [(spec.target, ("fields", i, "target"))] if spec.target else []
        )
        targets += [(t, ("fields", i, "routes", k)) for k, t in spec.routes.items()]
        for target, loc in targets:
            values = list(spec.map.values()) if spec.kind == "text" and not spec.routes else []
            if spec.kind == "text" and isinstance(spec.value, str) and spec.column is None:
                values.append(spec.value)
            for message in target_problems(target, spec.types, values):
                at = ("fields", i, "map") if message.startswith("map value") else loc
                problems.append(ProfileProblem(locate(lines, at), f"fields[{i}]: {message}"))
    if problems:
        raise ProfileInvalid(where, problems)
    return profile


def load_profile(name_or_path: str | Path, *, base: Path | None = None) -> Profile:
    """A profile by path, or by name from ``config/mappings/`` (``corebank_csv`` → corebank_csv.toml), valid and
    complete: it takes the applicants' declaration and their choice of certificate delivery from the loan system
    (:func:`profile_gaps`) — what the daemon and ``doctor`` load.

    Raises:
        FileNotFoundError: no such profile.
        ProfileInvalid: the profile is not valid or leaves a required part unmapped; each problem names its line
            (a ValueError).
    """
    text, where = profile_source(name_or_path, base=base)
    profile = parse_profile(text, where)
    gaps = profile_gaps(profile, text)
    if gaps:
        raise ProfileInvalid(where, gaps)
    return profile


def profile_gaps(profile: Profile, text: str = "") -> list[ProfileProblem]:
    """What a schema-valid profile leaves unmapped that an application needs from the loan system, each with the
    line of ``text`` (the profile's TOML) it is about: :func:`declaration_problems` (询问笔录, 承诺, e-signatures;
    seeds 002 §1.6.2, 003 细则 (四)(五)) and :func:`delivery_problems` (领证方式, seed 001 §3). ``[]`` when none.
    `profile check` exits 3 and ``doctor`` fails on them; the daemon does not start an inbox with them."""
    lines = key_lines(text) if text else {}
    found = [ProfileProblem(locate(lines, ("declaration",)), m) for m in declaration_problems(profile)]
    found += [ProfileProblem(locate(lines, ("fields", 0)), m) for m in delivery_problems(profile)]
    found += [ProfileProblem(locate(lines, ("authorisation", "query_types")), m) for m in query_problems(profile)]
    return found


def query_problems(profile: Profile) -> list[str]:
    """What a profile whose ``[authorisation] query_types`` asks for 登记资料查询 rows leaves unmapped that a query
    needs (seed 001 §3, seed 002 §2.1.7): the ``[type]`` column that marks the row, the unit (a ``[[fields]]`` of
    ``properties[0].unit_id``, ``…title_certificate`` or ``…location``), the person authorising
    (``mortgagors[].name`` and ``…id_number``), when the authorisation was signed (``[authorisation] signed_at`` or
    ``[declaration] signed_at``). One Chinese sentence per gap; ``[]`` when none (or no query rows are asked for)."""
    spec = profile.authorisation
    if spec is None or not spec.query_types:
        return []
    mapped = {f.target for f in profile.fields if f.column}
    found = []
    if not profile.type.column:
        found.append("[authorisation] query_types 需要 [type] column：查询行由业务类型列的值识别")
    units = ("properties[0].unit_id", "properties[0].title_certificate", "properties[0].location")
    if not mapped & set(units):
        found.append("登记资料查询行需要不动产单元号、不动产权证书号或坐落列：须有 [[fields]] target = "
                     '"properties[0].unit_id"（或 …title_certificate / …location）映射自导出列')  # fmt: skip
    for target, what in (("mortgagors[].name", "授权人姓名"), ("mortgagors[].id_number", "授权人证件号码")):
        if target not in mapped:
            found.append(f"登记资料查询行需要{what}：须有 [[fields]] target = {target!r} 映射自导出列")
    if not (spec.signed_at or profile.declaration.signed_at):
        found.append("登记资料查询行需要授权书签署时间：[authorisation] signed_at 或 [declaration] signed_at "
                     "须为导出列")
    return found


def delivery_problems(profile: Profile) -> list[str]:
    """Whether the profile says how each applicant chose to receive the certificate (领证方式, seed 001 §3: 电子证照
    下载, 邮寄 or 窗口领取): a ``[[fields]]`` whose target is ``delivery.method`` — a column, or a constant when the
    loan system offers one way only. One Chinese sentence when it is missing, else ``[]``."""
    targets = {f.target for f in profile.fields} | {t for f in profile.fields for t in f.routes.values()}
    if "delivery.method" in targets:
        return []
    return [
        f"配置 {profile.name} 未给出申请人选择的证书领取方式 (领证方式)：须有一个 [[fields]]，target = "
        '"delivery.method"，从导出列映射（如 map = { "电子" = "electronic", "邮寄" = "post", "自取" = "collection" }'
        '），或在贷款系统只提供一种方式时写常量 value = "electronic"（邮寄须再映射 delivery.address）'
    ]


def declaration_problems(profile: Profile) -> list[str]:
    """What the profile's ``[declaration]`` does not take from the loan system (seeds 002 §1.6.2, 003 细则
    (四)(五)): the 询问笔录 answers, the 承诺 and each applicant's e-signature must be export columns, never
    defaults. One Chinese sentence per gap; ``[]`` when all are mapped. `profile check` and `doctor` fail on them.
    """
    spec = profile.declaration
    problems = []
    if not spec.inquiry or any(q.column is None for q in spec.inquiry):
        constant = [q.code for q in spec.inquiry if q.column is None]
        problems.append(
            "[declaration] 未从导出文件映射询问笔录的回答：每个 [[declaration.inquiry]] 须给出回答所在的列 (column)"
            + (f"，以下为常量回答：{', '.join(constant)}" if constant else "，当前为默认问答")
        )
    if not isinstance(spec.commitment, str):
        problems.append("[declaration] 未从导出文件映射真实性承诺 (承诺)：commitment 须为列名，而非 true")
    if not spec.esignatures:
        problems.append(
            "[declaration] 未从导出文件映射申请人的电子签名文件：esignatures 须为列名"
            "（列中为签名后的PDF文件路径，相对于导出文件所在目录）"
        )
    if spec.signed_document not in SIGNED_DOCUMENT_CODES:
        problems.append(
            f"[declaration] signed_document = {spec.signed_document!r}：申请人电子签名的应是申请书或询问笔录"
            f"（{' 或 '.join(SIGNED_DOCUMENT_CODES)}），登记中心不接受对其他材料的签名"
        )
    return problems
