"""3 → 4: the deliver job's questions every second (a certificate being superseded? a 补正 waiting?)
and the per-application lookups of certificates must not scan years of stored ones.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    where = "supersede_pending = 1"
    op.create_index(
        "certificates_superseding", "certificates", ["certificate_id"],
        sqlite_where=sa.text(where), postgresql_where=sa.text(where),
    )  # fmt: skip
    op.create_index("certificates_by_reference", "certificates", ["reference"])
    where = "centre_status = 'correction_required'"
    op.create_index(
        "applications_in_correction", "applications", ["reference"],
        sqlite_where=sa.text(where), postgresql_where=sa.text(where),
    )  # fmt: skip
