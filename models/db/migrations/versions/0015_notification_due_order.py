"""notifications: the senders' index also orders by seq, so a claim of the first deliveries due
(due_at, then seq) reads those rows only; without seq, every delivery planned at the same
moment (a batch's) was read and sorted at each claim, a cost that grew with the deliveries
waiting

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 06:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_status_channel_due_at_seq",
            ["status", "channel", "due_at", "seq"],
            unique=False,
        )
        batch_op.drop_index("ix_notifications_status_channel_due_at")


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_status_channel_due_at", ["status", "channel", "due_at"], unique=False
        )
        batch_op.drop_index("ix_notifications_status_channel_due_at_seq")
