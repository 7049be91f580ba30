"""2 → 3: the work loop's questions asked every second stay cheap with 100,000 applications tracked.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _partial(name: str, table: str, column: str, where: str) -> None:
    op.create_index(name, table, [column], sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    _partial("applications_needing_refresh", "applications", "reference", "needs_refresh = 1")
    _partial("applications_unpaid", "applications", "reference", "fee_status = 'unpaid'")
