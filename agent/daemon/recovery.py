"""After a restore (``regbridge restore``): bring the restored state up to what happened since its backup.

:func:`agent.state.backup.restore_files` puts the backup back; then, with the agent open on it
(:func:`recover`):

1. every receipt line the recovery journal says was written after the backup is recorded as delivered,
   so none is written to the loan system twice;
2. every export the journal kept (ingested after the backup) that the restored state does not know is
   ingested again, from its encrypted copy;
3. every application the restored state has not sent yet (``queued``, ``created``) is looked up at the
   centre by its client reference: one the agent submitted after the backup is re-adopted (its centre id
   and status; tracked from there), so nothing is sent twice or forgotten. Those the centre does not know
   are sent as usual, with the idempotency keys stored before their first attempt.

The event feed is read again from the restored cursor: events after the backup are handled again (a
certificate already in the document store is the same content again: a no-op there).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.pipeline.ingest import ingest_file
from agent.state.backup import RecoveryJournal, recovery_dir
from sdk.models import ApplicationStatus

if TYPE_CHECKING:
    from agent.daemon.agent import Agent

__all__ = ["Recovery", "recover"]

log = logging.getLogger("regbridge.agent.recovery")


@dataclass
class Recovery:
    """What :func:`recover` did."""

    receipts_known: int = 0
    exports_reingested: int = 0
    readopted: int = 0
    not_at_centre: int = 0


def recover(agent: Agent) -> Recovery:
    """Re-ingest, mark delivered and re-adopt what happened after the restored backup (see the module).

    Raises:
        sdk.RegBridgeError: the centre cannot be asked (run ``regbridge restore`` again: every step is safe
            to repeat).
    """
    done = Recovery()
    ctx, store = agent.context, agent.store
    journal = RecoveryJournal(recovery_dir(agent.config))
    for line in journal.receipts():
        if store.receipt_delivered(line["reference"], line["kind"], line["inbox"], line["payload"], line["file"]):
            done.receipts_known += 1
    inboxes = {i.name: i for i in agent.config.inbox}
    for kept in journal.exports():
        sha, inbox = kept["sha256"], inboxes.get(kept["inbox"])
        if inbox is None or store.file_seen(sha) is not None:
            continue
        if not agent.blobs.exists(sha):  # its encrypted copy, as the blobs keep it
            target = agent.blobs.root / sha[:2] / sha
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(journal.exports_dir / sha, target)
        folder = agent.config.resolve(inbox.path)
        path = folder / kept["name"]
        if path.exists():
            path = folder / f"restored-{sha[:12]}-{kept['name']}"
        tmp = folder / f".{path.name}.restoring"
        tmp.write_bytes(agent.blobs.get(sha))
        os.replace(tmp, path)
        ingest_file(ctx, inbox, path)
        done.exports_reingested += 1
        agent.audit.append("file.reingested", kept["name"], "ok", sha256=sha[:16])
    for app in store.applications("queued", "created"):
        record = ctx.centre.find(app.reference)
        if record is None:
            done.not_at_centre += 1
            continue
        draft = record.status is ApplicationStatus.DRAFT
        store.update_application(
            app.reference,
            application_id=record.application_id,
            centre_status=record.status.value,
            stage="created" if draft else "tracking",
            attempts=0,
            last_error=None,
            note="re-adopted from the centre after a restore",
        )
        if not draft:  # submitted: its materials are at the centre, its status is read again
            for m in store.materials(app.reference):
                store.mark_uploaded(app.reference, m["material_id"])
            store.flag(app.reference, "needs_refresh", 1)
        done.readopted += 1
        agent.audit.append(
            "application.readopted", app.reference, "ok", application_id=record.application_id,
            status=record.status.value,
        )  # fmt: skip
    agent.audit.append(
        "agent.restored", agent.config.centre.institution_id, "ok", receipts_known=done.receipts_known,
        exports_reingested=done.exports_reingested, readopted=done.readopted,
    )  # fmt: skip
    log.info("restored state brought up to date", extra=vars(done))
    return done
