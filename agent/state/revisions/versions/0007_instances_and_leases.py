"""6 → 7: several agent instances on one state (docs/state.md): who is running (a heartbeat each), named
leases (the event-feed leader), short claims on applications, and which instance ingested each export.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: epoch seconds of the database's clock: double precision
SECONDS = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Text(), nullable=False),
        sa.Column("heartbeat_at", SECONDS, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("expires_at", SECONDS, nullable=False),
    )
    op.add_column("applications", sa.Column("claimed_by", sa.Text()))
    op.add_column("applications", sa.Column("claimed_until", SECONDS, nullable=False, server_default="0"))
    op.add_column("files", sa.Column("claimed_by", sa.Text()))
