"""``regbridge profile check``: an export read through a profile as ingest would, changing nothing.

Every record's outcome (``queue``, ``supplement``, ``duplicate`` or ``quarantine`` with its errors),
the encoding the file was read in and the accounting (records read = the four outcomes), with
no state written, no blob kept and no file moved: the integrator's dry run of a new profile or
a new export. With an agent's config, the outcome of a record whose application was sent
before is read (read-only) from its state: a repeat is a ``duplicate``, a corrected row answers
its 补正; without one, every good record would be queued.

The JSON form (``--json``) is one object:
``{"file", "profile", "encoding", "records": N, "accounting": {"queue", "supplement", "duplicate",
"quarantine"}, "rows": [{"record", "line", "loan", "outcome", "errors": [{"column", "value",
"message"}], "values": {target: normalised value, personal data masked}}]}``; a row asking for a 登记资料查询
(``[authorisation] query_types``) has ``values.query`` (its unit, authorisation number, masked 授权人 and 有效期止;
``null`` when the row cannot form a query), outcome ``queue`` when it would be queried (ingest counts it
so) or ``quarantine`` with why not (the row, or an authorisation the agent would refuse), and the export's header
must hold the authorisation's columns; a file refused as a whole has
``"records": 0`` and an ``"error"``; an invalid profile gives ``{"profile", "profile_errors": [{"line",
"message"}]}``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from agent.mapping import MappedApplication, Profile, map_records
from agent.mapping.validation import ProfileProblem, header_problems, key_lines, locate
from agent.messages import field_line
from agent.pipeline.build import BuildContext, BuiltApplication, build, payload_digest
from agent.pipeline.outbox import broken_loans, record_excerpt
from agent.pipeline.queries import BatchRow, export_queries
from agent.state.blobs import BlobStore
from connectors.readers import ReadResult, read_export
from sdk.identifiers import uscc_check_char
from sdk.models import MaterialChecklist
from sdk.privacy import mask_id, mask_name

__all__ = ["CheckResult", "check_export"]

OUTCOMES = ("queue", "supplement", "duplicate", "quarantine")
_PLACEHOLDER_USCC = "91110000MA00000001"[:17] + uscc_check_char("91110000MA00000001"[:17])


@dataclass
class CheckResult:
    """What :func:`check_export` found; ``code`` is the command's exit status (0 read, 1 refused, 3 bad profile)."""

    code: int
    report: dict[str, Any]


class _DryBlobs:
    """A blob store that keeps nothing: every material counts as already kept, so none is read or copied."""

    def exists(self, digest: str) -> bool:
        return True

    def put(self, data: bytes) -> str:  # pragma: no cover - never reached: exists() is always true
        raise AssertionError("a dry run keeps no blob")


def _mask(path: str, kind: str, value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    if kind == "id" or path.endswith(("id_number", "phone")):
        return mask_id(value)
    if kind == "name" or path.endswith(".name"):
        return mask_name(value)
    return value


def _at(data: Any, path: str) -> Any:
    import re

    cur = data
    for m in re.finditer(r"([^.\[\]]+)|\[(\d+)\]", path):
        if m.group(1) is not None:
            if not isinstance(cur, dict) or m.group(1) not in cur:
                return None
            cur = cur[m.group(1)]
        else:
            i = int(m.group(2))
            if not isinstance(cur, list) or i >= len(cur):
                return None
            cur = cur[i]
    return cur


def _known(state: Path | None, reference: str) -> tuple[str, str | None, str | None] | None:
    """(payload digest, stage, centre status) of an application the agent's state holds, read-only."""
    if state is None or not state.exists():
        return None
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT payload_sha256, stage, centre_status FROM applications WHERE reference = ?", (reference,)
        ).fetchone()
    finally:
        db.close()
    return None if row is None else (row[0], row[1], row[2])


def _outcome(b: BuiltApplication, broken: bool, state: Path | None) -> tuple[str, list[dict[str, Any]]]:
    errors = [{"column": e.field, "value": e.value, "message": e.expected, "row": e.row} for e in b.errors]
    if errors or broken:
        return "quarantine", errors
    known = _known(state, b.reference)
    if known is None:
        return "queue", []
    digest, stage, centre_status = known
    if centre_status == "correction_required" and stage == "tracking":
        return "supplement", []
    if digest == payload_digest(b.payload):
        return "duplicate", []
    return "quarantine", [
        {
            "column": "(application)",
            "value": b.reference,
            "message": f"a new operation: {b.reference} was already sent and is {centre_status or stage}",
            "row": b.rows[0],
        }
    ]


def _query_header_problems(
    profile: Profile, header: list[str], lines: dict[tuple[str | int, ...], int]
) -> list[ProfileProblem]:
    """The authorisation's columns a query row reads that the export's header lacks (the export has query rows)."""
    spec = profile.authorisation
    assert spec is not None
    have = set(header)
    found = []
    for key in ("reference", "signed_at", "valid_until", "purpose"):
        column = getattr(spec, key)
        if column and column not in have:
            found.append(ProfileProblem(
                locate(lines, ("authorisation", key)),
                f"column {column!r} is not in the export's header (导出文件的表头没有列 {column!r})：登记资料查询行须附"
                f"申请人的查询授权书 ([authorisation] {key})",
            ))  # fmt: skip
    return found


def _query_rows(records: list[Any], asked: list[BatchRow], profile: Profile) -> list[dict[str, Any]]:
    """One report row per 登记资料查询 row: ``queue`` (it would be queried: counted as ingest counts it) or
    ``quarantine`` with why it would not be sent — a row the query cannot be formed from, or an authorisation
    the agent would refuse (expired, future-dated, not for the mortgage business: the centre's own rules)."""
    by_row = {r.row: r for r in records}
    now = datetime.now(UTC)
    out = []
    for row, query, _, errors in asked:
        record = by_row[row]
        found = [{"column": c, "value": "", "message": text, "text": text} for c, text in errors]
        if query is not None:
            column = profile.authorisation.reference if profile.authorisation else "(authorisation)"
            for p in query.authorisation.problems(now=now):
                why = f"可用的查询授权书（本机将拒绝查询：{p.reason}）"
                text = field_line(row, record.line, column, query.authorisation.reference, why)
                found.append({"column": column, "value": query.authorisation.reference,
                              "message": f"本机将拒绝查询：{p.reason}", "text": text})  # fmt: skip
        values: dict[str, Any] = {"query": None}
        if query is not None:
            values["query"] = {"unit": query.unit_id or query.title_certificate or query.location,
                               "authorisation": query.authorisation.reference,
                               "authoriser": mask_name(query.authorisation.applicant.name),
                               "valid_until": str(query.authorisation.valid_until or "")}  # fmt: skip
        loan = record.values.get(profile.identity.loan_no, "") if profile.identity.loan_no else ""
        out.append({
            "record": row,
            "line": record.line if record.line is not None else row,
            "loan": loan or None,
            "outcome": "quarantine" if found else "queue",
            "errors": found,
            "values": values,
        })  # fmt: skip
    return out


def check_export(
    path: Path,
    profile: Profile,
    profile_text: str,
    checklists: dict[str, MaterialChecklist],
    *,
    bank_name: str = "（本行）",
    bank_uscc: str = _PLACEHOLDER_USCC,
    default_operator: str | None = "op-check",
    materials_root: Path | None = None,
    state: Path | None = None,
    esign_cas: list[str] | None = None,
) -> CheckResult:
    """Read ``path`` through ``profile`` as ingest would, changing nothing (see the module docstring).

    ``materials_root`` is the folder the profile's materials folder is relative to (the inbox; by
    default the export's own folder); ``state`` an agent's state.db, read-only, for repeats and 补正;
    ``esign_cas`` the e-signature CAs (PEM) the agent trusts — ``None`` (no agent config) checks each applicant's
    signed document (intact, over the loan's document, by the applicant) but not who issued its certificate.
    """
    data = path.read_bytes()
    read: ReadResult = read_export(path, profile.source.reader_options(), data)
    base: dict[str, Any] = {"file": path.name, "profile": profile.name, "encoding": read.encoding}
    if not read.file_error and not read.records and not read.errors:
        read.file_error = "文件中没有读到任何记录 (the export yields no record)"
    if read.file_error:
        return CheckResult(
            1,
            {**base, "records": 0, "error": read.file_error, "accounting": dict.fromkeys(OUTCOMES, 0), "rows": []},
        )
    header: list[str] = []
    for record in read.records:
        header += [k for k in record.values if k not in header]
    lines = key_lines(profile_text)
    problems: list[ProfileProblem] = header_problems(profile, header, lines)
    # rows asking for a 登记资料查询 (``[authorisation] query_types``) are checked as the queries they are
    records, asked = export_queries(read.records, profile, default_operator=default_operator)
    if asked:
        problems += _query_header_problems(profile, header, lines)
    if problems:
        return CheckResult(3, {"profile": profile.name, "profile_errors": [p.as_dict() for p in problems]})
    ctx = BuildContext(
        bank_name, bank_uscc, default_operator, checklists, cast(BlobStore, _DryBlobs()), esign_cas=esign_cas
    )
    root = materials_root or path.parent
    mapped: list[MappedApplication] = map_records(records, profile, path.name)
    built = [(m, build(m, profile, ctx, root)) for m in mapped]
    broken = broken_loans(read.errors, [b.loan_no for _, b in built])
    rows: list[dict[str, Any]] = []
    for m, b in built:
        outcome, errors = _outcome(b, b.loan_no in broken, state)
        if outcome == "quarantine" and not errors and b.loan_no in broken:
            errors = [
                {
                    "column": profile.identity.loan_no,
                    "value": b.loan_no,
                    "message": f"another row of this loan (row {broken[b.loan_no]}) could not be read",
                    "row": b.rows[0],
                }
            ]
        for record in m.records:
            mine = [e for e in errors if e["row"] == record.row or (e["row"] is None and record is m.records[0])]
            if record is m.records[0]:
                mine += [e for e in errors if e["row"] not in {r.row for r in m.records} and e["row"] is not None]
            values = {
                path_: _mask(path_, prov.kind, _at(m.data, path_))
                for path_, prov in m.provenance.items()
                if prov.row == record.row
            }
            rows.append(
                {
                    "record": record.row,
                    "line": record.line if record.line is not None else record.row,
                    "loan": b.loan_no or None,
                    "outcome": outcome,
                    "errors": [{k: e[k] for k in ("column", "value", "message")} for e in mine],
                    "values": values,
                }
            )
    rows += _query_rows(read.records, asked, profile)
    for err in read.errors:
        loan = next((loan for loan, row in broken.items() if row == err.row), None)
        rows.append(
            {
                "record": err.row,
                "line": err.line if err.line is not None else err.row,
                "loan": loan,
                "outcome": "quarantine",
                "errors": [{"column": "(记录)", "value": record_excerpt(err.raw), "message": err.message}],
                "values": {},
            }
        )
    rows.sort(key=lambda r: (r["record"], r["line"]))
    accounting = dict.fromkeys(OUTCOMES, 0)
    for r in rows:
        accounting[r["outcome"]] += 1
    return CheckResult(0, {**base, "records": len(rows), "accounting": accounting, "rows": rows})
