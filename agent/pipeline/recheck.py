"""Re-check stored documents before use (seed 003 (四): an electronic certificate is checked online before
it is used, so that what it says is current): ``regbridge certificates check [LOAN]`` and the daemon's
``recheck`` job (``certificates.recheck_hours``).

For each stored 不动产登记证明 (the state's ``stored`` certificates) and each stored sealed notice (受理凭证,
不予受理/不予登记/补正通知书: the document store's files whose sidecar names a ``notice_id``, and those a
``notice:<id>`` receipt line says were stored whose file is gone: invalid, missing), of one loan or all:

1. **online** — a certificate: the centre's 在线核验 (``GET /v1/verification?licence_id=…``, ``valid``,
   ``superseded`` or ``unknown``); a notice: the centre's signed metadata fetched again and its signature
   checked (``valid``; ``unknown`` when the centre no longer knows it);
2. **locally** — the stored file read back from the document store, its SHA-256 the one the centre signed
   (and, for a certificate, the one verified when it was stored: a file changed at rest is found), and
   verified afresh as on delivery (:func:`agent.pipeline.verify.verify_document`: the seal and its
   validity window now, the chain with the CRLs fetched now, the visible text against the metadata).

A superseded certificate is marked in the store (``supersede_pending``: the deliver stage then marks its
sidecar and writes the ``superseded`` receipt line); a revoked or otherwise failing document keeps its
reasons (the certificate's ``error`` in the state), raises an alert and gets a ``recheck_failed`` receipt
line naming it; one the centre does not know raises an alert. Every check leaves an audit record.

Each result is ``{kind, title, loan_no, reference, document_id, number, location, online, local, verdict,
reasons}``: ``online`` in valid/superseded/unknown/unreachable, ``local`` in valid/invalid/unknown,
``verdict`` one of :data:`VERDICTS` (Chinese, for branch staff), ``reasons`` with personal data masked.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import sdk
from agent.pipeline.context import StageContext
from agent.pipeline.operators import operator_of
from agent.pipeline.outbox import queue_receipt
from agent.pipeline.verify import CertificateRejected, verify_document, verify_metadata, verify_notice_metadata
from sdk.privacy import mask_text

__all__ = ["VERDICTS", "recheck_certificates", "verdict"]

log = logging.getLogger("regbridge.agent.recheck")

#: the verdict of one re-check, as branch staff read it
VERDICTS = {
    "valid": "有效",
    "superseded": "已被替代（原证明已注销）",
    "revoked": "印章证书已吊销，不得使用",
    "invalid": "核验未通过，不得使用",
    "unknown": "登记中心查无此文书",
    "unchecked": "暂时无法核验（登记中心或证书吊销列表不可达），请稍后再查",
}


def verdict(row: dict[str, Any]) -> str:
    """The key of :data:`VERDICTS` for one result: the worst of what was found."""
    if row["local"] == "invalid":
        return "revoked" if any("revoked" in r for r in row["reasons"]) else "invalid"
    if row["online"] in ("superseded", "unknown"):
        return str(row["online"])
    if row["online"] == "valid" and row["local"] == "valid":
        return "valid"
    return "unchecked"


def recheck_certificates(ctx: StageContext, *, loan_no: str | None = None) -> list[dict[str, Any]]:
    """Re-check every stored certificate and sealed notice (of ``loan_no``); answers one result each (see the
    module's docstring), certificates first. Raises nothing for one document: an error is its result."""
    results = []
    for cert in ctx.store.certificates(stage="stored"):
        app = ctx.store.application(cert["reference"])
        if app is None or (loan_no is not None and app.loan_no != loan_no):
            continue
        results.append(_recheck_certificate(ctx, app, cert))
    stored = ctx.documents.keys()  # a DocumentStore's names, not a mapping
    seen: set[str] = set()
    for key in stored:
        try:
            sidecar = ctx.documents.metadata(key)
        except (OSError, ValueError, KeyError):
            continue
        if not sidecar.get("notice_id") or (loan_no is not None and sidecar.get("loan_no") != loan_no):
            continue
        app = ctx.store.application(str(sidecar.get("reference")))
        if app is not None:
            seen.add(str(sidecar["notice_id"]))
            results.append(_recheck_notice(ctx, app, key, sidecar))
    for receipt in ctx.store.receipts():  # a notice stored (its receipt line says so) whose file is gone
        notice_id = str(receipt["kind"]).removeprefix("notice:")
        payload = receipt["payload"]
        if not str(receipt["kind"]).startswith("notice:") or notice_id in seen:
            continue
        if loan_no is not None and payload.get("loan_no") != loan_no:
            continue
        app = ctx.store.application(str(receipt["reference"]))
        if app is None:
            continue
        seen.add(notice_id)
        title = str(payload.get("status") or "").removesuffix("已入库") or "通知书"
        row = _row("notice", title, app, notice_id, payload.get("notice_number"), payload.get("document"))
        row["local"] = "invalid"
        row["reasons"].append(MISSING)
        _finish(ctx, app, row)
        results.append(row)
    return results


def _row(kind: str, title: str, app: Any, document_id: str, number: str | None, location: str | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "title": title,
        "loan_no": app.loan_no,
        "reference": app.reference,
        "document_id": document_id,
        "number": number,
        "location": location,
        "online": "unreachable",
        "local": "unknown",
        "verdict": "unchecked",
        "reasons": [],
    }


def _recheck_certificate(ctx: StageContext, app: Any, cert: dict[str, Any]) -> dict[str, Any]:
    cid = cert["certificate_id"]
    row = _row("certificate", "不动产登记证明", app, cid, cert["certificate_number"], cert["location"])
    superseded_by: str | None = None
    at_rest = _at_rest(ctx, cert)  # needs no centre: a file changed, replaced or gone is found even offline
    if at_rest:
        row["local"] = "invalid"
        row["reasons"].append(at_rest)
    try:
        online = ctx.centre.verify_certificate(cert["licence_id"])
        row["online"] = online.result
        superseded_by = online.superseded_by
    except sdk.RegBridgeError as exc:
        row["reasons"].append(f"the centre's online verification did not answer ({type(exc).__name__})")
    try:
        if at_rest:
            raise CertificateRejected([])
        meta = verify_metadata(ctx.centre.certificate(cid), ctx.trust_of(app))
        content = ctx.documents.get(cert["store_key"])
        digest = hashlib.sha256(content).hexdigest()
        if digest != cert["sha256"] or digest != meta.sha256:
            raise CertificateRejected([CHANGED_AT_REST])
        verify_document(content, meta, ctx.trust_of(app), timeout=ctx.config.centre.timeout)
        row["local"] = "valid"
        if meta.status.value == "2":
            superseded_by = superseded_by or meta.superseded_by
            row["online"] = "superseded" if row["online"] == "valid" else row["online"]
    except CertificateRejected as exc:
        row["local"] = "invalid"
        row["reasons"] += exc.reasons
    except (sdk.RegBridgeError, OSError, KeyError) as exc:
        row["reasons"].append(f"the local check could not run ({type(exc).__name__}: {exc})")
    _finish(ctx, app, row)
    with ctx.store.transaction():
        if row["online"] == "superseded" and cert["superseded_at"] is None and not cert["supersede_pending"]:
            ctx.store.update_certificate(cid, supersede_pending=1, superseded_by=superseded_by)
        if row["local"] == "invalid":
            ctx.store.update_certificate(cid, error=f"re-check: {'; '.join(row['reasons'])}"[:500])
        elif row["verdict"] == "valid" and str(cert["error"] or "").startswith("re-check:"):
            ctx.store.update_certificate(cid, error=None)  # valid again (a file restored at rest)
    return row


#: the stored file is not the one verified when it was stored; "changed at rest" kept for scripts
CHANGED_AT_REST = (
    "文件入库后被改动或替换，与入库时核验的文件不一致 "
    "(the stored file is not the one verified when it was stored: changed at rest)"
)
MISSING = "文件已不在文档库中 (the stored file is missing from the document store)"


def _at_rest(ctx: StageContext, cert: dict[str, Any]) -> str | None:
    """Why the stored file is no longer the one verified when it was stored (gone, or other bytes), or None."""
    try:
        content = ctx.documents.get(cert["store_key"])
    except FileNotFoundError:
        return MISSING
    except Exception:  # the store cannot be read now: the checks below say so
        return None
    if cert["sha256"] and hashlib.sha256(content).hexdigest() != cert["sha256"]:
        return CHANGED_AT_REST
    return None


def _recheck_notice(ctx: StageContext, app: Any, key: str, sidecar: dict[str, Any]) -> dict[str, Any]:
    notice_id = str(sidecar["notice_id"])
    row = _row("notice", str(sidecar.get("title") or "通知书"), app, notice_id, sidecar.get("notice_number"), None)
    try:
        meta = verify_notice_metadata(ctx.centre.notice(notice_id), ctx.trust_of(app))
        row["online"] = "valid"
    except sdk.NotFound:
        row["online"] = "unknown"
        meta = None
    except CertificateRejected as exc:  # the centre's signature on its metadata does not verify
        row["online"], row["local"] = "valid", "invalid"
        row["reasons"] += exc.reasons
        meta = None
    except sdk.RegBridgeError as exc:
        row["reasons"].append(f"the centre did not answer for the notice ({type(exc).__name__})")
        meta = None
    if meta is not None:
        try:
            content = ctx.documents.get(key)
            if hashlib.sha256(content).hexdigest() != meta.sha256:
                raise CertificateRejected([CHANGED_AT_REST])
            verify_document(content, meta, ctx.trust_of(app), timeout=ctx.config.centre.timeout)
            row["local"] = "valid"
        except CertificateRejected as exc:
            row["local"] = "invalid"
            row["reasons"] += exc.reasons
        except (sdk.RegBridgeError, OSError) as exc:
            row["reasons"].append(f"the local check could not run ({type(exc).__name__}: {exc})")
    _finish(ctx, app, row)
    return row


#: (words of the verifier's English sentence, what branch staff read first): the sentence is kept after it
_IN_CHINESE = (
    ("revoked", "印章证书已吊销"),
    ("revocation status", "无法确认印章证书是否吊销"),
    ("was changed after sealing", "签章后文件内容被改动"),
    ("was added after sealing", "签章后被加入了文件"),
    ("missing from the package", "签章所保护的文件缺失"),
    ("was changed after signing", "签名信息被改动"),
    ("does not verify", "签名验证不通过"),
    ("does not chain", "印章证书不是登记中心印章CA签发的"),
    ("not valid when used", "用印时印章不在有效期内"),
    ("has expired", "证书已过期或尚未生效"),
    ("picture was swapped", "印章图片被替换"),
    ("not the centre's", "印章不属于登记中心"),
    ("cannot be read", "文件无法读取（损坏或格式不符）"),
    ("visible text", "文件显示的内容与登记中心签名的信息不一致"),
    ("SHA-256 differs", "文件摘要与登记中心签名的不一致"),
    ("carries no seal", "文件没有电子印章"),
    ("did not answer", "登记中心未应答"),
    ("could not run", "本地核验未能进行"),
)


def in_chinese(reason: str) -> str:
    """A verifier's reason as branch staff read it: a Chinese summary first, the sentence kept after it."""
    if any("\u4e00" <= ch <= "\u9fff" for ch in reason[:4]):
        return reason  # already Chinese first
    for words, chinese in _IN_CHINESE:
        if words in reason:
            return f"{chinese}：{reason}"
    return reason


def _finish(ctx: StageContext, app: Any, row: dict[str, Any]) -> None:
    """Mask the reasons (a Chinese summary first), set the verdict; alert, receipt line and audit record for what
    failed."""
    row["reasons"] = [mask_text(in_chinese(r)) for r in row["reasons"]]
    row["verdict"] = verdict(row)
    doc, number, what = row["document_id"], row["number"], row["title"]
    reasons = "; ".join(row["reasons"])
    with ctx.store.transaction():
        if row["verdict"] in ("revoked", "invalid"):
            ctx.store.raise_alert(f"{row['kind']}:{doc}", f"stored {row['kind']} {number} of {app.loan_no} failed its "
                                  f"re-check: {reasons}")  # fmt: skip
            numbers = {"certificate_number": number} if row["kind"] == "certificate" else {"notice_number": number}
            status = f"{what}复核未通过：{VERDICTS[row['verdict']]}"
            queue_receipt(ctx, app, f"recheck_failed:{doc}", "recheck_failed", status=status,
                          document=row["location"], reason="；".join(row["reasons"]), **numbers)  # fmt: skip
        elif row["verdict"] == "unknown":
            ctx.store.raise_alert(f"{row['kind']}:{doc}", f"the centre does not know stored {row['kind']} {number}")
    ctx.audit.append(f"{row['kind']}.rechecked", app.reference, row["verdict"], operator=operator_of(app.payload),
                     document_id=doc, online=row["online"], local=row["local"], reasons=reasons)  # fmt: skip
    log.info("document re-checked", extra={"document_id": doc, "online": row["online"], "local": row["local"]})
