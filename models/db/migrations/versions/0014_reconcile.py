"""reconcile: each API list's high-water mark, the runs of `voucherhook reconcile`, and the
card balances it checked

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_marks",
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("mark", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_reconcile_marks"),
    )
    op.create_table(
        "reconcile_runs",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("here", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("missing", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("differing", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("drifting", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("requests", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("silent_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_reconcile_runs"),
    )

    op.create_table(
        "card_checks",
        sa.Column("card_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("reported", sa.BigInteger(), nullable=False),
        sa.Column("ledger", sa.BigInteger(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("card_id", name="pk_card_checks"),
    )


def downgrade() -> None:
    op.drop_table("card_checks")
    op.drop_table("reconcile_runs")
    op.drop_table("reconcile_marks")
