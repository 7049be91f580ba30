"""4 → 5: every export's record accounting (records read = queued + answering a 补正 + duplicates +
quarantined), stored with the file's retirement, the encoding it was read in, and why it was refused.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("files", sa.Column("encoding", sa.Text()))
    op.add_column("files", sa.Column("records", sa.Integer()))
    for name in ("rows_queued", "rows_supplement", "rows_duplicate", "rows_quarantined"):
        op.add_column("files", sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    op.add_column("files", sa.Column("reason", sa.Text()))
