"""登记资料查询 for branch staff (``regbridge query``): one query, or a batch from a file.

A query names the unit by 不动产单元号, 不动产权证书号 or 坐落 (seed 002 §2.1.7) and carries the applicant's
authorisation (授权书: number, the person authorising, when signed, validity period, 用途, e-signature
reference). The agent checks the authorisation before anything leaves the machine, with the same rules the
centre applies (:meth:`sdk.models.QueryAuthorisation.problems`): signed and not in the future, within its
validity period, for the mortgage business only, and — when the owners are known here (the 权利人 on the title
certificate the staff checked, given as ``owner_ids``) — signed by an owner. A refused query is not sent.

An answered query is the centre's signed 查询结果: the agent verifies the centre's signature
(:func:`sdk.certificates.verify_query_result`), stores it encrypted (the blob store: it names right holders) and
indexes it (``property_query:<query_id>`` in the state's meta); for branch staff and export rows it also fetches
the sealed 查询结果 (权属查询证明) the answer names (``document_id``), verifies it as a certificate (signed
metadata, digest, seal chaining to the enrolment bundle, visible text, that it is this query's) and stores it in the
document store with a sidecar (``property_query_document:<query_id>`` names where). Every query, answered or
refused at either end, leaves an audit record: who (operator), why (purpose, 授权书编号), what (the key), the
outcome and reasons.

Batch file (CSV, UTF-8 or GB18030), one query a row, headers in Chinese:
``不动产单元号, 不动产权证书号, 坐落`` (exactly one), ``授权书编号, 授权人姓名, 授权人证件号码, 签署时间,
有效期起, 有效期止, 授权用途, 电子签名, 经办人`` and optionally ``权利人证件号码`` (``;``-separated).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import sdk
from agent.mapping import Profile
from agent.mapping.profile import DATE_FORMATS
from agent.mapping.values import parse_datetime
from agent.messages import centre_out_of_reach, field_line, zh
from agent.pipeline.context import StageContext
from agent.pipeline.verify import CertificateRejected, verify_document, verify_notice_metadata
from connectors.documents import DocumentConflict, safe_key, safe_name
from connectors.readers.records import SourceRecord
from sdk.certificates import verify_query_result
from sdk.identifiers import normalise_text
from sdk.models import PropertyQuery, PropertyQueryResult
from sdk.privacy import mask_id, mask_name, mask_text

__all__ = [
    "BATCH_COLUMNS",
    "BatchRow",
    "QueryOutcome",
    "export_queries",
    "query_columns",
    "read_batch",
    "result_summary",
    "run_query",
    "stored_document",
    "stored_result",
]

log = logging.getLogger("regbridge.agent.query")

#: batch file header → field (the authorisation's fields are nested under ``authorisation``)
BATCH_COLUMNS: dict[str, str] = {
    "不动产单元号": "unit_id",
    "不动产权证书号": "title_certificate",
    "坐落": "location",
    "授权书编号": "authorisation.reference",
    "授权人姓名": "authorisation.applicant.name",
    "授权人证件号码": "authorisation.applicant.id_number",
    "签署时间": "authorisation.signed_at",
    "有效期起": "authorisation.valid_from",
    "有效期止": "authorisation.valid_until",
    "授权用途": "authorisation.purpose",
    "电子签名": "authorisation.signature_id",
    "经办人": "operator_id",
}
OWNERS_COLUMN = "权利人证件号码"
#: what a column must hold, in the words branch staff read
EXPECTED: dict[str, str] = {
    "不动产单元号": "28 位不动产单元号 (GB/T 37346)",
    "不动产权证书号": "不动产权证书号，如 皖(2024)长丰县不动产权第0000001号",
    "坐落": "登记簿记载的坐落",
    "授权书编号": "授权书编号 (1–64 字符)",
    "授权人姓名": "授权人姓名或名称",
    "授权人证件号码": "有效的居民身份证号码 (GB 11643，校验位正确) 或统一社会信用代码 (GB 32100)",
    "签署时间": "签署日期或时间，如 2026-11-30、2026/11/30、2026年11月30日、2026/11/30 09:00 或 2026-11-30T09:00+08:00",
    "有效期起": "日期，如 2026-12-31、2026/12/31 或 2026年12月31日",
    "有效期止": "日期，如 2026-12-31、2026/12/31 或 2026年12月31日",
    "授权用途": "授权用途",
    "电子签名": "电子签名引用",
    "经办人": "经办人账号 (或在配置中设 default_operator)",
}
_PERSONAL = {"authorisation.applicant.name", "authorisation.applicant.id_number"}


@dataclass
class QueryOutcome:
    """What became of one query.

    Attributes:
        outcome: ``answered``, ``refused_here`` (never sent), ``refused_by_centre``, ``unverified`` (the answer's
            signature or its sealed document failed a check: nothing kept), ``failed`` (the document cannot be
            downloaded now) or ``invalid`` (a bad row).
        reasons: ``(code, reason)`` pairs, reasons in Chinese for branch staff.
    """

    label: str
    outcome: str
    reasons: list[tuple[str, str]] = field(default_factory=list)
    result: PropertyQueryResult | None = None
    blob: str | None = None
    #: where the sealed 查询结果 is stored (document store location), when it was fetched
    document: str | None = None


def _key(query: PropertyQuery) -> str:
    """The idempotency key: the same query (same authorisation, same unit, same operator) is answered once."""
    digest = hashlib.sha256(query.model_dump_json().encode()).hexdigest()[:32]
    return f"query:{digest}"


def run_query(
    ctx: StageContext,
    query: PropertyQuery,
    *,
    owner_ids: set[str] | None = None,
    label: str = "",
    now: datetime | None = None,
    idempotency_key: str | None = None,
    document: bool = False,
    loan_no: str | None = None,
    branch: str | None = None,
    institution_uscc: str | None = None,
) -> QueryOutcome:
    """Check the authorisation, ask the centre, verify and store its answer; never raises for a refusal.

    With ``document`` (branch staff's queries, an export's query rows) the sealed 查询结果 is downloaded, verified
    and stored too (under ``loan_no``'s folder when given, inside ``branch``'s folder when given, as its
    certificates are: ``<branch>/<loan>/…``) — a document that fails a check refuses the answer
    (``unverified``, nothing kept); the register pre-flight and the collateral watch use the signed answer only.
    Behind a platform acting for branches the query is asked as the institution of ``institution_uscc`` (the
    application's branch: the pre-flight and the collateral watch), else of ``branch`` (``[branches]``), else as
    the head office.
    """
    now = now or datetime.now(UTC)
    label = label or (query.unit_id or query.title_certificate or query.location or "")
    auth = query.authorisation
    target = str(query.unit_id or query.title_certificate or query.location)
    detail = {"operator": query.operator_id, "authorisation": auth.reference, "purpose": query.purpose}
    problems = auth.problems(now=now, owner_ids=owner_ids)
    if problems:
        reasons = [(p.code, p.reason) for p in problems]
        ctx.audit.append("property.query", target, "refused_here", reasons=";".join(c for c, _ in reasons), **detail)
        return QueryOutcome(label, "refused_here", reasons)
    try:
        result = ctx.centre.query_property(
            query,
            idempotency_key=idempotency_key or _key(query),
            institution_uscc=institution_uscc or ctx.branch_uscc(branch),
        )
    except (sdk.ValidationFailed, sdk.PermissionDenied, sdk.NotFound) as exc:
        reasons = [(e.code or exc.code, mask_text(zh(e.detail or ""))) for e in exc.errors] or [
            (exc.code, mask_text(zh(str(exc.args[0]))))
        ]
        if isinstance(exc, sdk.NotFound):  # the centre's words are English: say what staff should check
            reasons = [("not_found", f"登记簿中查无此不动产（{mask_text(target)}）：请核对不动产单元号、"
                                     "不动产权证书号或坐落是否与不动产权证书一致")]  # fmt: skip
        ctx.audit.append(
            "property.query", target, "refused_by_centre", reasons=";".join(c for c, _ in reasons), **detail
        )
        return QueryOutcome(label, "refused_by_centre", reasons)
    try:
        verify_query_result(result, ctx.trust_for([result.unit_id]))  # behind a platform: the unit's county centre
    except sdk.SignatureError as exc:
        ctx.audit.append("property.query", target, "unverified", reasons=str(exc), **detail)
        ctx.store.raise_alert(f"query:{result.query_id}", f"查询结果 {result.query_id} 的中心签名无法验证: {exc}")
        return QueryOutcome(label, "unverified", [("signature", str(exc))])
    location = None
    if document:
        try:
            location = _keep_document(ctx, result, loan_no, branch)
        except (CertificateRejected, DocumentConflict) as exc:
            failed: list[str] = exc.reasons if isinstance(exc, CertificateRejected) else [str(exc)]
            ctx.audit.append("property.query", target, "unverified", query_id=result.query_id,
                             reasons="; ".join(failed), **detail)  # fmt: skip
            ctx.store.raise_alert(f"query:{result.query_id}", f"查询结果 {result.query_id} 的电子文书验证未通过，"
                                  "未保存: " + "; ".join(failed))  # fmt: skip
            return QueryOutcome(label, "unverified", [("document_rejected", mask_text(r)) for r in failed])
        except (sdk.TransportError, sdk.ServerError, sdk.RateLimited, sdk.RetryBudgetExhausted, sdk.NotFound) as exc:
            ctx.audit.append("property.query", target, "failed", query_id=result.query_id,
                             reasons=type(exc).__name__, **detail)  # fmt: skip
            said = centre_out_of_reach(exc)
            cause = said[1] if said else f"登记中心查无此文书：{type(exc).__name__}"
            why = f"查询结果证明暂时无法下载（{cause}），请稍后重试（同一查询不会重复计入）"
            return QueryOutcome(label, "failed", [("document_unavailable", why)], result)
    blob = ctx.blobs.put(result.model_dump_json().encode())
    with ctx.store.transaction():
        ctx.store.set_meta(f"property_query:{result.query_id}", blob)
        if location:
            ctx.store.set_meta(f"property_query_document:{result.query_id}", location)
    ctx.audit.append("property.query", target, "answered", query_id=result.query_id, blob=blob, location=location,
                     **detail)  # fmt: skip
    log.info("property query answered", extra={"query_id": result.query_id})
    return QueryOutcome(label, "answered", [], result, blob, location)


def _keep_document(
    ctx: StageContext, result: PropertyQueryResult, loan_no: str | None, branch: str | None = None
) -> str:
    """Download the sealed 查询结果 the signed answer names, verify it as a certificate is verified (the centre's
    signed metadata, the file's digest, its seal against the enrolment bundle's trust anchors, its visible text)
    and that it is this query's; store it with a sidecar (``<loan no or 登记资料查询>/<title>-<文书编号>``, under
    ``<branch>/`` when the row's branch is known, beside that branch's certificates).

    Raises:
        CertificateRejected: a check failed (every reason): nothing is stored.
        sdk.TransportError and the like: the centre cannot serve it now.
    """
    if not result.document_id:
        raise CertificateRejected(["the centre's 查询结果 names no sealed document (document_id)"])
    signed = ctx.centre.notice(result.document_id)
    trust = ctx.trust_for([result.unit_id])  # the anchors of the centre whose register answered
    meta = verify_notice_metadata(signed, trust)
    wrong = []
    if meta.kind != "query_result" or meta.query_id != result.query_id:
        wrong.append(f"the document {meta.notice_number} is not the 查询结果 of query {result.query_id}")
    if meta.unit_ids != [result.unit_id]:
        wrong.append("the document's 不动产单元号 is not the unit queried")
    if wrong:
        raise CertificateRejected(wrong)
    try:
        content = ctx.centre.download_notice(result.document_id, expected_sha256=meta.sha256)
    except sdk.DigestMismatch as exc:
        raise CertificateRejected([f"the file is not the one the centre signed: {exc}"]) from None
    sealed = verify_document(content, meta, trust, timeout=ctx.config.centre.timeout)
    suffix = ".ofd" if meta.media_type == "application/ofd" else ".pdf"
    key = safe_key(loan_no or "登记资料查询", f"{meta.title}-{meta.notice_number}", suffix)
    if branch:
        key = f"{safe_name(branch)}/{key}"
    sidecar = {
        "notice_id": meta.notice_id,
        "kind": meta.kind,
        "title": meta.title,
        "notice_number": meta.notice_number,
        "query_id": result.query_id,
        "unit_ids": meta.unit_ids,
        "issuing_authority": meta.issuing_authority,
        "issued_at": meta.issued_at.isoformat(),
        "operator": result.operator_id,
        "authorisation_reference": result.authorisation_reference,
        "loan_no": loan_no,
        "seized": result.seized,
        "objection": result.objection,
        "mortgaged": result.mortgaged,
        "verified": {"metadata_signature": trust.centre_key_id, "seal": sealed},
    }
    return ctx.documents.put(key, content, sidecar)


def stored_document(ctx: StageContext, query_id: str) -> str | None:
    """Where the sealed 查询结果 of a query is stored (None when none was kept)."""
    return ctx.store.get_meta(f"property_query_document:{query_id}")


def stored_result(ctx: StageContext, query_id: str) -> PropertyQueryResult | None:
    """A stored 查询结果, its centre signature verified again (None when no such query was kept)."""
    blob = ctx.store.get_meta(f"property_query:{query_id}")
    if blob is None:
        return None
    result = PropertyQueryResult.model_validate_json(ctx.blobs.get(blob))
    return verify_query_result(result, ctx.trust_for([result.unit_id]))


def _decode(raw: bytes) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Excel's 「Unicode 文本」: UTF-16 with its BOM
        return raw.decode("utf-16")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("文件既不是 UTF-8 也不是 GB18030 编码")


def _nest(flat: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        if value == "":
            continue
        here = out
        *parents, last = dotted.split(".")
        for p in parents:
            here = here.setdefault(p, {})
        here[last] = value
    return out


BatchRow = tuple[int, PropertyQuery | None, set[str] | None, list[tuple[str, str]]]


def read_batch(path: Path, *, default_operator: str | None = None) -> list[BatchRow]:
    """Every row of a batch file: ``(line, query or None, owner ids or None, errors)``; no row is dropped.

    An error names the file, line, column, the value (personal data masked) and what was expected.

    Raises:
        ValueError: the file cannot be decoded or lacks the columns a query needs (the whole file is refused).
    """
    text = _decode(path.read_bytes())
    first = text.split("\n", 1)[0]
    # a sheet saved as 「文本文件(制表符分隔)」 or 「Unicode 文本」 is tab-separated
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if first.count("\t") > first.count(",") else ",")
    headers = [h.strip() for h in reader.fieldnames or []]
    needed = ["授权书编号", "授权人姓名", "授权人证件号码", "签署时间", "电子签名"]
    missing = [h for h in needed if h not in headers]
    if missing or not {"不动产单元号", "不动产权证书号", "坐落"} & set(headers):
        raise ValueError(
            f"{path.name}: 缺少列 {', '.join(missing) or '不动产单元号/不动产权证书号/坐落'}"
            f"（需要 {', '.join(BATCH_COLUMNS)}）"
        )
    rows: list[BatchRow] = []
    for i, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        flat = {BATCH_COLUMNS[h]: row.get(h, "") for h in BATCH_COLUMNS if h in row}
        if not flat.get("operator_id") and default_operator:
            flat["operator_id"] = default_operator
        dates: list[tuple[str, str]] = []  # 2026/11/30, 2026年11月30日 … as the loan system and Excel write them
        for name in ("authorisation.signed_at", "authorisation.valid_from", "authorisation.valid_until"):
            if flat.get(name):
                try:
                    moment = parse_datetime(flat[name], DATE_FORMATS, day_at=time())  # a day alone: its start
                except ValueError:
                    column = next(h for h, f in BATCH_COLUMNS.items() if f == name)
                    dates.append((column, f"{path.name} 第 {i} 行 列「{column}」值 {flat[name]!r}：应为"
                                          f"{EXPECTED[column]}"))  # fmt: skip
                    continue
                flat[name] = moment if name.endswith("signed_at") else moment[:10]
        owners = {o.strip() for o in row.get(OWNERS_COLUMN, "").replace("；", ";").split(";") if o.strip()} or None
        if dates:
            rows.append((i, None, owners, dates))
            continue
        data = _nest(flat)
        data.setdefault("authorisation", {}).setdefault("applicant", {})
        applicant = data["authorisation"]["applicant"]
        uscc_like = len(applicant.get("id_number", "")) == 18 and not applicant.get("id_number", "")[:17].isdigit()
        applicant["kind"] = "organisation" if uscc_like else "person"
        try:
            rows.append((i, PropertyQuery.model_validate(data), owners, []))
        except ValidationError as exc:
            errors = []
            for e in exc.errors():
                where = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("person", "organisation")))
                if where == "authorisation.applicant":  # the party's own checks are of its 证件号码
                    where = "authorisation.applicant.id_number"
                column = next((h for h, f in BATCH_COLUMNS.items() if f == where), where or "(row)")
                value = flat.get(where, "")
                shown = mask_id(value) if where in _PERSONAL and value else value
                expected = EXPECTED.get(column, "只填不动产单元号、不动产权证书号、坐落中的一项")
                text = f"{path.name} 第 {i} 行 列「{column}」值 {shown!r}：应为{expected}（{zh(str(e['msg']))}）"
                errors.append((column, text))
            rows.append((i, None, owners, errors))
    return rows


def result_summary(result: PropertyQueryResult) -> dict[str, Any]:
    """What branch staff see of a 查询结果: flags and rights (certificate numbers, ranks, amounts; no names)."""
    return {
        "query_id": result.query_id,
        "unit_id": result.unit_id,
        "location": result.location,
        "seized": result.seized,
        "objection": result.objection,
        "mortgaged": result.mortgaged,
        "rights": [
            {
                "kind": r.kind,
                "certificate_number": r.certificate_number,
                "rank": r.rank,
                "amount": str(r.amount) if r.amount is not None else None,
            }
            for r in result.rights
        ],
        "answered_at": result.answered_at.isoformat(),
    }


def _column(profile: Profile, target: str) -> str | None:
    return next((f.column for f in profile.fields if f.target == target and f.column), None)


def query_columns(profile: Profile) -> dict[str, str | None]:
    """The export column each field of a query row comes from (None: not mapped), by the query's dotted field."""
    spec = profile.authorisation
    return {
        "unit_id": _column(profile, "properties[0].unit_id"),
        "title_certificate": _column(profile, "properties[0].title_certificate"),
        "location": _column(profile, "properties[0].location"),
        "authorisation.reference": spec.reference if spec else None,
        "authorisation.applicant.name": _column(profile, "mortgagors[].name"),
        "authorisation.applicant.id_number": _column(profile, "mortgagors[].id_number"),
        "authorisation.signed_at": (spec.signed_at if spec else None) or profile.declaration.signed_at,
        "authorisation.valid_until": spec.valid_until if spec else None,
        "authorisation.purpose": spec.purpose if spec else None,
        "authorisation.signature_id": profile.declaration.signatures,
        "operator_id": profile.declaration.operator,
    }


def export_queries(
    records: list[SourceRecord], profile: Profile, *, default_operator: str | None = None
) -> tuple[list[SourceRecord], list[BatchRow]]:
    """Split an export's rows: the ones asking for a 登记资料查询 (the profile's ``[authorisation] query_types`` in
    its ``[type]`` column) become queries — the unit from the column of ``properties[0].unit_id`` (else
    ``…title_certificate``, ``…location``), the person authorising from those of ``mortgagors[].name`` and
    ``…id_number``, the authorisation from ``[authorisation]`` (signing time from its ``signed_at`` or the
    declaration's column), the operator from the declaration's; the rest are the export's applications.

    Answers ``(application rows, [(row, query or None, None, errors)])``; no row is dropped.
    """
    spec = profile.authorisation
    column = profile.type.column
    if spec is None or not spec.query_types or column is None:
        return records, []
    wanted = {normalise_text(v) for v in spec.query_types}
    columns = query_columns(profile)
    rest: list[SourceRecord] = []
    found: list[BatchRow] = []
    for record in records:
        if normalise_text(record.values.get(column, "")) not in wanted:
            rest.append(record)
            continue
        values = {k: normalise_text(v) for k, v in record.values.items()}

        def cell(name: str | None, values: dict[str, str] = values) -> str:
            return values.get(name, "") if name else ""

        flat = {name: cell(col) for name, col in columns.items()}
        flat["authorisation.signature_id"] = flat["authorisation.signature_id"] or flat["authorisation.reference"]
        flat["operator_id"] = flat["operator_id"] or (default_operator or "")
        # one key names the unit: the 不动产单元号, else the 证书号, else the 坐落
        if flat["unit_id"]:
            flat["title_certificate"] = flat["location"] = ""
        elif flat["title_certificate"]:
            flat["location"] = ""
        errors: list[tuple[str, str]] = []

        def said(name: str, expected: str, value: str = "", record: SourceRecord = record) -> tuple[str, str]:
            where = columns.get(name) or name
            if name.endswith("id_number") and value:
                shown = mask_id(value)
            else:
                shown = mask_name(value) if name.endswith(".name") and value else mask_text(value)
            return where, field_line(record.row, record.line, where, shown, expected)

        if not (flat["unit_id"] or flat["title_certificate"] or flat["location"]):
            errors.append(said("unit_id", "不动产单元号（或不动产权证书号、坐落），登记资料查询须指明不动产"))
        for name, what in (("authorisation.reference", "授权书编号"), ("authorisation.applicant.name", "授权人姓名"),
                           ("authorisation.applicant.id_number", "授权人证件号码"),
                           ("authorisation.signed_at", "授权书签署时间")):  # fmt: skip
            if not flat[name]:
                errors.append(said(name, f"{what}（登记资料查询须附申请人的查询授权书）"))
        for name in ("authorisation.signed_at", "authorisation.valid_until"):
            if flat[name]:
                try:
                    moment = parse_datetime(flat[name], DATE_FORMATS, day_at=time())  # a day alone: its start
                except ValueError:
                    errors.append(said(name, "日期或时间，如 2026-11-30、2026/11/30 或 2026/11/30 09:00", flat[name]))
                    continue
                flat[name] = moment if name.endswith("signed_at") else moment[:10]
        if flat["authorisation.purpose"] in ("办理不动产抵押登记业务", "抵押登记", "抵押", ""):
            flat["authorisation.purpose"] = "mortgage"
        data = _nest(flat)
        applicant = data.setdefault("authorisation", {}).setdefault("applicant", {})
        number = applicant.get("id_number", "")
        applicant["kind"] = "organisation" if len(number) == 18 and not number[:17].isdigit() else "person"
        query = None
        if not errors:
            try:
                query = PropertyQuery.model_validate(data)
            except ValidationError as exc:
                for e in exc.errors():
                    where = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("person", "organisation")))
                    if where == "authorisation.applicant":  # the party's own checks are of its 证件号码
                        where = "authorisation.applicant.id_number"
                    column = next((h for h, f in BATCH_COLUMNS.items() if f == where), "")
                    reason = zh(str(e["msg"]))
                    expected = EXPECTED.get(column, reason)
                    errors.append(said(where, f"{expected}（{reason}）", flat.get(where, "")))
        found.append((record.row, query, None, errors))
    return rest, found
