"""The embedded SQLite store's schema, as a list of migrations.

Each migration takes the schema from version i to i+1 and runs in one transaction; the version is
SQLite's ``user_version``. Append, never edit: a deployed agent has run the earlier ones.
The SQLAlchemy store (:mod:`agent.state.sql`, PostgreSQL or SQLite) has the same schema as Alembic
revisions ``0001``…``000N`` in ``agent/state/revisions/versions``; a new schema step is added to both
(tests/agent/state/test_sql.py checks that the two produce the same tables, columns and indexes).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

#: Each migration takes the schema from version i to i+1. Append, never edit.
MIGRATIONS: list[str] = [
    # 0 → 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE files (
        sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, inbox TEXT NOT NULL, profile TEXT NOT NULL,
        received_at TEXT NOT NULL, status TEXT NOT NULL, rows_ok INTEGER NOT NULL DEFAULT 0,
        rows_bad INTEGER NOT NULL DEFAULT 0, stored_copy TEXT
    );
    CREATE TABLE applications (
        reference TEXT PRIMARY KEY, loan_no TEXT NOT NULL, type TEXT NOT NULL, inbox TEXT NOT NULL,
        profile TEXT NOT NULL, source TEXT NOT NULL, payload BLOB NOT NULL, payload_sha256 TEXT NOT NULL,
        idem_create TEXT NOT NULL, idem_submit TEXT NOT NULL, application_id TEXT,
        stage TEXT NOT NULL, centre_status TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0, last_error TEXT, fee_total TEXT, fee_status TEXT,
        idem_pay TEXT, paid_at TEXT, correction TEXT, decision TEXT, deadline TEXT,
        deadline_warned INTEGER NOT NULL DEFAULT 0,
        supplement TEXT, idem_supplement TEXT, needs_refresh INTEGER NOT NULL DEFAULT 0,
        paper_status TEXT NOT NULL DEFAULT 'owed', paper_batch TEXT,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL
    );
    CREATE INDEX applications_by_stage ON applications (stage);
    CREATE INDEX applications_by_centre_id ON applications (application_id);
    CREATE TABLE materials (
        reference TEXT NOT NULL REFERENCES applications(reference), material_id TEXT NOT NULL,
        code TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, blob TEXT NOT NULL,
        uploaded INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (reference, material_id)
    );
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, reference TEXT NOT NULL, stage TEXT NOT NULL,
        centre_status TEXT, at TEXT NOT NULL, note TEXT
    );
    CREATE INDEX transitions_by_reference ON transitions (reference);
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, file_sha256 TEXT, path TEXT,
        row INTEGER, loan_no TEXT, reference TEXT, errors BLOB NOT NULL, report TEXT,
        status TEXT NOT NULL DEFAULT 'open', created_at TEXT NOT NULL, resolved_at TEXT
    );
    CREATE TABLE events_seen (event_id TEXT PRIMARY KEY, sequence INTEGER, at TEXT NOT NULL);
    CREATE TABLE certificates (
        certificate_id TEXT PRIMARY KEY, reference TEXT NOT NULL, certificate_number TEXT,
        licence_id TEXT, sha256 TEXT, stage TEXT NOT NULL, store_key TEXT, location TEXT, error TEXT,
        superseded_by TEXT, superseded_at TEXT, supersede_pending INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL
    );
    CREATE TABLE receipts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, reference TEXT NOT NULL, kind TEXT NOT NULL,
        inbox TEXT NOT NULL, payload TEXT NOT NULL, batch INTEGER, created_at TEXT NOT NULL,
        UNIQUE (reference, kind)
    );
    CREATE TABLE receipt_batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT, inbox TEXT NOT NULL, path TEXT NOT NULL,
        written INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL
    );
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, message TEXT NOT NULL,
        raised_at TEXT NOT NULL, cleared_at TEXT
    );
    CREATE TABLE transmittals (
        id TEXT PRIMARY KEY, created_at TEXT NOT NULL, csv_path TEXT, pdf_path TEXT,
        delivered_at TEXT
    );
    """,
    # 1 → 2: indexes for the pipeline's frequent questions once many applications are tracked
    """
    CREATE INDEX applications_due ON applications (stage, next_attempt_at);
    CREATE INDEX certificates_by_stage ON certificates (stage);
    CREATE INDEX receipts_by_batch ON receipts (batch);
    CREATE INDEX quarantine_by_status ON quarantine (status);
    """,
    # 2 → 3: the work loop's questions asked every second stay cheap with 100,000 applications tracked
    """
    CREATE INDEX applications_needing_refresh ON applications (reference) WHERE needs_refresh = 1;
    CREATE INDEX applications_unpaid ON applications (reference) WHERE fee_status = 'unpaid';
    """,
    # 3 → 4: with years of stored certificates, the deliver job's question every second (is one being
    # superseded?) and the per-application lookups of its certificates must not scan them all; nor may the
    # work loop's question every second (a 补正 waiting for materials?) scan every tracked application
    """
    CREATE INDEX certificates_superseding ON certificates (certificate_id) WHERE supersede_pending = 1;
    CREATE INDEX certificates_by_reference ON certificates (reference);
    CREATE INDEX applications_in_correction ON applications (reference) WHERE centre_status = 'correction_required';
    """,
    # 4 → 5: every export's record accounting (records read = queued + answering a 补正 + duplicates +
    # quarantined), stored with the file's retirement, the encoding it was read in, and why it was refused
    """
    ALTER TABLE files ADD COLUMN encoding TEXT;
    ALTER TABLE files ADD COLUMN records INTEGER;
    ALTER TABLE files ADD COLUMN rows_queued INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN rows_supplement INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN rows_duplicate INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN rows_quarantined INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN reason TEXT;
    """,
    # 5 → 6: what `regbridge search` finds an application by without decrypting every payload: its
    # 不动产单元号 (plain) and its parties' ID numbers as keyed hashes (HMAC-SHA256, a key derived from the
    # agent secret: an ID number is never stored here, and the digest is useless without the secret)
    """
    CREATE TABLE search_keys (
        kind TEXT NOT NULL, value TEXT NOT NULL, reference TEXT NOT NULL, PRIMARY KEY (kind, value, reference)
    );
    CREATE INDEX applications_by_loan ON applications (loan_no);
    """,
    # 6 → 7: several agent instances on one state (docs/state.md): who is running (a heartbeat each), named
    # leases (the event-feed leader), short claims on applications, and which instance ingested each export
    """
    CREATE TABLE IF NOT EXISTS instances (
        id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at TEXT NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);
    ALTER TABLE applications ADD COLUMN claimed_by TEXT;
    ALTER TABLE applications ADD COLUMN claimed_until REAL NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN claimed_by TEXT;
    """,
    # 7 → 8: several instances deliver: a short claim on each certificate a deliver round works on, so two
    # instances never download, verify and store the same certificate at once
    """
    ALTER TABLE certificates ADD COLUMN claimed_by TEXT;
    ALTER TABLE certificates ADD COLUMN claimed_until REAL NOT NULL DEFAULT 0;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
