"""Receipts: the lines queued for the loan system (accepted, 补正, fees, registered, quarantined…) → files.

What a loan system imports without surprises:

- times (``时间``, ``补正期限``) in the branch's time zone (``timezone``, Asia/Shanghai by default) with
  their offset, ``2026-11-30T15:08:46+08:00``; the state keeps UTC, converted here when written;
- batch numbers per inbox: each inbox's receipt files are numbered 1, 2, 3… in its own folder
  (``receipts-000001.csv``), and each line carries its batch (``批次号``); an inbox whose folder already
  holds numbered files (an older agent numbered batches across inboxes) continues above them;
- an export refused as a whole (unreadable, empty, a link, too big) has its own line (``事件`` =
  ``file_read`` / ``file_refused``) with the reason;
- row references in one format everywhere: ``第3行``, ``第3行、第4行`` (as ``status`` and the reports).

Each inbox's unbatched lines are given a batch, and its file name, in the state store first;
then the file is written into place (atomic rename) and the batch marked written. A crash in
between writes the same file again. An inbox whose folder is away (a share disconnected) keeps its
batches until it is back: they are never written into an empty local folder.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

from agent.pipeline.context import StageContext
from agent.state.backup import RecoveryJournal, recovery_dir
from agent.state.store import local_time
from connectors.readers import rows_label
from connectors.receipts import receipt_path, render_receipts
from sdk.support.files import atomic_write

__all__ = ["batch_number", "local_line", "write_receipts"]

_NUMBERED = re.compile(r"^receipts-(\d+)\.(?:csv|jsonl)$")


def _receipt_file(ctx: StageContext, inbox: str, folder: Path, fmt: str, batch: int) -> str:
    """The file of the inbox's next batch: its own sequence, above any numbered file already in the folder.

    Called inside the store's transaction that creates the batch, so the number and the batch are
    committed together (a crash before the file is written rewrites the same name)."""
    key = f"receipt_seq:{inbox}"
    last = int(ctx.store.get_meta(key) or 0)
    try:
        present = [int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))]
    except OSError:
        present = []
    number = max([last, *present]) + 1
    ctx.store.set_meta(key, str(number))
    return str(receipt_path(folder, number, fmt))


def batch_number(path: str) -> int | None:
    """The per-inbox batch number of a receipt file (``receipts-000007.csv`` → 7)."""
    m = _NUMBERED.match(Path(path).name)
    return int(m.group(1)) if m else None


def local_line(payload: dict[str, Any], tz: str, batch: int | None) -> dict[str, Any]:
    """A receipt line as the loan system reads it: local times with their offset, rows as ``第N行``, its batch."""
    line = dict(payload)
    for key in ("at", "deadline"):
        if line.get(key):
            line[key] = local_time(str(line[key]), tz)
    if "rows" in line:
        line["rows"] = rows_label(line["rows"])
    line["batch"] = batch
    return line


def write_receipts(ctx: StageContext) -> int:
    """Write every pending receipt batch of the inboxes that are there; answers the lines written."""
    written = 0
    available = {i.name for i in ctx.config.inbox if ctx.supervisor.inbox_available(i)}
    for inbox in ctx.config.inbox:
        if inbox.name not in available:
            continue
        spec = ctx.profiles[inbox.name].receipts
        ctx.store.open_receipt_batch(
            inbox.name, partial(_receipt_file, ctx, inbox.name, ctx.receipts_folder(inbox), spec.format)
        )
    for batch in ctx.store.pending_receipt_batches():
        if batch["inbox"] not in available:
            continue  # the share is away: the batch waits, it is not written into an empty local folder
        spec = ctx.profiles[batch["inbox"]].receipts
        number = batch_number(batch["path"])
        rows = ctx.store.batch_receipts(batch["id"])
        lines = [local_line(r["payload"], ctx.config.timezone, number) for r in rows]
        atomic_write(
            Path(batch["path"]),
            render_receipts(lines, spec.format, spec.encoding),
            mode=0o644,
            failpoint="receipt.during_write",
        )
        # journalled before the batch counts as written (a crash between: written and journalled again), so a
        # restore to an earlier backup knows the loan system has these lines (agent.state.backup)
        RecoveryJournal(recovery_dir(ctx.config)).note_receipts(rows, batch["path"])
        ctx.store.mark_batch_written(batch["id"])
        ctx.audit.append("receipts.written", Path(batch["path"]).name, "ok", lines=len(lines))
        written += len(lines)
    return written
