"""5 → 6: what `regbridge search` finds an application by without decrypting every payload: its
不动产单元号 (plain) and its parties' ID numbers as keyed hashes (HMAC-SHA256 with a key derived from
the agent secret: an ID number is never stored); and a loan's applications by loan number.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_keys",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", "reference"),
    )
    op.create_index("applications_by_loan", "applications", ["loan_no"])
