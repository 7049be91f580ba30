"""The sandbox centre's state: SQLite, in a file (survives restarts) or in memory (tests).

One connection guarded by a lock: the sandbox is a development centre, and SQLite in WAL mode
serialises writes anyway. Documents (applications, histories) are stored as JSON; what is
queried (status, references, sequences) has its own columns.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

__all__ = ["CHINA", "Store", "china_today", "new_id", "now_utc"]

SCHEMA_VERSION = 3  # 2: operators.deactivated_at, refunds; 3: admin_tokens.expires_at

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS institutions (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, uscc TEXT NOT NULL UNIQUE, licence_no TEXT NOT NULL,
    district TEXT NOT NULL, channel_status TEXT NOT NULL DEFAULT 'open', channel_reason TEXT,
    channel_since TEXT NOT NULL, webhook_url TEXT, filing TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS operators (
    id TEXT PRIMARY KEY, institution_id TEXT NOT NULL REFERENCES institutions(id),
    display_name TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1, deactivated_at TEXT
);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, institution_id TEXT NOT NULL REFERENCES institutions(id),
    algorithm TEXT NOT NULL, jwk TEXT NOT NULL, label TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status TEXT NOT NULL, created_at TEXT NOT NULL, revoke_at TEXT, revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS enrolment_tokens (
    token_hash TEXT PRIMARY KEY, institution_id TEXT NOT NULL REFERENCES institutions(id),
    expires_at TEXT NOT NULL, used_at TEXT
);
CREATE TABLE IF NOT EXISTS nonces (
    key_id TEXT NOT NULL, nonce TEXT NOT NULL, seen_at REAL NOT NULL, PRIMARY KEY (key_id, nonce)
);
CREATE TABLE IF NOT EXISTS idempotency (
    institution_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status_code INTEGER, body BLOB, created_at TEXT NOT NULL, PRIMARY KEY (institution_id, key)
);
CREATE TABLE IF NOT EXISTS applications (
    id TEXT PRIMARY KEY, institution_id TEXT NOT NULL REFERENCES institutions(id),
    client_reference TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (institution_id, client_reference)
);
CREATE TABLE IF NOT EXISTS materials (
    application_id TEXT NOT NULL REFERENCES applications(id), material_id TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, content BLOB NOT NULL, PRIMARY KEY (application_id, material_id)
);
CREATE TABLE IF NOT EXISTS filing_documents (
    institution_id TEXT NOT NULL REFERENCES institutions(id), material_id TEXT NOT NULL, sha256 TEXT NOT NULL,
    content BLOB NOT NULL, PRIMARY KEY (institution_id, material_id)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, institution_id TEXT NOT NULL, event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_institution ON events (institution_id, seq);
CREATE TABLE IF NOT EXISTS units (
    unit_id TEXT PRIMARY KEY, n INTEGER, location TEXT NOT NULL, property_type TEXT NOT NULL,
    title_certificate TEXT, owners TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rights (
    id TEXT PRIMARY KEY, unit_id TEXT NOT NULL REFERENCES units(unit_id), kind TEXT NOT NULL, status TEXT NOT NULL,
    certificate_number TEXT, holder_name TEXT, holder_code TEXT, rank INTEGER, method TEXT, amount TEXT,
    maximum_amount TEXT, subkind TEXT, terms TEXT NOT NULL DEFAULT '{}', registered_at TEXT NOT NULL,
    application_id TEXT, certificate_id TEXT, note TEXT, parties TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS rights_by_unit ON rights (unit_id);
CREATE INDEX IF NOT EXISTS rights_by_certificate ON rights (certificate_number);
CREATE TABLE IF NOT EXISTS schedule (
    application_id TEXT PRIMARY KEY, institution_id TEXT NOT NULL, due_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fees (
    application_id TEXT PRIMARY KEY, notice TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY, institution_id TEXT NOT NULL, application_id TEXT NOT NULL, receipt TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT PRIMARY KEY, institution_id TEXT NOT NULL, application_id TEXT NOT NULL,
    payment_id TEXT NOT NULL UNIQUE, refund TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    id TEXT PRIMARY KEY, institution_id TEXT NOT NULL, application_id TEXT NOT NULL, licence_id TEXT NOT NULL UNIQUE,
    certificate_number TEXT NOT NULL, sha256 TEXT NOT NULL, metadata TEXT NOT NULL, signature TEXT NOT NULL,
    content BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_by_sha ON certificates (sha256);
CREATE INDEX IF NOT EXISTS certificates_by_number ON certificates (certificate_number);
CREATE TABLE IF NOT EXISTS notices (
    id TEXT PRIMARY KEY, institution_id TEXT NOT NULL, application_id TEXT, kind TEXT NOT NULL,
    notice_number TEXT NOT NULL, metadata TEXT NOT NULL, signature TEXT NOT NULL, content BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS downloads (
    token_hash TEXT PRIMARY KEY, certificate_id TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    query_id TEXT PRIMARY KEY, institution_id TEXT NOT NULL, operator_id TEXT NOT NULL, unit_id TEXT NOT NULL,
    authorisation_reference TEXT NOT NULL, purpose TEXT NOT NULL, at TEXT NOT NULL
);
-- 痕迹管理 (seed 001 §6.2): every 登记资料查询, answered or refused (sandbox/queries.py)
CREATE TABLE IF NOT EXISTS query_trace (
    trace_id TEXT PRIMARY KEY, at TEXT NOT NULL, institution_id TEXT NOT NULL, operator_id TEXT NOT NULL,
    outcome TEXT NOT NULL, query_id TEXT, key_kind TEXT NOT NULL, key_value TEXT NOT NULL, unit_id TEXT,
    purpose TEXT NOT NULL, authorisation_reference TEXT NOT NULL, authoriser TEXT NOT NULL,
    authorisation_purpose TEXT NOT NULL, signed_at TEXT NOT NULL, valid_from TEXT, valid_until TEXT,
    shown TEXT, reasons TEXT
);
CREATE INDEX IF NOT EXISTS query_trace_by_institution ON query_trace (institution_id, at);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER NOT NULL, institution_id TEXT NOT NULL, url TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL, delivered_at TEXT, last_error TEXT, PRIMARY KEY (seq, url)
);
CREATE TABLE IF NOT EXISTS admin_tokens (
    token_hash TEXT PRIMARY KEY, label TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT
);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, pem BLOB NOT NULL);
-- gm: each bank's SM2 encryption public key (JWK), registered at enrolment; the centre seals the personal
-- fields of its answers and webhooks to it when its suite asks for the envelope (sandbox.credentials)
CREATE TABLE IF NOT EXISTS encryption_keys (
    institution_id TEXT PRIMARY KEY, jwk TEXT NOT NULL, registered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bank_certificates (
    serial TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE REFERENCES keys(key_id),
    institution_id TEXT NOT NULL, pem TEXT NOT NULL, not_before TEXT NOT NULL, not_after TEXT NOT NULL,
    revoked_at TEXT, reason TEXT
);
CREATE TABLE IF NOT EXISTS revoked_certificates (serial TEXT PRIMARY KEY, revoked_at TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS pending (application_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deadline_warnings (application_id TEXT NOT NULL, deadline TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS scripts (
    client_reference TEXT NOT NULL, stage TEXT NOT NULL, script TEXT NOT NULL, PRIMARY KEY (client_reference, stage)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT, outcome TEXT NOT NULL, request_id TEXT
);
"""


def now_utc() -> datetime:
    return datetime.now(UTC)


#: the register's day is China's (UTC+8): a document valid "until" a day is valid through 24:00 there
CHINA = timezone(timedelta(hours=8))


def china_today() -> date:
    """Today's date in China (the day a document's validity or effectiveness is judged on)."""
    return datetime.now(CHINA).date()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """SQLite state of one sandbox centre.

    Args:
        path: a database file, or ``None`` for an in-memory centre.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _migrate(self) -> None:
        """Bring a centre created by an earlier version up to :data:`SCHEMA_VERSION` (new tables come from
        the schema script; new columns are added here)."""
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(operators)")}
        if "deactivated_at" not in columns:
            self._db.execute("ALTER TABLE operators ADD COLUMN deactivated_at TEXT")
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(admin_tokens)")}
        if "expires_at" not in columns:  # 3: admin tokens expire; one made before is treated as made to expire
            self._db.execute("ALTER TABLE admin_tokens ADD COLUMN expires_at TEXT")
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; nested use joins the outer transaction."""
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def next_number(self, name: str, start: int = 1) -> int:
        """The next value of a named counter (certificate numbers, receipts), atomically."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO counters VALUES (?, ?)", (name, start - 1))
            db.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (name,))
            row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            return int(row[0])

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    def all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # --- events -------------------------------------------------------------------------

    def append_event(self, institution_id: str, event: dict[str, Any]) -> int:
        """Store an event; its ``sequence`` is the row's position in the feed."""
        with self.transaction() as db:
            cur = db.execute("INSERT INTO events (institution_id, event) VALUES (?, '{}')", (institution_id,))
            seq = int(cur.lastrowid or 0)
            event = {**event, "sequence": seq}
            db.execute("UPDATE events SET event = ? WHERE seq = ?", (json.dumps(event, ensure_ascii=False), seq))
            return seq

    def events_after(self, institution_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        rows = self.all(
            "SELECT event FROM events WHERE institution_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            institution_id,
            after,
            limit,
        )
        return [json.loads(r["event"]) for r in rows]

    def audit(self, actor: str, action: str, target: str | None, outcome: str, request_id: str | None = None) -> None:
        self.execute(
            "INSERT INTO audit (at, actor, action, target, outcome, request_id) VALUES (?, ?, ?, ?, ?, ?)",
            now_utc().isoformat(),
            actor,
            action,
            target,
            outcome,
            request_id,
        )
