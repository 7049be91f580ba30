"""``regbridge requeue``: try a quarantined item again after the cause was fixed.

- a row or a whole file: the export is read again from its encrypted copy with the current
  profile, checklists and materials folder; the rows of the item are admitted if they are
  good now, else the item stays open with the new errors;
- an application the centre refused as invalid: the same, with fresh idempotency keys (the
  centre never accepted the refused body);
- a certificate: downloaded and verified again (e.g. after the trust anchors were updated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.mapping import map_records
from agent.pipeline.build import build
from agent.pipeline.context import StageContext
from agent.pipeline.outbox import IngestReport, admit, columns_of
from connectors.readers import read_export
from sdk import new_idempotency_key

__all__ = ["RequeueResult", "dismiss", "requeue"]


@dataclass
class RequeueResult:
    item: int
    outcome: str  # "requeued", "still_bad", "not_found", "not_open", "dismissed"
    detail: str = ""


def dismiss(ctx: StageContext, item_id: int, reason: str, actor: str) -> RequeueResult:
    """Close an open quarantine item for good (the loan system will export it again, or it was a test row).

    Every row stays accounted for: the item is kept, marked ``dismissed`` with who and why in the audit log.
    """
    item = ctx.store.quarantine_item(item_id)
    if item is None:
        return RequeueResult(item_id, "not_found", "no such quarantine item")
    if item["status"] != "open":
        return RequeueResult(item_id, "not_open", f"already {item['status']}")
    if not reason.strip():
        return RequeueResult(item_id, "not_open", "a reason is required")
    ctx.store.resolve_quarantine(item_id, "dismissed")
    if item["kind"] == "certificate":
        ctx.store.clear_alert(f"certificate:{item['path']}")
    ctx.audit.append(
        "quarantine.dismissed", item["reference"] or str(item_id), "dismissed", actor=actor,
        item=item_id, kind=item["kind"], loan_no=item["loan_no"] or "", reason=reason[:500],
    )  # fmt: skip
    return RequeueResult(item_id, "dismissed", f"by {actor}: {reason}")


def requeue(ctx: StageContext, item_id: int, actor: str | None = None) -> RequeueResult:
    store = ctx.store
    item = store.quarantine_item(item_id)
    if item is None:
        return RequeueResult(item_id, "not_found", "no such quarantine item")
    if item["status"] != "open":
        return RequeueResult(item_id, "not_open", f"already {item['status']}")
    if item["kind"] == "certificate":
        store.update_certificate(item["path"], stage="pending", error=None)
        if item["reference"]:
            store.update_application(item["reference"], stage="tracking", note="certificate requeued")
        store.resolve_quarantine(item_id, "requeued")
        store.clear_alert(f"certificate:{item['path']}")
        ctx.audit.append("quarantine.requeued", str(item_id), "ok", actor=actor, kind="certificate")
        return RequeueResult(item_id, "requeued", "the certificate will be downloaded and verified again")
    file = store.file_seen(item["file_sha256"] or "")
    if file is None or not file.get("stored_copy"):
        return RequeueResult(item_id, "still_bad", "the export's copy is not available; export the row again")
    inbox = ctx.inbox(file["inbox"])
    profile = ctx.profiles[inbox.name]
    data = ctx.blobs.get(file["stored_copy"])
    read = read_export(Path(file["path"]), profile.source.reader_options(), data)
    if read.file_error:
        return RequeueResult(item_id, "still_bad", read.file_error)
    mapped = map_records(read.records, profile, file["path"])
    wanted = [
        m
        for m in mapped
        if item["kind"] == "file" or item["row"] in m.rows or (item["reference"] and m.reference == item["reference"])
    ]
    if not wanted:
        return RequeueResult(
            item_id, "still_bad", "the row is not in the export any more (a record that cannot be read)"
        )
    report = IngestReport(file["path"], item["file_sha256"])
    problems = []
    with store.transaction():
        for m in wanted:
            b = build(m, profile, ctx.build, ctx.config.resolve(inbox.path))
            if b.errors:
                problems += [str(e) for e in b.errors]
                continue
            if item["kind"] in ("centre", "preflight", "operator_check") and store.application(b.reference) is not None:
                store.update_application(
                    b.reference,
                    payload=b.payload,
                    stage="queued",
                    application_id=None,
                    idem_create=new_idempotency_key(),
                    idem_submit=new_idempotency_key(),
                    attempts=0,
                    next_attempt_at=0,
                    last_error=None,
                    note="requeued after a fix",
                )
                store.flag(b.reference, "payload_sha256", "")
                store.replace_materials(b.reference, b.materials)
                continue
            admit(ctx, inbox, report, b, columns_of(b, m.provenance), item["file_sha256"], file["path"])
        if problems:
            return RequeueResult(item_id, "still_bad", "; ".join(problems))
        store.resolve_quarantine(item_id, "requeued")
    ctx.audit.append(
        "quarantine.requeued", str(item_id), "ok", actor=actor, kind=item["kind"], loan_no=item["loan_no"] or ""
    )
    ctx.supervisor.wake()
    return RequeueResult(item_id, "requeued", ", ".join(report.queued) or "queued again")
