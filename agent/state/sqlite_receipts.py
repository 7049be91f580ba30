"""The store's receipt lines and their batches (the receipts table): a mixin of SQLiteStore."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from agent.state.store import now_iso

__all__ = ["ReceiptQueries"]


class ReceiptQueries:
    """Receipt lines queued per application and kind, assigned to a batch before its file is written.

    Each call is one transaction of the store it is mixed into (``transaction``, ``_one``, ``_all``
    are :class:`~agent.state.sqlite.SQLiteStore`'s plumbing).
    """

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        raise NotImplementedError

    def add_receipt(self, reference: str, kind: str, inbox: str, payload: dict[str, Any]) -> bool:
        """Queue one receipt line; a second one of the same kind for the same application is ignored."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO receipts (reference, kind, inbox, payload, created_at) VALUES (?, ?, ?, ?, ?)",
                (reference, kind, inbox, json.dumps(payload, ensure_ascii=False), now_iso()),
            )
            return cur.rowcount > 0

    def receipt_delivered(self, reference: str, kind: str, inbox: str, payload: dict[str, Any], path: str) -> bool:
        """Record a receipt line the loan system already has (written to ``path`` after the backup a restored
        state was taken at): it is not queued again. False when the state knows it already."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO receipts (reference, kind, inbox, payload, created_at) VALUES (?, ?, ?, ?, ?)",
                (reference, kind, inbox, json.dumps(payload, ensure_ascii=False), now_iso()),
            )
            known = db.execute(
                "SELECT b.written FROM receipts r LEFT JOIN receipt_batches b ON b.id = r.batch "
                "WHERE r.reference = ? AND r.kind = ?",
                (reference, kind),
            ).fetchone()
            if known is not None and known[0]:  # written already, as the state knows
                return False
            batch = db.execute(
                "INSERT INTO receipt_batches (inbox, path, written, created_at) VALUES (?, ?, 1, ?)",
                (inbox, path, now_iso()),
            ).lastrowid
            db.execute("UPDATE receipts SET batch = ? WHERE reference = ? AND kind = ?", (batch, reference, kind))
            return True

    def receipts(self, reference: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM receipts", tuple[str, ...]()
        if reference:
            sql, args = sql + " WHERE reference = ?", (reference,)
        rows = [dict(r) for r in self._all(sql + " ORDER BY id", args)]
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def open_receipt_batch(self, inbox: str, path_for: Callable[[int], str]) -> dict[str, Any] | None:
        """Assign every unbatched receipt of ``inbox`` to a new batch (persisted before the file is written)."""
        with self.transaction() as db:
            if (
                db.execute("SELECT 1 FROM receipts WHERE batch IS NULL AND inbox = ? LIMIT 1", (inbox,)).fetchone()
                is None
            ):
                return None
            cur = db.execute(
                "INSERT INTO receipt_batches (inbox, path, created_at) VALUES (?, '', ?)", (inbox, now_iso())
            )
            batch = int(cur.lastrowid or 0)
            db.execute("UPDATE receipt_batches SET path = ? WHERE id = ?", (path_for(batch), batch))
            db.execute("UPDATE receipts SET batch = ? WHERE batch IS NULL AND inbox = ?", (batch, inbox))
        return self.receipt_batch(batch)

    def receipt_batch(self, batch: int) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM receipt_batches WHERE id = ?", (batch,))
        return None if row is None else dict(row)

    def pending_receipt_batches(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._all("SELECT * FROM receipt_batches WHERE written = 0 ORDER BY id")]

    def batch_receipts(self, batch: int) -> list[dict[str, Any]]:
        rows = [dict(r) for r in self._all("SELECT * FROM receipts WHERE batch = ? ORDER BY id", (batch,))]
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def mark_batch_written(self, batch: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE receipt_batches SET written = 1 WHERE id = ?", (batch,))
