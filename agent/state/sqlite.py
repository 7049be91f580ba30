"""The state store in one SQLite file, WAL, ``synchronous=FULL``; receipts: in sqlite_receipts."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.state.leases import InstanceLeases
from agent.state.migrations import MIGRATIONS, SCHEMA_VERSION
from agent.state.sqlite_receipts import ReceiptQueries
from agent.state.store import AppRow, now_iso
from sdk.support import failpoints

__all__ = ["SQLiteStore"]


class SQLiteStore(ReceiptQueries, InstanceLeases):
    """The state store in one SQLite file; safe to share between the daemon's threads.

    Args:
        path: the database file (``":memory:"`` for tests).
        encrypt / decrypt: seal and open personal data at rest (identity in tests only).
        indexer: the search keys of an application's payload (:func:`agent.state.lookup.search_keys_of`:
            its 不动产单元号, its parties' ID numbers as keyed hashes); none are kept without it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        encrypt: Callable[[bytes], bytes] | None = None,
        decrypt: Callable[[bytes], bytes] | None = None,
        indexer: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None,
    ) -> None:
        self.path = str(path)
        self.indexer = indexer
        self._encrypt = encrypt or (lambda b: b)
        self._decrypt = decrypt or (lambda b: b)
        self._lock = threading.RLock()
        self._depth = 0
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    # --- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit; nested uses join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    #: SQLite's clock in seconds since the epoch (to the millisecond), for the leases (agent.state.leases)
    _clock = "((julianday('now') - 2440587.5) * 86400.0)"

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        with self.transaction() as db:
            return [dict(r) for r in db.execute(sql, dict(params)).fetchall()]

    def _count(self, sql: str, params: Mapping[str, Any]) -> int:
        with self.transaction() as db:
            return int(db.execute(sql, dict(params)).rowcount)

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION`, one migration per transaction."""
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: state schema version {version} is newer than this agent ({SCHEMA_VERSION}); "
                "upgrade the agent"
            )
        for target in range(version, SCHEMA_VERSION):
            with self.transaction() as db:
                for i, statement in enumerate(s for s in MIGRATIONS[target].split(";") if s.strip()):
                    if i:
                        failpoints.reached("migration.during")
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target + 1}")
        return self.schema_version()

    def seal(self, value: Any) -> bytes:
        return self._encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True).encode())

    def open(self, blob: bytes) -> Any:
        return json.loads(self._decrypt(bytes(blob)))

    # --- meta ----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
            )

    # --- files ---------------------------------------------------------------------------

    def file_seen(self, sha256: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM files WHERE sha256 = ?", (sha256,))
        return None if row is None else dict(row)

    def record_file(self, sha256: str, **fields: Any) -> None:
        """Insert the file's record, or update the given columns of an existing one."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha256,)).fetchone():
                db.execute(
                    f"UPDATE files SET {', '.join(f'{c} = ?' for c in fields)} WHERE sha256 = ?",
                    (*fields.values(), sha256),
                )
                return
            fields.setdefault("received_at", now_iso())
            db.execute(
                f"INSERT INTO files (sha256, {', '.join(fields)}) VALUES (?, {', '.join('?' * len(fields))})",
                (sha256, *fields.values()),
            )

    def files(self, limit: int = 50) -> list[dict[str, Any]]:
        return [dict(r) for r in self._all("SELECT * FROM files ORDER BY received_at DESC LIMIT ?", (limit,))]

    # --- applications --------------------------------------------------------------------

    def add_application(self, row: dict[str, Any]) -> None:
        """Insert a new application (stage ``queued``) with its materials, in the caller's transaction."""
        now = now_iso()
        materials = row.pop("materials")
        payload = row.pop("payload")
        row = {
            **row,
            "payload": self.seal(payload),
            "source": json.dumps(row["source"], ensure_ascii=False),
            "stage": "queued",
            "created_at": now,
            "updated_at": now,
        }
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO applications ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            )
            for m in materials:
                db.execute(
                    "INSERT INTO materials (reference, material_id, code, sha256, size, blob) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (row["reference"], m["id"], m["code"], m["sha256"], m["size"], m["blob"]),
                )
            db.execute(
                "INSERT INTO transitions (reference, stage, at, note) VALUES (?, 'queued', ?, ?)",
                (row["reference"], now, "built from export"),
            )
            self._index(db, row["reference"], payload)

    def _index(self, db: sqlite3.Connection, reference: str, payload: dict[str, Any]) -> None:
        if self.indexer is None:
            return
        db.execute("DELETE FROM search_keys WHERE reference = ?", (reference,))
        db.executemany(
            "INSERT OR IGNORE INTO search_keys (kind, value, reference) VALUES (?, ?, ?)",
            [(kind, value, reference) for kind, value in self.indexer(payload)],
        )

    def reindex(self) -> int:
        """Rebuild the search keys of every application (after an upgrade, or a new secret); answers how many."""
        refs = [r[0] for r in self._all("SELECT reference FROM applications")]
        for ref in refs:
            app = self.application(ref)
            if app is not None:
                with self.transaction() as db:
                    self._index(db, ref, app.payload)
        return len(refs)

    def find_by_key(self, kind: str, value: str) -> list[str]:
        """The references of the applications with search key ``kind`` = ``value`` (``unit``, ``person``)."""
        sql = "SELECT reference FROM search_keys WHERE kind = ? AND value = ? ORDER BY reference"
        rows = self._all(sql, (kind, value))
        return [r[0] for r in rows]

    def loan_references(self, loan_no: str) -> list[str]:
        """Every application (operation) of one loan, oldest first."""
        return [r[0] for r in self._all(
            "SELECT reference FROM applications WHERE loan_no = ? ORDER BY created_at, reference", (loan_no,)
        )]  # fmt: skip

    def counts_by_inbox(self) -> dict[str, dict[str, int]]:
        """Applications by inbox and stage (``status``'s queues per inbox)."""
        out: dict[str, dict[str, int]] = {}
        for r in self._all("SELECT inbox, stage, COUNT(*) FROM applications GROUP BY inbox, stage"):
            out.setdefault(r[0], {})[r[1]] = r[2]
        return out

    def _app(self, row: sqlite3.Row | None) -> AppRow | None:
        if row is None:
            return None
        d = dict(row)
        d["payload"] = self.open(d["payload"])
        d["source"] = json.loads(d["source"])
        for name in ("correction", "decision", "supplement"):
            d[name] = self.open(d[name]) if d[name] is not None else None
        for name in ("payload_sha256", "paid_at", "deadline_warned", "needs_refresh", "paper_batch"):
            d.pop(name)
        for name in ("claimed_by", "claimed_until"):  # the claims of several instances (agent.state.leases)
            d.pop(name)
        return AppRow(**d)

    def application(self, reference: str) -> AppRow | None:
        return self._app(self._one("SELECT * FROM applications WHERE reference = ?", (reference,)))

    def payload_sha256(self, reference: str) -> str | None:
        row = self._one("SELECT payload_sha256 FROM applications WHERE reference = ?", (reference,))
        return None if row is None else str(row[0])

    def by_centre_id(self, application_id: str) -> AppRow | None:
        return self._app(self._one("SELECT * FROM applications WHERE application_id = ?", (application_id,)))

    def applications(self, *stages: str, due_before: float | None = None, limit: int = 100000) -> list[AppRow]:
        sql = "SELECT * FROM applications"
        args: list[Any] = []
        clauses = []
        if stages:
            clauses.append(f"stage IN ({', '.join('?' * len(stages))})")
            args += stages
        if due_before is not None:
            clauses.append("next_attempt_at <= ?")
            args.append(due_before)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at, reference LIMIT ?"
        return [a for a in map(self._app, self._all(sql, (*args, limit))) if a is not None]

    def references(self, *stages: str, where: str = "", args: tuple[Any, ...] = ()) -> list[str]:
        sql = "SELECT reference FROM applications"
        clauses = [f"stage IN ({', '.join('?' * len(stages))})"] if stages else []
        if where:
            clauses.append(where)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [r[0] for r in self._all(sql + " ORDER BY created_at, reference", (*stages, *args))]

    def fees_paid_on(self, day: str) -> list[str]:
        """The fee totals (decimal strings, 元) of the applications paid on ``day`` (``YYYY-MM-DD``, UTC)."""
        rows = self._all(
            "SELECT fee_total FROM applications WHERE paid_at LIKE ? AND fee_total IS NOT NULL", (day + "%",)
        )
        return [str(r[0]) for r in rows]

    def update_application(self, reference: str, *, note: str | None = None, **fields: Any) -> None:
        """Change an application; a change of stage or centre status is recorded in ``transitions``."""
        for name in ("correction", "decision", "supplement", "payload"):
            if name in fields and fields[name] is not None:
                fields[name] = self.seal(fields[name])
        fields["updated_at"] = now_iso()
        with self.transaction() as db:
            before = db.execute(
                "SELECT stage, centre_status FROM applications WHERE reference = ?", (reference,)
            ).fetchone()
            if before is None:
                raise KeyError(reference)
            db.execute(
                f"UPDATE applications SET {', '.join(f'{k} = ?' for k in fields)} WHERE reference = ?",
                (*fields.values(), reference),
            )
            stage = fields.get("stage", before["stage"])
            status = fields.get("centre_status", before["centre_status"])
            if "payload" in fields and self.indexer is not None:
                self._index(db, reference, self.open(fields["payload"]))
            if (stage, status) != (before["stage"], before["centre_status"]) or note:
                db.execute(
                    "INSERT INTO transitions (reference, stage, centre_status, at, note) VALUES (?, ?, ?, ?, ?)",
                    (reference, stage, status, fields["updated_at"], note),
                )

    def flag(self, reference: str, column: str, value: Any) -> None:
        """Set a bookkeeping column without recording a transition."""
        with self.transaction() as db:
            db.execute(f"UPDATE applications SET {column} = ? WHERE reference = ?", (value, reference))

    def flagged(self, column: str, value: int = 1) -> list[str]:
        # the value inline (an int), so that a partial index on the flag can answer
        return [r[0] for r in self._all(f"SELECT reference FROM applications WHERE {column} = {int(value)}")]

    def transitions(self, reference: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._all("SELECT * FROM transitions WHERE reference = ? ORDER BY id", (reference,))]

    def materials(self, reference: str) -> list[dict[str, Any]]:
        return [
            dict(r) for r in self._all("SELECT * FROM materials WHERE reference = ? ORDER BY material_id", (reference,))
        ]

    def replace_materials(self, reference: str, materials: list[dict[str, Any]]) -> None:
        with self.transaction() as db:
            for m in materials:
                db.execute(
                    "INSERT INTO materials (reference, material_id, code, sha256, size, blob) "
                    "VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(reference, material_id) DO UPDATE SET code = excluded.code, sha256 = excluded.sha256, "
                    "size = excluded.size, blob = excluded.blob, uploaded = 0",
                    (reference, m["id"], m["code"], m["sha256"], m["size"], m["blob"]),
                )

    def mark_uploaded(self, reference: str, material_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE materials SET uploaded = 1 WHERE reference = ? AND material_id = ?", (reference, material_id)
            )

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._all("SELECT stage, COUNT(*) FROM applications GROUP BY stage")}

    def gauges(self) -> dict[str, Any]:
        """What the metrics endpoint shows of the state, in a few aggregate queries."""
        with self._lock:
            certs = self._all("SELECT stage, COUNT(*) FROM certificates GROUP BY stage")
            one = self._db.execute(
                "SELECT (SELECT COUNT(*) FROM quarantine WHERE status = 'open'),"
                " (SELECT COUNT(*) FROM alerts WHERE cleared_at IS NULL),"
                " (SELECT COUNT(*) FROM receipt_batches WHERE written = 0)"
            ).fetchone()
            return {
                "applications": self.counts(),
                "certificates": {r[0]: r[1] for r in certs},
                "quarantine_open": one[0],
                "alerts_open": one[1],
                "receipt_batches_pending": one[2],
            }

    def status_counts(self) -> dict[str, int]:
        rows = self._all("SELECT COALESCE(centre_status, '-'), COUNT(*) FROM applications GROUP BY 1")
        return {r[0]: r[1] for r in rows}

    # --- quarantine ----------------------------------------------------------------------

    def quarantine(self, kind: str, errors: list[dict[str, Any]], **fields: Any) -> int:
        fields = {**fields, "kind": kind, "errors": self.seal(errors), "created_at": now_iso()}
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO quarantine ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
                tuple(fields.values()),
            )
            return int(cur.lastrowid or 0)

    def quarantined(self, status: str | None = "open") -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM quarantine", tuple[str, ...]()
        if status:
            sql, args = sql + " WHERE status = ?", (status,)
        out = []
        for r in self._all(sql + " ORDER BY id", args):
            d = dict(r)
            d["errors"] = self.open(d["errors"])
            out.append(d)
        return out

    def quarantine_item(self, item_id: int) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM quarantine WHERE id = ?", (item_id,))
        if row is None:
            return None
        d = dict(row)
        d["errors"] = self.open(d["errors"])
        return d

    def resolve_quarantine(self, item_id: int, status: str = "resolved") -> None:
        with self.transaction() as db:
            db.execute("UPDATE quarantine SET status = ?, resolved_at = ? WHERE id = ?", (status, now_iso(), item_id))

    def resolve_quarantine_for(self, loan_no: str, reference: str) -> int:
        """A later good row for the same loan operation resolves its open row quarantines."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE quarantine SET status = 'resolved', resolved_at = ? WHERE status = 'open' AND kind = 'row' "
                "AND (reference = ? OR (reference IS NULL AND loan_no = ?))",
                (now_iso(), reference, loan_no),
            )
            return cur.rowcount

    # --- events --------------------------------------------------------------------------

    def event_seen(self, event_id: str) -> bool:
        return self._one("SELECT 1 FROM events_seen WHERE event_id = ?", (event_id,)) is not None

    def mark_event(self, event_id: str, sequence: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO events_seen VALUES (?, ?, ?)", (event_id, sequence, now_iso()))

    # --- certificates --------------------------------------------------------------------

    def add_certificate(self, certificate_id: str, reference: str) -> bool:
        now = now_iso()
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO certificates (certificate_id, reference, stage, created_at, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?)",
                (certificate_id, reference, now, now),
            )
            return cur.rowcount > 0

    def certificate(self, certificate_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM certificates WHERE certificate_id = ?", (certificate_id,))
        return None if row is None else dict(row)

    def certificates(self, stage: str | None = None, reference: str | None = None) -> list[dict[str, Any]]:
        sql, clauses, args = "SELECT * FROM certificates", [], []
        if stage:
            clauses.append("stage = ?")
            args.append(stage)
        if reference:
            clauses.append("reference = ?")
            args.append(reference)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [dict(r) for r in self._all(sql + " ORDER BY created_at", tuple(args))]

    def superseding(self) -> list[dict[str, Any]]:
        """Stored certificates the centre superseded whose sidecar in the document store is not yet updated."""
        rows = self._all("SELECT * FROM certificates WHERE supersede_pending = 1 AND stage = 'stored'")
        return [dict(r) for r in rows]

    def certificate_by_number(self, number: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM certificates WHERE certificate_number = ?", (number,))
        return None if row is None else dict(row)

    def update_certificate(self, certificate_id: str, **fields: Any) -> None:
        fields["updated_at"] = now_iso()
        with self.transaction() as db:
            db.execute(
                f"UPDATE certificates SET {', '.join(f'{k} = ?' for k in fields)} WHERE certificate_id = ?",
                (*fields.values(), certificate_id),
            )

    # --- alerts --------------------------------------------------------------------------

    def raise_alert(self, kind: str, message: str) -> bool:
        """Raise an alert unless one of the same kind is already open."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM alerts WHERE kind = ? AND cleared_at IS NULL", (kind,)).fetchone():
                return False
            db.execute("INSERT INTO alerts (kind, message, raised_at) VALUES (?, ?, ?)", (kind, message, now_iso()))
            return True

    def clear_alert(self, kind: str) -> bool:
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE alerts SET cleared_at = ? WHERE kind = ? AND cleared_at IS NULL", (now_iso(), kind)
            )
            return cur.rowcount > 0

    def alerts(self, open_only: bool = True) -> list[dict[str, Any]]:
        sql = "SELECT * FROM alerts" + (" WHERE cleared_at IS NULL" if open_only else "") + " ORDER BY id"
        return [dict(r) for r in self._all(sql)]

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
        with self.transaction() as db:
            db.execute(
                "INSERT INTO transmittals (id, created_at, csv_path, pdf_path) VALUES (?, ?, ?, ?)",
                (transmittal_id, now_iso(), csv_path, pdf_path),
            )
            for ref in references:
                db.execute(
                    "UPDATE applications SET paper_status = 'listed', paper_batch = ? WHERE reference = ?",
                    (transmittal_id, ref),
                )

    def transmittals(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._all("SELECT * FROM transmittals ORDER BY created_at")]

    def confirm_transmittal(self, transmittal_id: str) -> int:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM transmittals WHERE id = ?", (transmittal_id,)).fetchone() is None:
                raise KeyError(transmittal_id)
            db.execute("UPDATE transmittals SET delivered_at = ? WHERE id = ?", (now_iso(), transmittal_id))
            cur = db.execute(
                "UPDATE applications SET paper_status = 'delivered' WHERE paper_batch = ?", (transmittal_id,)
            )
            return cur.rowcount
