"""notifications: the status index also orders by seq, so a newest-first page of deliveries in
one status (`notifications list --status failed`) and the sweep's stale deliveries read one
page, not every delivery in that status

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_status_seq", ["status", "seq"], unique=False)
        batch_op.drop_index("ix_notifications_status")


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_status", ["status"], unique=False)
        batch_op.drop_index("ix_notifications_status_seq")
