"""0 → 1: the first schema (agent.state.migrations' first entry, for SQLite and PostgreSQL alike).

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TEXT, INT = sa.Text(), sa.Integer()
#: epoch seconds: double precision on PostgreSQL (a 4-byte real would round them to minutes)
SECONDS = sa.Float(precision=53)


def _serial() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table("meta", sa.Column("key", TEXT, primary_key=True), sa.Column("value", TEXT, nullable=False))
    op.create_table(
        "files",
        sa.Column("sha256", TEXT, primary_key=True),
        sa.Column("path", TEXT, nullable=False),
        sa.Column("inbox", TEXT, nullable=False),
        sa.Column("profile", TEXT, nullable=False),
        sa.Column("received_at", TEXT, nullable=False),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("rows_ok", INT, nullable=False, server_default="0"),
        sa.Column("rows_bad", INT, nullable=False, server_default="0"),
        sa.Column("stored_copy", TEXT),
    )
    op.create_table(
        "applications",
        sa.Column("reference", TEXT, primary_key=True),
        *(sa.Column(c, TEXT, nullable=False) for c in ("loan_no", "type", "inbox", "profile", "source")),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        *(sa.Column(c, TEXT, nullable=False) for c in ("payload_sha256", "idem_create", "idem_submit")),
        sa.Column("application_id", TEXT),
        sa.Column("stage", TEXT, nullable=False),
        sa.Column("centre_status", TEXT),
        sa.Column("attempts", INT, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", SECONDS, nullable=False, server_default="0"),
        *(sa.Column(c, TEXT) for c in ("last_error", "fee_total", "fee_status", "idem_pay", "paid_at")),
        sa.Column("correction", sa.LargeBinary()),
        sa.Column("decision", sa.LargeBinary()),
        sa.Column("deadline", TEXT),
        sa.Column("deadline_warned", INT, nullable=False, server_default="0"),
        sa.Column("supplement", sa.LargeBinary()),
        sa.Column("idem_supplement", TEXT),
        sa.Column("needs_refresh", INT, nullable=False, server_default="0"),
        sa.Column("paper_status", TEXT, nullable=False, server_default="owed"),
        sa.Column("paper_batch", TEXT),
        sa.Column("created_at", TEXT, nullable=False),
        sa.Column("updated_at", TEXT, nullable=False),
    )
    op.create_index("applications_by_stage", "applications", ["stage"])
    op.create_index("applications_by_centre_id", "applications", ["application_id"])
    op.create_table(
        "materials",
        sa.Column("reference", TEXT, sa.ForeignKey("applications.reference"), nullable=False),
        sa.Column("material_id", TEXT, nullable=False),
        sa.Column("code", TEXT, nullable=False),
        sa.Column("sha256", TEXT, nullable=False),
        sa.Column("size", INT, nullable=False),
        sa.Column("blob", TEXT, nullable=False),
        sa.Column("uploaded", INT, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("reference", "material_id"),
    )
    op.create_table(
        "transitions",
        _serial(),
        sa.Column("reference", TEXT, nullable=False),
        sa.Column("stage", TEXT, nullable=False),
        sa.Column("centre_status", TEXT),
        sa.Column("at", TEXT, nullable=False),
        sa.Column("note", TEXT),
        sqlite_autoincrement=True,
    )
    op.create_index("transitions_by_reference", "transitions", ["reference"])
    op.create_table(
        "quarantine",
        _serial(),
        sa.Column("kind", TEXT, nullable=False),
        sa.Column("file_sha256", TEXT),
        sa.Column("path", TEXT),
        sa.Column("row", INT),
        sa.Column("loan_no", TEXT),
        sa.Column("reference", TEXT),
        sa.Column("errors", sa.LargeBinary(), nullable=False),
        sa.Column("report", TEXT),
        sa.Column("status", TEXT, nullable=False, server_default="open"),
        sa.Column("created_at", TEXT, nullable=False),
        sa.Column("resolved_at", TEXT),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "events_seen",
        sa.Column("event_id", TEXT, primary_key=True),
        sa.Column("sequence", INT),
        sa.Column("at", TEXT, nullable=False),
    )
    op.create_table(
        "certificates",
        sa.Column("certificate_id", TEXT, primary_key=True),
        sa.Column("reference", TEXT, nullable=False),
        *(sa.Column(c, TEXT) for c in ("certificate_number", "licence_id", "sha256")),
        sa.Column("stage", TEXT, nullable=False),
        *(sa.Column(c, TEXT) for c in ("store_key", "location", "error", "superseded_by", "superseded_at")),
        sa.Column("supersede_pending", INT, nullable=False, server_default="0"),
        sa.Column("created_at", TEXT, nullable=False),
        sa.Column("updated_at", TEXT, nullable=False),
    )
    op.create_table(
        "receipts",
        _serial(),
        sa.Column("reference", TEXT, nullable=False),
        sa.Column("kind", TEXT, nullable=False),
        sa.Column("inbox", TEXT, nullable=False),
        sa.Column("payload", TEXT, nullable=False),
        sa.Column("batch", INT),
        sa.Column("created_at", TEXT, nullable=False),
        sa.UniqueConstraint("reference", "kind"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "receipt_batches",
        _serial(),
        sa.Column("inbox", TEXT, nullable=False),
        sa.Column("path", TEXT, nullable=False),
        sa.Column("written", INT, nullable=False, server_default="0"),
        sa.Column("created_at", TEXT, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "alerts",
        _serial(),
        sa.Column("kind", TEXT, nullable=False),
        sa.Column("message", TEXT, nullable=False),
        sa.Column("raised_at", TEXT, nullable=False),
        sa.Column("cleared_at", TEXT),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "transmittals",
        sa.Column("id", TEXT, primary_key=True),
        sa.Column("created_at", TEXT, nullable=False),
        *(sa.Column(c, TEXT) for c in ("csv_path", "pdf_path", "delivered_at")),
    )
