"""notification_budget: each channel's rate limit budget, shared by every sending process, and
an index to take a channel's waiting deliveries in due order

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_budget",
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("channel", name="pk_notification_budget"),
    )
    op.create_index(
        "ix_notifications_status_channel_due_at",
        "notifications",
        ["status", "channel", "due_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_status_channel_due_at", table_name="notifications")
    op.drop_table("notification_budget")
