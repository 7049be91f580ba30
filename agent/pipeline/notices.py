"""Notices: download each sealed notice the centre announces (``notice.issued``), verify it, store it
beside the loan's certificate and name it in the receipts — 受理凭证, 不予受理通知书, 不予登记通知书,
补正通知书 (seed 003 (四): electronic documents with the force of paper), and the collateral kinds
(查封, 解封, 异议, 产权变动) once a platform sends them (docs/api.md §9a).

pending (the event recorded it, in the same transaction as the event id) → the centre's signed
metadata → the file with the declared SHA-256 → its seal (OFD/GB/T 38540 or PDF/PAdES, as the
certificates: :func:`agent.pipeline.verify.verify_document`, the notice's title, 文书编号 and
不动产单元号 in its visible text) → the document store (``<loan no>/<文书编号>.ofd|.pdf``, never
overwriting) → a receipt line (``event = notice_<kind>``) naming the notice and where it is. A notice that
fails a check is quarantined with its reasons, alerted and named in a receipt (``notice_quarantined``);
one the centre cannot serve now stays pending and is tried again once its back-off is over (2, 4, 8 … s
up to 30 s, as a certificate: :func:`agent.pipeline.backoff.hold`), and after its loan's certificates
are stored (while a certificate download fails, the notice's would too: one back-off, not two). Notices wait while
their application is still moving through the centre (fetched once it settles, is refused, or waits on
a 补正), so they never hold up the applications themselves.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sdk
from agent.pipeline.backoff import DELIVERING, hold, ready, release
from agent.pipeline.context import StageContext
from agent.pipeline.operators import operator_of
from agent.pipeline.outbox import NOTICE_EVENTS, NOTICES_PENDING, pending_notices, queue_receipt, report_collateral
from agent.pipeline.verify import CertificateRejected, verify_document, verify_notice_metadata
from connectors.documents import DocumentConflict, DocumentStoreUnavailable

__all__ = ["deliver_notices"]

log = logging.getLogger("regbridge.agent.notices")


def _done(ctx: StageContext, notice_id: str, outcome: str) -> None:
    with ctx.store.transaction():
        pending = pending_notices(ctx)
        pending.pop(notice_id, None)
        ctx.store.set_meta(NOTICES_PENDING, json.dumps(pending, sort_keys=True))
        ctx.store.set_meta(f"notice:{notice_id}", outcome)


def deliver_notices(ctx: StageContext) -> int:
    """Fetch, verify and store every pending notice; answers how many were stored this round."""
    stored = 0
    for notice_id, reference in sorted(pending_notices(ctx, due_only=True).items()):
        if ctx.supervisor.holding or ctx.supervisor.paused:
            break
        if not ready(ctx, f"notice:{notice_id}"):  # its last download failed: wait out the back-off
            continue
        app = ctx.store.application(reference)
        if app is None:
            _done(ctx, notice_id, "orphan")
            continue
        if any(c["stage"] in DELIVERING for c in ctx.store.certificates(reference=reference)):
            continue  # its certificate goes first: while that download fails, the notice's would too
        try:
            stored += _deliver(ctx, app, notice_id)
            release(ctx, f"notice:{notice_id}")
        except (
            sdk.TransportError,
            sdk.ServerError,
            sdk.RateLimited,
            sdk.RetryBudgetExhausted,
            sdk.DigestMismatch,
        ) as exc:
            hold(ctx, f"notice:{notice_id}", exc)
            log.warning("notice delivery will be retried", extra={"notice_id": notice_id})
        except DocumentStoreUnavailable as exc:
            ctx.store.raise_alert("document_store", f"the document store refused a write: {exc}")
            break
        except (sdk.ChannelSuspended, sdk.AuthenticationFailed) as exc:
            ctx.supervisor.pause(type(exc).__name__, str(exc))
            break
        except Exception:  # never let one notice stop the others, or the daemon
            log.exception("unexpected error while delivering a notice", extra={"notice_id": notice_id})
    return stored


def _deliver(ctx: StageContext, app: Any, notice_id: str) -> int:
    signed = ctx.centre.notice(notice_id)
    number = signed.metadata.notice_number
    try:
        trust = ctx.trust_of(app)  # behind a platform: the anchors of the county centre that issued it
        meta = verify_notice_metadata(signed, trust)
        content = ctx.centre.download_notice(notice_id, expected_sha256=meta.sha256)
        sealed = verify_document(content, meta, trust, timeout=ctx.config.centre.timeout)
        if meta.application_id not in (None, app.application_id):
            raise CertificateRejected([f"the notice answers application {meta.application_id}, not this loan's"])
    except CertificateRejected as exc:
        _quarantine(ctx, app, notice_id, number, exc.reasons)
        return 0
    suffix = ".ofd" if meta.media_type == "application/ofd" else ".pdf"
    key = ctx.document_key(app, f"{meta.title}-{number}", suffix)
    sidecar = {
        "notice_id": notice_id,
        "kind": meta.kind,
        "title": meta.title,
        "notice_number": number,
        "unit_ids": meta.unit_ids,
        "issuing_authority": meta.issuing_authority,
        "issued_at": meta.issued_at.isoformat(),
        "application_id": app.application_id,
        "reference": app.reference,
        "loan_no": app.loan_no,
        "verified": {"metadata_signature": ctx.trust_of(app).centre_key_id, "seal": sealed},
    }
    try:
        location = ctx.documents.put(key, content, sidecar)
    except DocumentConflict as exc:
        _quarantine(ctx, app, notice_id, number, [str(exc)])
        return 0
    with ctx.store.transaction():
        event = NOTICE_EVENTS.get(meta.kind)
        if event and meta.restriction_id and meta.unit_ids:
            # a 查封/解封/异议 is one event whether pushed or found by the watch's query: reported once per loan
            certificate = next((str(c["certificate_number"]) for c in ctx.store.certificates(reference=app.reference)
                                if c["certificate_number"]), app.application_id or "")  # fmt: skip
            reason = f"{meta.reason or meta.title}（不动产登记证明 {certificate}）"
            report_collateral(ctx, app, certificate, meta.unit_ids[0], meta.restriction_id, event, reason,
                              event=f"notice_{meta.kind}", status=f"{meta.title}已入库", notice_number=number,
                              document=location)  # fmt: skip
        else:
            queue_receipt(
                ctx,
                app,
                f"notice:{notice_id}",
                f"notice_{meta.kind}",
                status=f"{meta.title}已入库",
                notice_number=number,
                document=location,
                deadline=meta.deadline.isoformat() if meta.deadline else None,
                application_id=app.application_id,
            )
        _done(ctx, notice_id, "stored")
    ctx.audit.append("notice.stored", app.reference, "ok", operator=operator_of(app.payload), notice_id=notice_id,
                     kind=meta.kind, notice_number=number, location=location)  # fmt: skip
    return 1


def _quarantine(ctx: StageContext, app: Any, notice_id: str, number: str, reasons: list[str]) -> None:
    errors = [
        {"file": "", "row": None, "field": f"notice {number}", "value": "", "expected": r, "target": ""}
        for r in reasons
    ]
    with ctx.store.transaction():
        qid = ctx.store.quarantine("notice", errors, loan_no=app.loan_no, reference=app.reference, path=notice_id)
        ctx.store.raise_alert(f"notice:{notice_id}", f"notice {number} for {app.loan_no} failed verification: "
                              + "; ".join(reasons))  # fmt: skip
        queue_receipt(ctx, app, f"notice_quarantined:{notice_id}", "quarantined", status="文书核验未通过，已隔离",
                      notice_number=number, reason="；".join(reasons))  # fmt: skip
        _done(ctx, notice_id, "quarantined")
    ctx.audit.append("notice.quarantined", app.reference, "quarantined", operator=operator_of(app.payload),
                     notice_id=notice_id, quarantine=qid, reasons="; ".join(reasons))  # fmt: skip
