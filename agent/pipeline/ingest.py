"""Ingest: a complete export file → applications in the outbox, bad rows in quarantine.

A file is identified by the SHA-256 of its content. Its encrypted copy is kept before anything
else; then the whole file is admitted in one transaction (new applications, 补正 answers, row
quarantines, its own record), and only then is it removed from the inbox. A crash before the
commit leaves the file in the inbox to be read again; after it, the same content is recognised
and not processed twice.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from agent.config import InboxConfig
from agent.mapping import FieldError, Profile, map_records
from agent.messages import accounting_line, centre_out_of_reach, error_value, field_line, for_staff, zh
from agent.pipeline.build import BuiltApplication, build
from agent.pipeline.context import StageContext
from agent.pipeline.outbox import IngestReport, broken_loans, columns_of, quarantine_row, record_excerpt
from agent.pipeline.queries import export_queries, run_query
from agent.pipeline.reapply import admit_or_reapply
from agent.state.backup import RecoveryJournal, recovery_dir
from agent.state.store import now_iso
from connectors.readers import read_export, row_label
from sdk.identifiers import normalise_text

__all__ = ["ExportRefused", "IngestReport", "ingest_file", "process_export", "read_export_bytes"]

log = logging.getLogger("regbridge.agent.ingest")


class ExportRefused(ValueError):
    """An export the agent will not read at all (reached through a symbolic link); the message says why."""


def read_export_bytes(path: Path) -> bytes:
    """The export's bytes, never through a symbolic link (it may lead anywhere: another folder, /dev/zero).

    Raises:
        ExportRefused: ``path`` is a symbolic link.
        OSError: it cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ExportRefused(f"{path.name} 是符号链接，拒绝读取：请把文件本身放入收件夹 (a symbolic link)") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def ingest_file(ctx: StageContext, inbox: InboxConfig, path: Path, *, progress: Any = None) -> IngestReport:
    """Read, admit and retire one complete export file.

    A file in the inbox's folder is retired (removed) once its content is safe in the state store; a file
    anywhere else (``regbridge ingest FILE``) is the user's and stays where it is, whatever the outcome.

    Raises:
        ExportRefused: the file is a symbolic link.
        OSError: it cannot be read (left for the next scan).
    """
    data = read_export_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    folder = ctx.config.resolve(inbox.path)
    seen = ctx.store.file_seen(sha)
    if seen is not None and seen["status"] not in ("reading", "claimed"):
        ctx.audit.append("file.duplicate", path.name, "skipped", first_seen=seen["received_at"])
        log.info("export already processed; skipped", extra={"file": path.name, "sha256": sha[:12]})
        _keep_for_recovery(ctx, inbox, path, seen)
        retire(path, folder)
        return IngestReport(path.name, sha, skipped=True)
    if ctx.instance is not None:  # several instances see this inbox: the first to claim the content reads it
        profile = ctx.profiles[inbox.name].name
        mine = (seen or {}).get("claimed_by") in (None, ctx.instance) if seen is not None else (
            ctx.store.claim_file(sha, ctx.instance, path=path.name, inbox=inbox.name, profile=profile)
        )  # fmt: skip
        if not mine:  # another instance reads it (and retires it); if it dies, the reaper frees the claim
            log.info("export claimed by another instance", extra={"file": path.name, "sha256": sha[:12]})
            return IngestReport(path.name, sha, skipped=True)
    copy = ctx.blobs.put(data)
    ctx.store.record_file(
        sha,
        path=path.name,
        inbox=inbox.name,
        profile=ctx.profiles[inbox.name].name,
        status="reading",
        stored_copy=copy,
    )
    report = process_export(ctx, inbox, data, path.name, sha, progress=progress)
    _keep_for_recovery(ctx, inbox, path, {"sha256": sha, "stored_copy": copy})
    retire(path, folder)
    return report


def _keep_for_recovery(ctx: StageContext, inbox: InboxConfig, path: Path, seen: dict[str, Any]) -> None:
    """Before an export leaves the inbox: its encrypted copy in the recovery journal until a backup covers it
    (re-ingested after a restore to an earlier backup; :mod:`agent.state.backup`)."""
    if path.parent.resolve() != ctx.config.resolve(inbox.path).resolve() or not seen.get("stored_copy"):
        return  # `regbridge ingest FILE`: the user's file stays where it is
    name = str(seen["stored_copy"])
    RecoveryJournal(recovery_dir(ctx.config)).keep_export(
        str(seen["sha256"]), inbox.name, path.name, ctx.blobs.root / name[:2] / name
    )


def _export_receipt(
    ctx: StageContext, inbox: InboxConfig, report: IngestReport, sha: str, status: str, reason: str | None
) -> None:
    """One receipt line for the export itself: how many records were read and where each went."""
    key = f"file-{sha[:16]}"  # the export's own line: its 业务编号 names the file's content, not a loan
    # 贷款编号 names the file (no loan): one line per export, told apart from the loans' lines
    payload = {"loan_no": f"(文件){report.file}", "reference": key, "event": "file_read", "status": status}
    payload["reason"] = reason or ""
    ctx.store.add_receipt(key, "file", inbox.name, {**payload, "file": report.file, "rows": "", "at": now_iso()})


def retire(path: Path, folder: Path) -> bool:
    """The export is safe in the state store (encrypted): take it and its marker out of the inbox ``folder``.

    A file outside that folder is not the inbox's to remove: it stays. Answers whether it was removed.
    """
    try:
        inside = path.parent.resolve() == folder.resolve()
    except OSError:
        inside = False
    if not inside:
        return False
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".done").unlink(missing_ok=True)
    return True


def process_export(
    ctx: StageContext, inbox: InboxConfig, data: bytes, label: str, sha: str, *, progress: Any = None
) -> IngestReport:
    profile: Profile = ctx.profiles[inbox.name]
    inbox_path = ctx.config.resolve(inbox.path)
    report = IngestReport(label, sha)
    read = read_export(Path(label), profile.source.reader_options(), data)
    report.encoding = read.encoding
    if not read.file_error and not read.records and not read.errors:
        read.file_error = "文件中没有读到任何记录：整个文件隔离，不作已处理 (the export yields no record)"
    if read.file_error:
        report.file_error = read.file_error
        err = FieldError(None, "(file)", "", read.file_error, file=label)
        with ctx.store.transaction():
            qid = ctx.store.quarantine("file", [err.as_dict()], file_sha256=sha, path=label)
            ctx.store.record_file(
                sha, status="quarantined", rows_bad=1, records=0, encoding=read.encoding, reason=read.file_error
            )
            _export_receipt(ctx, inbox, report, sha, "整个文件隔离，未处理任何记录", read.file_error)
        report.quarantined.append({"id": qid, "row": None, "errors": [err.as_dict()]})
        write_report(ctx, inbox, report)
        ctx.audit.append("file.quarantined", label, "quarantined", reason=read.file_error)
        log.warning("export quarantined", extra={"file": label, "reason": read.file_error})
        return report
    # rows asking for a 登记资料查询 (the profile's [authorisation] query_types) are queries, not applications
    records, asked = export_queries(read.records, profile, default_operator=ctx.config.default_operator)
    mapped = map_records(records, profile, label)
    built: list[tuple[BuiltApplication, dict[str, list[Any]]]] = []
    for i, m in enumerate(mapped):
        branch = m.branch or inbox.branch  # the loan's branch: the export's column, else its folder's
        if m.branch and m.branch not in ctx.config.branches:
            known = "、".join(ctx.config.branches) or "（未配置 [branches]）"
            m.error(m.rows[0] if m.rows else None, str(profile.declaration.branch), m.branch,
                    f"a branch of the agent's [branches]: {known} (支行名称不在配置的 [branches] 中)")  # fmt: skip
        b = build(m, profile, ctx.build_for(branch), inbox_path)
        b.branch = branch
        built.append((b, columns_of(b, m.provenance)))
        if progress is not None:
            progress(i + 1, len(mapped))
    row_errors = [
        FieldError(e.row, "(record)", record_excerpt(e.raw), e.message, file=label, line=e.line) for e in read.errors
    ]
    any_bad = bool(row_errors) or any(b.errors for b, _ in built)
    hold_all = profile.source.all_or_nothing and any_bad
    # one transaction and one audit write (written just before the commit) for the whole export
    report.records = len(read.records) + len(read.errors)
    with ctx.store.transaction(), ctx.audit.batch():
        for err in row_errors:
            qid = ctx.store.quarantine("row", [err.as_dict()], file_sha256=sha, path=label, row=err.row)
            report.quarantined.append({"id": qid, "row": err.row, "loan_no": None, "errors": [err.as_dict()]})
            report.rows["quarantine"] += 1
        report.rows["queue"] += len(asked)  # each sent on as a query, answered on its own receipt line
        broken = broken_loans(read.errors, [b.loan_no for b, _ in built])
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
                quarantine_row(ctx, inbox, report, b, errors, sha, label)
                report.rows["quarantine"] += len(b.rows)
            else:
                report.rows[admit_or_reapply(ctx, inbox, report, b, columns, sha, label)] += len(b.rows)
        any_bad = any_bad or report.rows["quarantine"] > 0
        status = "quarantined" if hold_all else ("partial" if any_bad else "done")
        reason = None
        if not report.balanced():  # every record is in one group, so this cannot be; if it were, never "done"
            status, reason = (
                "quarantined",
                f"记录数不平衡 (accounting does not balance): {report.records} read, {report.rows}",
            )
            log.error("export accounting does not balance", extra={"file": label, "rows": report.rows})
        ctx.store.record_file(
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
        _export_receipt(ctx, inbox, report, sha, accounting_line(report.records, report.rows, read.encoding), reason)
    if report.quarantined:
        write_report(ctx, inbox, report)
    ctx.audit.append(
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
    answer_export_queries(ctx, inbox, profile, read.records, asked, label, sha)
    ctx.supervisor.wake()
    return report


_QUERY_STATUS = {
    "answered": "已查询",
    "refused_here": "本机拒绝查询",
    "refused_by_centre": "中心拒绝查询",
    "unverified": "查询结果无法验证",
    "invalid": "查询行有误，未查询",
    "failed": "查询未完成，请重新导出",
}


def answer_export_queries(
    ctx: StageContext,
    inbox: InboxConfig,
    profile: Profile,
    records: list[Any],
    asked: list[Any],
    label: str,
    sha: str,
) -> None:
    """Run the 登记资料查询 an export's rows asked for and answer each on a receipt line (issue 24 item 1: the same
    from a loan-system export column): 状态 已查询 with what the register shows (查封, 异议, mortgages and their
    顺位, the 查询编号 of the signed result kept by the agent), or why it was refused or not run."""
    rows = {r.row: r for r in records}
    loan_column = profile.identity.loan_no
    for row, query, _, errors in asked:
        outcome = "invalid"
        reason = "；".join(text for _, text in errors)
        record = rows.get(row)
        loan = normalise_text(record.values.get(loan_column, "")) if record is not None else ""
        column = profile.declaration.branch
        named = normalise_text(record.values.get(column, "")) if record is not None and column else ""
        branch = named if named in ctx.config.branches else inbox.branch  # the row's branch, as a loan's
        document = None
        if query is not None:
            try:
                done = run_query(ctx, query, label=f"{label}:{row}", document=True, loan_no=loan or None,
                                 branch=branch)
            except Exception as exc:  # the centre away: the row is answered as not done, never dropped
                log.warning("export query failed", extra={"file": label, "row": row, "error": type(exc).__name__})
                done = None
                said = centre_out_of_reach(exc)
                outcome = "failed"
                reason = (f"{said[0]}，未查询（{said[1]}）" if said else "查询未完成，请稍后重新导出该行") + (
                    f" [{type(exc).__name__}]"
                )
            if done is not None:
                outcome = done.outcome
                # Chinese first, the code in brackets after it for the loan system and bank IT
                reason = "；".join(f"{r} [{c}]" for c, r in done.reasons)
                if done.result is not None:
                    r = done.result
                    held = sorted(x.rank for x in r.rights if x.kind == "mortgage" and x.rank)
                    ranks = ", ".join(str(k) for k in held)
                    mortgaged = f"是（顺位 {ranks}）" if r.mortgaged else "否"
                    reason = (f"查询编号 {r.query_id}；查封：{'是' if r.seized else '否'}；异议："
                              f"{'是' if r.objection else '否'}；抵押：{mortgaged}")
                    document = done.document
        key = f"query-{sha[:12]}-{row}"
        payload = {"loan_no": loan or f"(查询){label}", "reference": key, "type": "property_query",
                   "type_name": "登记资料查询", "event": "property_query", "status": _QUERY_STATUS[outcome],
                   "reason": reason, "file": label, "rows": [row], "at": now_iso(), "document": document}  # fmt: skip
        ctx.store.add_receipt(key, "property_query", inbox.name, payload)


def write_report(ctx: StageContext, inbox: InboxConfig, report: IngestReport) -> Path:
    """A readable quarantine report beside the inbox (values masked), for branch staff and bank IT."""
    folder = ctx.config.resolve(inbox.path) / "quarantine"
    lines = [f"文件 {report.file} (sha256 {report.sha256[:16]}…) 处理时间 {now_iso()}", ""]
    if report.records or report.file_error:
        lines += [accounting_line(report.records, report.rows, report.encoding), ""]
    if report.file_error:
        lines += ["整个文件无法读取：", f"  {zh(report.file_error)}", ""]
    for q in report.quarantined:
        head = f"隔离编号 {q['id']}"
        if q.get("loan_no"):
            head += f"  贷款编号 {q['loan_no']}"
        if q.get("row"):
            head += f"  {row_label(q['row'])}"
        lines.append(head)
        for e in q["errors"]:
            line = field_line(e.get("row"), e.get("line"), e["field"], error_value(e), e["expected"])
            lines.append("  - " + for_staff(line))  # no pseudo-column nor code: branch staff read this file
        lines.append("")
    lines.append("修正后重新导出该行，或修正配置后运行: regbridge requeue <隔离编号>")
    from sdk.support.files import atomic_write

    path = folder / f"{Path(report.file).name}.{report.sha256[:8]}.txt"
    atomic_write(path, "\n".join(lines).encode("utf-8"), mode=0o640)
    return path
