"""Receipts: the lines queued for the loan system (accepted, 补正, fees, registered, quarantined…) → files.

Each inbox's unbatched lines are given a batch, and its file name, in the state store first;
then the file is written into place (atomic rename) and the batch marked written. A crash in
between writes the same file again. An inbox whose folder is away (a share disconnected) keeps its
batches until it is back: they are never written into an empty local folder.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from agent.pipeline.context import StageContext
from connectors.receipts import receipt_path, render_receipts
from sdk.support.files import atomic_write

__all__ = ["write_receipts"]


def _receipt_file(folder: Path, fmt: str, batch: int) -> str:
    return str(receipt_path(folder, batch, fmt))


def write_receipts(ctx: StageContext) -> int:
    """Write every pending receipt batch of the inboxes that are there; answers the lines written."""
    written = 0
    available = {i.name for i in ctx.config.inbox if ctx.supervisor.inbox_available(i)}
    for inbox in ctx.config.inbox:
        if inbox.name not in available:
            continue
        spec = ctx.profiles[inbox.name].receipts
        ctx.store.open_receipt_batch(inbox.name, partial(_receipt_file, ctx.receipts_folder(inbox), spec.format))
    for batch in ctx.store.pending_receipt_batches():
        if batch["inbox"] not in available:
            continue  # the share is away: the batch waits, it is not written into an empty local folder
        spec = ctx.profiles[batch["inbox"]].receipts
        lines = [r["payload"] for r in ctx.store.batch_receipts(batch["id"])]
        atomic_write(
            Path(batch["path"]),
            render_receipts(lines, spec.format, spec.encoding),
            mode=0o644,
            failpoint="receipt.during_write",
        )
        ctx.store.mark_batch_written(batch["id"])
        ctx.audit.append("receipts.written", Path(batch["path"]).name, "ok", lines=len(lines))
        written += len(lines)
    return written
