"""Deliver: download each certificate, verify it, reconcile it, store it — exactly once.

pending → (metadata signature, download with the declared SHA-256, PAdES or OFD seal to the bundle's
CA with the CRLs fetched now, fields against the application, then the hand-over re-check: the centre's
在线核验 now, :func:`_handover_check`) → the target key is recorded (``storing``) → the document
store writes it, never overwriting (the same content again is a no-op) → ``stored`` with a
receipt line. A certificate that fails a check is quarantined and alerted, never stored. When a
change or a discharge supersedes a stored certificate, its sidecar in the store says so.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import sdk
from agent.pipeline.backoff import DELIVERING, hold, ready, release
from agent.pipeline.context import StageContext
from agent.pipeline.operators import operator_of
from agent.pipeline.outbox import finish_if_done, queue_receipt
from agent.pipeline.verify import CertificateRejected, reconcile, verify_document, verify_metadata
from agent.state.store import AppRow
from connectors.documents import DocumentConflict, DocumentStoreUnavailable
from sdk.models import DELIVERY_LABELS, CertificateMetadata, VerificationResult

__all__ = ["deliver_due", "mark_superseded_due"]

log = logging.getLogger("regbridge.agent.deliver")




def deliver_due(ctx: StageContext) -> int:
    """Deliver every certificate due, ``concurrency`` at a time; a refusing document store stops the round.

    A certificate whose last attempt failed waits out its backoff first (:func:`hold`). On a shared state
    (``ctx.instance``) each certificate is claimed first (``SELECT … FOR UPDATE SKIP LOCKED``,
    :meth:`~agent.state.leases.InstanceLeases.claim_certificates`), so no two instances deliver it at once."""
    store, me = ctx.store, ctx.instance
    due = store.certificates(stage="pending") + store.certificates(stage="storing")
    due = [c for c in due if ready(ctx, c["certificate_id"])]
    claimed: list[str] = []
    if me is not None and due:  # a shared state: claim them first, and read them again under the claim
        claimed = store.claim_certificates(
            me, DELIVERING, ttl=ctx.config.state.claim_seconds, limit=4 * ctx.config.concurrency,
            among=[c["certificate_id"] for c in due],
        )  # fmt: skip
        due = [c for c in map(store.certificate, claimed) if c is not None and c["stage"] in DELIVERING]
    stop = threading.Event()
    done = 0
    try:
        if due:
            with ThreadPoolExecutor(ctx.config.concurrency, thread_name_prefix="deliver") as pool:
                done = sum(pool.map(lambda cert: _deliver_guarded(ctx, cert, stop), due))
    finally:
        for cid in claimed:
            store.release_certificate(cid, me or "")
    mark_superseded_due(ctx)
    return done


def mark_superseded_due(ctx: StageContext) -> None:
    """Mark every stored certificate the centre superseded: its sidecar in the store, a ``superseded`` receipt
    line (on a shared state, each claimed first: one instance marks it)."""
    store, me = ctx.store, ctx.instance
    superseding = store.superseding()
    if me is not None and superseding:
        mine = store.claim_certificates(
            me, ("stored",), ttl=ctx.config.state.claim_seconds, limit=len(superseding), superseding=True
        )
        superseding = [c for c in map(store.certificate, mine) if c is not None and c["supersede_pending"]]
        try:
            for cert in superseding:
                _mark_superseded(ctx, cert)
        finally:
            for cid in mine:
                store.release_certificate(cid, me)
        return
    for cert in superseding:
        _mark_superseded(ctx, cert)


def _deliver_guarded(ctx: StageContext, cert: dict[str, Any], stop: threading.Event) -> int:
    if stop.is_set() or ctx.supervisor.holding or ctx.supervisor.paused:
        return 0
    try:
        done = _deliver(ctx, cert)
        release(ctx, cert["certificate_id"])
        return done
    except (DocumentStoreUnavailable, *_RETRY) as exc:
        if not isinstance(exc, DocumentStoreUnavailable):  # a refusing store stops the round and alerts instead
            hold(ctx, cert["certificate_id"], exc)
        ctx.store.update_certificate(cert["certificate_id"], error=sdk.privacy.mask_text(str(exc))[:300])
        if isinstance(exc, DocumentStoreUnavailable):
            ctx.store.raise_alert("document_store", f"the document store refused a write: {exc}")
            stop.set()
        elif isinstance(exc, sdk.DigestMismatch):  # damaged or altered on the way: never stored, retried, said
            ctx.store.raise_alert(
                f"certificate:{cert['certificate_id']}",
                f"the certificate file downloaded for {cert['reference']} does not match the digest the centre "
                f"signed (altered or damaged in transit); not stored, retried: {exc}",
            )
        log.warning(
            "certificate delivery will be retried",
            extra={"certificate_id": cert["certificate_id"], "error": type(exc).__name__},
        )
    except (sdk.ChannelSuspended, sdk.AuthenticationFailed) as exc:
        ctx.supervisor.pause(type(exc).__name__, str(exc))
        stop.set()
    except Exception as exc:  # never let one certificate stop the others, or the daemon
        log.exception("unexpected error while delivering", extra={"certificate_id": cert["certificate_id"]})
        ctx.store.update_certificate(cert["certificate_id"], error=sdk.privacy.mask_text(repr(exc))[:300])
    return 0


_RETRY = (sdk.TransportError, sdk.ServerError, sdk.RateLimited, sdk.RetryBudgetExhausted, sdk.DigestMismatch)


def _delivery_line(ctx: StageContext, app: AppRow) -> str:
    """The receipt's 领证方式: the applicant's choice as the centre honoured it — for post the carrier and tracking
    number, for collection where and from when (read from the centre's record of 缮证); electronic: stored here."""
    choice = (app.payload.get("delivery") or {}).get("method", "electronic")
    if choice == "electronic" or app.application_id is None:
        return "电子证照下载：证明已入库"
    dispatch = ctx.centre.application(app.application_id).dispatch
    if dispatch is None:
        return f"{DELIVERY_LABELS.get(choice, choice)}：登记中心尚未记录"
    return dispatch.describe()


def _deliver(ctx: StageContext, cert: dict[str, Any]) -> int:
    store = ctx.store
    cid = cert["certificate_id"]
    app = store.application(cert["reference"])
    if app is None:
        return 0
    signed = ctx.centre.certificate(cid)
    # the anchors of the centre the application went to (behind a platform: the district of its unit)
    trust = ctx.trust_of(app)
    try:
        meta = verify_metadata(signed, trust)
        pdf = ctx.centre.download_certificate(cid, expected_sha256=meta.sha256)
        # the CRLs the seal certificates name are consulted (hard-fail); one out of reach: retried later
        sealed = verify_document(pdf, meta, trust, timeout=ctx.config.centre.timeout)
        reconcile(
            meta,
            app.payload,
            bank_uscc=ctx.institution_of(app)[1],
            bank_name=ctx.institution_of(app)[0],
        )
        online = _handover_check(ctx, meta)
    except CertificateRejected as exc:
        _quarantine(ctx, app, cid, exc.reasons, signed.metadata.certificate_number)
        return 0
    suffix = ".ofd" if meta.media_type == "application/ofd" else ".pdf"
    key = cert["store_key"] or ctx.document_key(app, meta.certificate_number, suffix)
    store.update_certificate(
        cid,
        certificate_number=meta.certificate_number,
        licence_id=meta.licence_id,
        sha256=meta.sha256,
        stage="storing",
        store_key=key,
    )
    sidecar = {
        "certificate_id": cid,
        "certificate_number": meta.certificate_number,
        "licence_id": meta.licence_id,
        "right_or_matter": meta.right_or_matter,
        "unit_ids": meta.unit_ids,
        "issuing_authority": meta.issuing_authority,
        "issued_at": meta.issued_at.isoformat(),
        "application_id": app.application_id,
        "reference": app.reference,
        "loan_no": app.loan_no,
        "type": app.type,
        "verified": {
            "metadata_signature": trust.centre_key_id,
            "seal": sealed,
            "reconciled": True,
            "online": online.result,  # 在线核验 at hand-over
            "at": datetime.now(UTC).isoformat(),
        },
    }
    try:
        location = ctx.documents.put(key, pdf, sidecar)
    except DocumentConflict as exc:
        _quarantine(ctx, app, cid, [str(exc)], meta.certificate_number)
        return 0
    with store.transaction():
        store.update_certificate(cid, stage="stored", location=location, error=None)
        if (meta.status.value == "2" or online.result == "superseded") and cert["superseded_at"] is None:
            store.update_certificate(cid, supersede_pending=1, superseded_by=meta.superseded_by or online.superseded_by)
        queue_receipt(
            ctx,
            app,
            f"registered:{cid}",
            "registered",
            status="已登簿，证明已入库",
            certificate_number=meta.certificate_number,
            document=location,
            delivery=_delivery_line(ctx, app),
            application_id=app.application_id,
        )
        ctx.store.clear_alert("document_store")
    ctx.audit.append(
        "certificate.stored",
        app.reference,
        "ok",
        operator=operator_of(app.payload),
        certificate_id=cid,
        certificate_number=meta.certificate_number,
        location=location,
    )
    log.info("certificate stored", extra={"reference": app.reference, "certificate_number": meta.certificate_number})
    finish_if_done(ctx, app.reference)
    return 1


def _handover_check(ctx: StageContext, meta: CertificateMetadata) -> VerificationResult:
    """The re-check at hand-over (seed 003 (四): an electronic certificate is checked online before use), run
    after the local checks and just before the file goes to the document store and the receipts: the
    centre's 在线核验 of its 电子证照标识 now. The local checks that precede it already ran now too (the seal's
    validity window and the chain at this moment, the CRLs fetched this moment, hard-fail), and a delivery
    retried later (``storing``) runs them all again; so what is handed over was valid when it was handed.

    Raises:
        CertificateRejected: the centre does not know the certificate (quarantined, alerted, never stored).
        sdk.TransportError, sdk.ServerError, …: the centre is out of reach now (retried later, not stored).
    """
    result = ctx.centre.verify_certificate(meta.licence_id)
    if result.result == "unknown":
        raise CertificateRejected(
            [f"the centre's online verification (在线核验) does not know licence {meta.licence_id} at hand-over"]
        )
    if result.certificate_number not in (None, meta.certificate_number):
        raise CertificateRejected(
            [f"the centre's online verification names certificate {result.certificate_number}, "
             f"not {meta.certificate_number}"]
        )  # fmt: skip
    return result


def _quarantine(ctx: StageContext, app: Any, cid: str, reasons: list[str], number: str | None) -> None:
    errors = [
        {"file": "", "row": None, "field": f"certificate {number or cid}", "value": "", "expected": r, "target": ""}
        for r in reasons
    ]
    with ctx.store.transaction():
        qid = ctx.store.quarantine("certificate", errors, loan_no=app.loan_no, reference=app.reference, path=cid)
        ctx.store.update_certificate(cid, stage="quarantined", error="; ".join(reasons)[:500])
        ctx.store.update_application(app.reference, stage="quarantined", note="a certificate failed verification")
        ctx.store.raise_alert(
            f"certificate:{cid}",
            f"certificate {number or cid} for {app.loan_no} failed verification: {'; '.join(reasons)}",
        )
        queue_receipt(
            ctx,
            app,
            f"certificate_quarantined:{cid}",
            "quarantined",
            status="证明核验未通过，已隔离",
            certificate_number=number,
            reason="；".join(reasons),
        )
    ctx.audit.append(
        "certificate.quarantined",
        app.reference,
        "quarantined",
        operator=operator_of(app.payload),
        certificate_id=cid,
        quarantine=qid,
        reasons="; ".join(reasons),
    )
    log.error(
        "certificate quarantined",
        extra={"reference": app.reference, "certificate_id": cid, "reasons": "; ".join(reasons)},
    )


def _mark_superseded(ctx: StageContext, cert: dict[str, Any]) -> None:
    by = ctx.store.certificate(cert["superseded_by"]) if cert["superseded_by"] else None
    info = {
        "certificate_id": cert["superseded_by"],
        "certificate_number": by["certificate_number"] if by else None,
        "at": datetime.now(UTC).isoformat(),
    }
    try:
        ctx.documents.mark_superseded(cert["store_key"], info)
    except DocumentStoreUnavailable as exc:
        ctx.store.raise_alert("document_store", str(exc))
        return
    ctx.store.update_certificate(cert["certificate_id"], supersede_pending=0, superseded_at=info["at"])
    app = ctx.store.application(cert["reference"])
    if app is not None:
        queue_receipt(
            ctx,
            app,
            f"superseded:{cert['certificate_id']}",
            "superseded",
            status="原证明已注销",
            certificate_number=cert["certificate_number"],
            document=cert["location"],
        )
    ctx.audit.append(
        "certificate.superseded",
        cert["reference"],
        "ok",
        certificate_id=cert["certificate_id"],
        superseded_by=cert["superseded_by"] or "",
    )
