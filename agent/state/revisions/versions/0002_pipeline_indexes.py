"""1 → 2: indexes for the pipeline's frequent questions once many applications are tracked.

Revision ID: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("applications_due", "applications", ["stage", "next_attempt_at"])
    op.create_index("certificates_by_stage", "certificates", ["stage"])
    op.create_index("receipts_by_batch", "receipts", ["batch"])
    op.create_index("quarantine_by_status", "quarantine", ["status"])
