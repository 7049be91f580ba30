"""Ingest: a complete export file → applications in the outbox, bad rows in quarantine.

A file is identified by the SHA-256 of its content. Its encrypted copy is kept before anything
else; then the whole file is admitted in one transaction (new applications, 补正 answers, row
quarantines, its own record), and only then is it removed from the inbox. A crash before the
commit leaves the file in the inbox to be read again; after it, the same content is recognised
and not processed twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.build import BuiltApplication, build, payload_digest
from agent.mapping import FieldError, Profile, map_records
from agent.state.store import now_iso
from connectors.readers import read_export, row_label
from sdk import new_idempotency_key

if TYPE_CHECKING:
    from agent.config import InboxConfig
    from agent.runtime import Agent

__all__ = ["IngestReport", "ingest_file", "process_export"]

log = logging.getLogger("regbridge.agent.ingest")


@dataclass
class IngestReport:
    file: str
    sha256: str
    queued: list[str] = field(default_factory=list)
    supplements: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    file_error: str | None = None
    skipped: bool = False
    encoding: str | None = None
    #: records (rows) read, and where each went: the accounting of the export
    records: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {"queue": 0, "supplement": 0, "duplicate": 0, "quarantine": 0})

    @property
    def rows_bad(self) -> int:
        return len(self.quarantined)

    def balanced(self) -> bool:
        """records read = rows queued + rows answering a 补正 + rows named as duplicates + rows quarantined."""
        return self.records == sum(self.rows.values())


def _columns(built: BuiltApplication, provenance: dict[str, Any]) -> dict[str, list[Any]]:
    out = {}
    for path, prov in provenance.items():
        pointer = "/" + path.replace("[", ".").replace("]", "").replace(".", "/")
        out[pointer] = [prov.row, prov.column]
    return out


def ingest_file(agent: Agent, inbox: InboxConfig, path: Path, *, progress: Any = None) -> IngestReport:
    """Read, admit and retire one complete export file."""
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    seen = agent.store.file_seen(sha)
    if seen is not None and seen["status"] != "reading":
        agent.audit.append("file.duplicate", path.name, "skipped", first_seen=seen["received_at"])
        log.info("export already processed; skipped", extra={"file": path.name, "sha256": sha[:12]})
        retire(path, inbox)
        return IngestReport(path.name, sha, skipped=True)
    copy = agent.blobs.put(data)
    agent.store.record_file(
        sha,
        path=path.name,
        inbox=inbox.name,
        profile=agent.profiles[inbox.name].name,
        status="reading",
        stored_copy=copy,
    )
    report = process_export(agent, inbox, data, path.name, sha, progress=progress)
    retire(path, inbox)
    return report


def _broken_loans(errors: list[Any], loans: list[str]) -> dict[str, int]:
    """The loans a record that could not be read belongs to (its loan number is in its text): loan → row."""
    found: dict[str, int] = {}
    if not errors:
        return found
    for loan in sorted({x for x in loans if x}, key=len, reverse=True):
        pattern = re.compile(r"(?<![A-Za-z0-9_.:-])" + re.escape(loan) + r"(?![A-Za-z0-9_.:-])")
        for err in errors:
            if pattern.search(err.raw):
                found.setdefault(loan, err.row)
    return found


def record_excerpt(raw: str) -> str:
    """A broken record as reports may show it: its leading key (the loan number, usually) and its size.

    The rest can hold names and ID numbers in any position, so it is not shown; the whole record is
    kept, sealed, in the stored copy of the export.
    """
    head = re.match(r"[A-Za-z0-9_.:-]{0,32}", raw.strip())
    key = head.group(0) if head else ""
    return f"{key}… ({len(raw)} characters; the rest is not shown, it may hold personal data)"


def retire(path: Path, inbox: InboxConfig) -> None:
    """The export is safe in the state store (encrypted): take it and its marker out of the inbox."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".done").unlink(missing_ok=True)


def process_export(
    agent: Agent, inbox: InboxConfig, data: bytes, label: str, sha: str, *, progress: Any = None
) -> IngestReport:
    profile: Profile = agent.profiles[inbox.name]
    inbox_path = agent.config.resolve(inbox.path)
    report = IngestReport(label, sha)
    read = read_export(Path(label), profile.source.reader_options(), data)
    report.encoding = read.encoding
    if not read.file_error and not read.records and not read.errors:
        read.file_error = "文件中没有读到任何记录：整个文件隔离，不作已处理 (the export yields no record)"
    if read.file_error:
        report.file_error = read.file_error
        err = FieldError(None, "(file)", "", read.file_error, file=label)
        with agent.store.transaction():
            qid = agent.store.quarantine("file", [err.as_dict()], file_sha256=sha, path=label)
            agent.store.record_file(
                sha, status="quarantined", rows_bad=1, records=0, encoding=read.encoding, reason=read.file_error
            )
        report.quarantined.append({"id": qid, "row": None, "errors": [err.as_dict()]})
        write_report(agent, inbox, report)
        agent.audit.append("file.quarantined", label, "quarantined", reason=read.file_error)
        log.warning("export quarantined", extra={"file": label, "reason": read.file_error})
        return report
    mapped = map_records(read.records, profile, label)
    built: list[tuple[BuiltApplication, dict[str, list[Any]]]] = []
    for i, m in enumerate(mapped):
        b = build(m, profile, agent.build_context, inbox_path)
        built.append((b, _columns(b, m.provenance)))
        if progress is not None:
            progress(i + 1, len(mapped))
    row_errors = [FieldError(e.row, "(record)", record_excerpt(e.raw), e.message, file=label) for e in read.errors]
    any_bad = bool(row_errors) or any(b.errors for b, _ in built)
    hold_all = profile.source.all_or_nothing and any_bad
    # one transaction and one audit write (written just before the commit) for the whole export
    report.records = len(read.records) + len(read.errors)
    with agent.store.transaction(), agent.audit.batch():
        for err in row_errors:
            qid = agent.store.quarantine("row", [err.as_dict()], file_sha256=sha, path=label, row=err.row)
            report.quarantined.append({"id": qid, "row": err.row, "loan_no": None, "errors": [err.as_dict()]})
            report.rows["quarantine"] += 1
        broken = _broken_loans(read.errors, [b.loan_no for b, _ in built])
        for b, columns in built:
            if b.errors or hold_all or b.loan_no in broken:
                errors = [e.as_dict() for e in b.errors]
                if not errors and b.loan_no in broken:
                    # a co-owner's row that could not be read: the rest would be a different application
                    errors = [
                        FieldError(
                            b.rows[0],
                            profile.identity.loan_no,
                            b.loan_no,
                            f"every row of the loan: {row_label(broken[b.loan_no])} of the same loan could not be "
                            f"read (该贷款的{row_label(broken[b.loan_no])}无法读取，其余各行一并隔离，以免少报共有人)",
                            file=label,
                        ).as_dict()
                    ]
                errors = errors or [
                    FieldError(
                        b.rows[0],
                        "(file)",
                        "",
                        "the profile says all-or-nothing and another row of this file has errors",
                        file=label,
                    ).as_dict()
                ]
                _quarantine_row(agent, inbox, report, b, errors, sha, label)
                report.rows["quarantine"] += len(b.rows)
            else:
                report.rows[_admit(agent, inbox, report, b, columns, sha, label)] += len(b.rows)
        any_bad = any_bad or report.rows["quarantine"] > 0
        status = "quarantined" if hold_all else ("partial" if any_bad else "done")
        reason = None
        if not report.balanced():  # every record is in one group, so this cannot be; if it were, never "done"
            status, reason = (
                "quarantined",
                f"记录数不平衡 (accounting does not balance): {report.records} read, {report.rows}",
            )
            log.error("export accounting does not balance", extra={"file": label, "rows": report.rows})
        agent.store.record_file(
            sha,
            status=status,
            rows_ok=len(report.queued) + len(report.supplements),
            rows_bad=len(report.quarantined),
            records=report.records,
            encoding=read.encoding,
            rows_queued=report.rows["queue"],
            rows_supplement=report.rows["supplement"],
            rows_duplicate=report.rows["duplicate"],
            rows_quarantined=report.rows["quarantine"],
            reason=reason,
        )
    if report.quarantined:
        write_report(agent, inbox, report)
    agent.audit.append(
        "file.ingested",
        label,
        "partial" if any_bad else "ok",
        queued=len(report.queued),
        supplements=len(report.supplements),
        quarantined=len(report.quarantined),
        sha256=sha[:16],
    )
    log.info(
        "export ingested",
        extra={
            "file": label,
            "queued": len(report.queued),
            "quarantined": len(report.quarantined),
            "supplements": len(report.supplements),
        },
    )
    agent.wake()
    return report


def _quarantine_row(
    agent: Agent,
    inbox: InboxConfig,
    report: IngestReport,
    b: BuiltApplication,
    errors: list[dict[str, Any]],
    sha: str,
    label: str,
) -> None:
    qid = agent.store.quarantine(
        "row",
        errors,
        file_sha256=sha,
        path=label,
        row=b.rows[0],
        loan_no=b.loan_no or None,
        reference=b.reference or None,
    )
    report.quarantined.append({"id": qid, "row": b.rows[0], "loan_no": b.loan_no, "errors": errors})
    reason = "；".join(f"第{e['row']}行 {e['field']}: 应为 {e['expected']}" for e in errors)
    agent.store.add_receipt(
        b.reference or f"row-{sha[:8]}-{b.rows[0]}",
        f"quarantined:{qid}",
        inbox.name,
        {
            "loan_no": b.loan_no,
            "reference": b.reference,
            "type": b.type,
            "event": "quarantined",
            "status": "数据有误，未提交",
            "reason": reason,
            "file": label,
            "rows": b.rows,
        },
    )
    agent.audit.append("row.quarantined", b.reference or label, "quarantined", row=b.rows[0], errors=len(errors))


def _admit(
    agent: Agent,
    inbox: InboxConfig,
    report: IngestReport,
    b: BuiltApplication,
    columns: dict[str, list[Any]],
    sha: str,
    label: str,
) -> str:
    """Queue a built application, or answer the 补正 it corrects; the accounting bucket its rows go to."""
    store = agent.store
    digest = payload_digest(b.payload)
    source = {"file": label, "sha256": sha, "rows": b.rows, "columns": columns}
    existing = store.application(b.reference)
    if existing is None:
        store.add_application(
            {
                "reference": b.reference,
                "loan_no": b.loan_no,
                "type": b.type,
                "inbox": inbox.name,
                "profile": agent.profiles[inbox.name].name,
                "source": [source],
                "payload": b.payload,
                "payload_sha256": digest,
                "idem_create": new_idempotency_key(),
                "idem_submit": new_idempotency_key(),
                "materials": b.materials,
            }
        )
        store.resolve_quarantine_for(b.loan_no, b.reference)
        report.queued.append(b.reference)
        agent.audit.append("application.queued", b.reference, "ok", type=b.type, file=label, row=b.rows[0])
        return "queue"
    if existing.centre_status == "correction_required" and existing.stage == "tracking":
        answer = _supplement_from_row(agent, existing, b, digest)
        if answer:
            store.update_application(
                b.reference,
                stage="supplementing",
                next_attempt_at=0,
                attempts=0,
                supplement=answer,
                idem_supplement=new_idempotency_key(),
                source=json.dumps([*existing.source, source], ensure_ascii=False),
                note="补正 answered by a corrected row",
            )
            store.resolve_quarantine_for(b.loan_no, b.reference)
            report.supplements.append(b.reference)
            agent.audit.append("correction.answer_queued", b.reference, "ok", file=label, row=b.rows[0])
            return "supplement"
    if store.payload_sha256(b.reference) == digest:
        report.duplicates.append(b.reference)
        agent.audit.append("row.duplicate", b.reference, "skipped", file=label, row=b.rows[0])
        return "duplicate"
    state = existing.centre_status or existing.stage
    _quarantine_row(
        agent,
        inbox,
        report,
        b,
        [
            FieldError(
                b.rows[0],
                agent.profiles[inbox.name].identity.loan_no,
                b.loan_no,
                f"a new operation: {b.reference} was already sent and is {state}; a different application for "
                "the same loan needs its own operation number",
                file=label,
            ).as_dict()
        ],
        sha,
        label,
    )
    return "quarantine"


def _supplement_from_row(agent: Agent, existing: Any, b: BuiltApplication, digest: str) -> dict[str, Any] | None:
    """What a corrected row adds: the corrected application (if it differs) and new or changed materials."""
    old = {m["material_id"]: m for m in agent.store.materials(existing.reference)}
    changed = [m for m in b.materials if m["id"] not in old or old[m["id"]]["sha256"] != m["sha256"]]
    corrected = b.payload if agent.store.payload_sha256(existing.reference) != digest else None
    if corrected is None and not changed:
        return None
    if corrected is not None:
        # keep the materials the centre already holds that the corrected row does not carry
        listed = {m["id"] for m in corrected["materials"]}
        corrected["materials"] += [m for m in existing.payload["materials"] if m["id"] not in listed]
    return {
        "corrected": corrected,
        "materials": changed,
        "payload_sha256": digest,
        "idem_submit": new_idempotency_key(),
        "at": now_iso(),
    }


def write_report(agent: Agent, inbox: InboxConfig, report: IngestReport) -> Path:
    """A readable quarantine report beside the inbox (values masked), for branch staff and bank IT."""
    folder = agent.config.resolve(inbox.path) / "quarantine"
    lines = [f"文件 {report.file} (sha256 {report.sha256[:16]}…) 处理时间 {now_iso()}", ""]
    if report.file_error:
        lines += ["整个文件无法读取 (the whole file could not be read):", f"  {report.file_error}", ""]
    for q in report.quarantined:
        head = f"隔离编号 {q['id']}"
        if q.get("loan_no"):
            head += f"  贷款编号 {q['loan_no']}"
        if q.get("row"):
            head += f"  第 {q['row']} 行"
        lines.append(head)
        for e in q["errors"]:
            shown = repr(e["value"]) if e["value"] else "(空)"
            lines.append(f"  - 字段 {e['field']}: {shown}，应为 {e['expected']}")
        lines.append("")
    lines.append("修正后重新导出该行，或修正配置后运行: regbridge requeue <隔离编号>")
    from sdk.support.files import atomic_write

    path = folder / f"{Path(report.file).name}.{report.sha256[:8]}.txt"
    atomic_write(path, "\n".join(lines).encode("utf-8"), mode=0o640)
    return path
