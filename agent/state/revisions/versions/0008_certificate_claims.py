"""7 → 8: several instances deliver (docs/state.md): a short claim on each certificate a deliver round works
on, so two instances never download, verify and store the same certificate at once.

Revision ID: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: epoch seconds of the database's clock: double precision
SECONDS = sa.Float(precision=53)


def upgrade() -> None:
    op.add_column("certificates", sa.Column("claimed_by", sa.Text()))
    op.add_column("certificates", sa.Column("claimed_until", SECONDS, nullable=False, server_default="0"))
