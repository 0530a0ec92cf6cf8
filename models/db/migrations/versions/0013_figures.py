"""figures: numbers a worker computes now and then over the whole books (how many cards
disagree with Voucherify), so that a metrics scrape reads one row instead of the books

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "figures",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_figures"),
    )


def downgrade() -> None:
    op.drop_table("figures")
