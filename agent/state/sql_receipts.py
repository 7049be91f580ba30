"""The SQLAlchemy store's receipt lines and batches, alerts and paper transmittals: a mixin of SQLStore."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa

from agent.state.store import AppRow, now_iso

__all__ = ["SqlReceiptQueries"]


class SqlReceiptQueries:
    """Receipt lines queued per application and kind, assigned to a batch before its file is written;
    alerts (one open per kind); the transmittals of paper originals (seed 001).

    Each call is one transaction of the store it is mixed into (``transaction``, ``_exec``, ``_one``,
    ``_all`` are :class:`~agent.state.sql.SQLStore`'s plumbing).
    """

    def transaction(self) -> AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _exec(self, sql: str, params: Mapping[str, Any] | None = None) -> sa.CursorResult[Any]:
        raise NotImplementedError

    def _scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _one(self, sql: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        raise NotImplementedError

    def _app(self, row: dict[str, Any] | None) -> AppRow | None:
        raise NotImplementedError

    # --- receipts ------------------------------------------------------------------------

    def add_receipt(self, reference: str, kind: str, inbox: str, payload: dict[str, Any]) -> bool:
        """Queue one receipt line; a second one of the same kind for the same application is ignored."""
        result = self._exec(
            "INSERT INTO receipts (reference, kind, inbox, payload, created_at) "
            "VALUES (:ref, :kind, :inbox, :payload, :at) ON CONFLICT DO NOTHING",
            {
                "ref": reference,
                "kind": kind,
                "inbox": inbox,
                "payload": json.dumps(payload, ensure_ascii=False),
                "at": now_iso(),
            },
        )
        return result.rowcount > 0

    def receipt_delivered(self, reference: str, kind: str, inbox: str, payload: dict[str, Any], path: str) -> bool:
        """Record a receipt line the loan system already has (written to ``path`` after the backup a restored
        state was taken at): it is not queued again. False when the state knows it already."""
        with self.transaction():
            self.add_receipt(reference, kind, inbox, payload)
            known = self._one(
                "SELECT b.written FROM receipts r LEFT JOIN receipt_batches b ON b.id = r.batch "
                "WHERE r.reference = :ref AND r.kind = :kind",
                {"ref": reference, "kind": kind},
            )
            if known is not None and known["written"]:  # written already, as the state knows
                return False
            batch = int(
                self._scalar(
                    "INSERT INTO receipt_batches (inbox, path, written, created_at) "
                    "VALUES (:inbox, :path, 1, :at) RETURNING id",
                    {"inbox": inbox, "path": path, "at": now_iso()},
                )
            )
            self._exec(
                "UPDATE receipts SET batch = :batch WHERE reference = :ref AND kind = :kind",
                {"batch": batch, "ref": reference, "kind": kind},
            )
            return True

    @staticmethod
    def _loaded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def receipts(self, reference: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM receipts", {}
        if reference:
            sql, params = sql + " WHERE reference = :ref", {"ref": reference}
        return self._loaded(self._all(sql + " ORDER BY id", params))

    def open_receipt_batch(self, inbox: str, path_for: Callable[[int], str]) -> dict[str, Any] | None:
        """Assign every unbatched receipt of ``inbox`` to a new batch (persisted before the file is written)."""
        with self.transaction():
            if (
                self._one(
                    "SELECT 1 AS x FROM receipts WHERE batch IS NULL AND inbox = :inbox LIMIT 1", {"inbox": inbox}
                )
                is None
            ):
                return None
            batch = int(
                self._scalar(
                    "INSERT INTO receipt_batches (inbox, path, created_at) VALUES (:inbox, '', :at) RETURNING id",
                    {"inbox": inbox, "at": now_iso()},
                )
            )
            self._exec("UPDATE receipt_batches SET path = :path WHERE id = :id", {"path": path_for(batch), "id": batch})
            self._exec(
                "UPDATE receipts SET batch = :batch WHERE batch IS NULL AND inbox = :inbox",
                {"batch": batch, "inbox": inbox},
            )
        return self.receipt_batch(batch)

    def receipt_batch(self, batch: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM receipt_batches WHERE id = :id", {"id": batch})

    def pending_receipt_batches(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM receipt_batches WHERE written = 0 ORDER BY id")

    def batch_receipts(self, batch: int) -> list[dict[str, Any]]:
        return self._loaded(self._all("SELECT * FROM receipts WHERE batch = :batch ORDER BY id", {"batch": batch}))

    def mark_batch_written(self, batch: int) -> None:
        self._exec("UPDATE receipt_batches SET written = 1 WHERE id = :id", {"id": batch})

    # --- alerts --------------------------------------------------------------------------

    def raise_alert(self, kind: str, message: str) -> bool:
        """Raise an alert unless one of the same kind is already open."""
        with self.transaction():
            if self._one("SELECT 1 AS x FROM alerts WHERE kind = :kind AND cleared_at IS NULL", {"kind": kind}):
                return False
            self._exec(
                "INSERT INTO alerts (kind, message, raised_at) VALUES (:kind, :message, :at)",
                {"kind": kind, "message": message, "at": now_iso()},
            )
            return True

    def clear_alert(self, kind: str) -> bool:
        result = self._exec(
            "UPDATE alerts SET cleared_at = :at WHERE kind = :kind AND cleared_at IS NULL",
            {"at": now_iso(), "kind": kind},
        )
        return result.rowcount > 0

    def alerts(self, open_only: bool = True) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM alerts" + (" WHERE cleared_at IS NULL" if open_only else "") + " ORDER BY id")

    # --- paper originals -----------------------------------------------------------------

    def paper_owed(self) -> list[AppRow]:
        """Applications the centre accepted whose paper originals have not been handed over."""
        rows = self._all(
            "SELECT * FROM applications WHERE paper_status = 'owed' AND application_id IS NOT NULL "
            "AND centre_status IN ('accepted', 'under_review', 'recorded', 'certificate_issued', 'completed') "
            "ORDER BY created_at, reference"
        )
        return [a for a in map(self._app, rows) if a is not None]

    def add_transmittal(self, transmittal_id: str, references: list[str], csv_path: str, pdf_path: str) -> None:
        with self.transaction():
            self._exec(
                "INSERT INTO transmittals (id, created_at, csv_path, pdf_path) VALUES (:id, :at, :csv, :pdf)",
                {"id": transmittal_id, "at": now_iso(), "csv": csv_path, "pdf": pdf_path},
            )
            for ref in references:
                self._exec(
                    "UPDATE applications SET paper_status = 'listed', paper_batch = :id WHERE reference = :ref",
                    {"id": transmittal_id, "ref": ref},
                )

    def transmittals(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM transmittals ORDER BY created_at")

    def confirm_transmittal(self, transmittal_id: str) -> int:
        """Mark a transmittal delivered; returns how many applications' originals it carried.

        Raises:
            KeyError: no transmittal ``transmittal_id``.
        """
        with self.transaction():
            if self._one("SELECT 1 AS x FROM transmittals WHERE id = :id", {"id": transmittal_id}) is None:
                raise KeyError(transmittal_id)
            self._exec(
                "UPDATE transmittals SET delivered_at = :at WHERE id = :id", {"at": now_iso(), "id": transmittal_id}
            )
            result = self._exec(
                "UPDATE applications SET paper_status = 'delivered' WHERE paper_batch = :id", {"id": transmittal_id}
            )
            return int(result.rowcount)
