"""leases: until when a live worker holds a pending event or notification, so the sweep
dispatches again, within seconds, what a dead worker held

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("events", "notifications")


def upgrade() -> None:
    # A nullable column without a default: no table rewrite on PostgreSQL, and a plain
    # ALTER TABLE on SQLite (a batch copy of `events` would drop its counting triggers).
    op.add_column("events", sa.Column("leased_by", sa.String(255), nullable=True))
    for table in TABLES:
        op.add_column(table, sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "lease_until")
    op.drop_column("events", "leased_by")
