"""Re-applying after a refusal (issue 18 item 3).

A refused application (不予受理, 不予登记), or one withdrawn, cancelled (作废) or voided (撤销), is
final at the centre: its reference can never be used again. The loan is applied for again as a
**new operation** — a new reference ``<reference>-R<n>`` (R1, R2… in order), new idempotency keys —
either

- from the same row once the loan system corrects it, when the profile says so
  (``[identity] reapply_after_refusal = true``): a changed row for a refused reference becomes
  the re-application; an unchanged row stays a duplicate; or
- by hand, ``regbridge reapply LOAN_OR_REFERENCE``, from the application as last sent (after the
  cause was fixed at the centre, say, or a 补正 deadline missed).

The link is kept both ways: the new application's source names the one it re-applies
(``reapplies``), ``regbridge status`` lists it, and the loan system gets a ``reapplied`` receipt line
naming the refused reference and its decision.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from agent.config import InboxConfig
from agent.pipeline.build import BuiltApplication, payload_digest
from agent.pipeline.context import StageContext
from agent.pipeline.operators import operator_of
from agent.pipeline.outbox import IngestReport, admit, queue_receipt
from agent.state.store import AppRow, StateStore
from sdk import new_idempotency_key
from sdk.models import UNSUCCESSFUL_STATUSES, ApplicationStatus

__all__ = [
    "NotReappliable",
    "admit_or_reapply",
    "chain",
    "head_of",
    "latest",
    "reapply",
    "reapply_loan",
    "with_reference",
]

_UNSUCCESSFUL = {s.value for s in UNSUCCESSFUL_STATUSES}
_SUFFIX = re.compile(r"-R\d+$")


def head_of(reference: str) -> str:
    """The reference the chain started with (``X-R2`` → ``X``)."""
    return _SUFFIX.sub("", reference)


class NotReappliable(Exception):
    """The application is not (or not yet) refused: it is not applied for again (the message says why)."""


def chain(store: StateStore, reference: str) -> list[AppRow]:
    """The application with ``reference`` and its re-applications, oldest first."""
    first = store.application(reference)
    if first is None:
        return []
    found = [first]
    n = 1
    while (nxt := store.application(f"{reference}-R{n}")) is not None:
        found.append(nxt)
        n += 1
    return found


def latest(store: StateStore, reference: str) -> AppRow | None:
    """The newest application of the chain that started with ``reference``."""
    apps = chain(store, reference)
    return apps[-1] if apps else None


def with_reference(b: BuiltApplication, reference: str) -> BuiltApplication:
    """The built application under another client_reference (a re-application, or the chain's newest)."""
    payload = {**b.payload, "client_reference": reference}
    return dataclasses.replace(b, reference=reference, payload=payload)


def _refused(app: AppRow) -> bool:
    return app.stage == "rejected" and app.centre_status in _UNSUCCESSFUL


def reapply(
    ctx: StageContext,
    refused: AppRow,
    *,
    payload: dict[str, Any],
    materials: list[dict[str, Any]],
    source: dict[str, Any],
    why: str,
) -> str:
    """Queue ``payload`` as a new operation re-applying ``refused``; answer the new reference.

    Raises:
        NotReappliable: ``refused`` is not a final refusal (or a newer application of its chain exists).
    """
    store = ctx.store
    if not _refused(refused):
        raise NotReappliable(
            f"{refused.reference} is {refused.centre_status or refused.stage}: only an application refused, "
            "withdrawn, cancelled or voided is applied for again"
        )
    base = head_of(refused.reference)
    apps = chain(store, base)
    if apps and apps[-1].reference != refused.reference:
        raise NotReappliable(f"{refused.reference} was already applied for again as {apps[-1].reference}")
    new_ref = f"{base}-R{len(apps)}"
    payload = {**payload, "client_reference": new_ref}
    with store.transaction():
        store.add_application(
            {
                "reference": new_ref,
                "loan_no": refused.loan_no,
                "type": refused.type,
                "inbox": refused.inbox,
                "profile": refused.profile,
                "source": [{**source, "reapplies": refused.reference}],
                "payload": payload,
                "payload_sha256": payload_digest(payload),
                "idem_create": new_idempotency_key(),
                "idem_submit": new_idempotency_key(),
                "materials": materials,
            }
        )
        store.update_application(refused.reference, note=f"applied for again as {new_ref} ({why})")
        new = store.application(new_ref)
        assert new is not None
        decision = refused.decision or {}
        label = ApplicationStatus(refused.centre_status).label if refused.centre_status else refused.stage
        queue_receipt(
            ctx,
            new,
            "reapplied",
            "reapplied",
            status="重新申请",
            reason=f"重新申请：原业务 {refused.reference} {label}"
            + (f"（{decision.get('code')}）" if decision.get("code") else ""),
            reapplies=refused.reference,
        )
    ctx.audit.append(
        "application.reapplied", new_ref, "ok", reapplies=refused.reference, why=why, operator=operator_of(payload)
    )
    return new_ref


def reapply_loan(ctx: StageContext, loan_or_reference: str) -> str:
    """``regbridge reapply``: apply again, as last sent, for the refused application of a loan (or reference).

    Raises:
        KeyError: nothing of that loan or reference; NotReappliable: nothing refused to apply for again,
            or several refused operations of the loan (name the reference).
    """
    store = ctx.store
    app = store.application(loan_or_reference)
    if app is None:
        refused = [a for a in store.applications() if a.loan_no == loan_or_reference and _refused(a)]
        heads = {head_of(a.reference) for a in refused}
        if not refused:
            if any(a.loan_no == loan_or_reference for a in store.applications()):
                raise NotReappliable(f"loan {loan_or_reference} has no refused application to apply for again")
            raise KeyError(loan_or_reference)
        if len(heads) > 1:
            names = ", ".join(sorted(heads))
            raise NotReappliable(f"loan {loan_or_reference} has several refused operations: name one of {names}")
        app = store.application(heads.pop())
        assert app is not None
    newest = latest(store, head_of(app.reference)) or app
    materials = [
        {"id": m["material_id"], "code": m["code"], "sha256": m["sha256"], "size": m["size"], "blob": m["blob"]}
        for m in store.materials(newest.reference)
    ]
    source = dict(newest.source[-1]) if newest.source else {}
    source.pop("reapplies", None)
    return reapply(ctx, newest, payload=dict(newest.payload), materials=materials, source=source, why="by hand")


def admit_or_reapply(
    ctx: StageContext,
    inbox: InboxConfig,
    report: IngestReport,
    b: BuiltApplication,
    columns: dict[str, list[Any]],
    sha: str,
    label: str,
) -> str:
    """Admit a built row; rows of a re-applied loan go to the chain's newest application, and with
    ``[identity] reapply_after_refusal`` a changed row of a refused one becomes its re-application.
    Answers the accounting bucket (as :func:`agent.pipeline.outbox.admit`)."""
    store = ctx.store
    if store.application(b.reference) is not None:
        newest = latest(store, b.reference)
        assert newest is not None
        if newest.reference != b.reference:
            b = with_reference(b, newest.reference)  # the chain's newest answers this loan's rows now
        rule = ctx.profiles[inbox.name].identity.reapply_after_refusal
        if rule and _refused(newest) and store.payload_sha256(newest.reference) != payload_digest(b.payload):
            source = {"file": label, "sha256": sha, "rows": b.rows, "columns": columns}
            if b.authorisation:
                source["authorisation"] = b.authorisation
            new_ref = reapply(
                ctx, newest, payload=b.payload, materials=b.materials, source=source, why="a corrected row"
            )
            store.resolve_quarantine_for(b.loan_no, new_ref)
            report.queued.append(new_ref)
            return "queue"
    return admit(ctx, inbox, report, b, columns, sha, label)
