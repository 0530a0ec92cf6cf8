"""handler runs, ledger, loyalty, notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:20:05.300488
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handler_runs",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("handler", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "handler", name=op.f("pk_handler_runs")),
    )
    with op.batch_alter_table("handler_runs", schema=None) as batch_op:
        batch_op.create_index("ix_handler_runs_status", ["status"], unique=False)

    op.create_table(
        "ledger_conflicts",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("booked_digest", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("postings", sa.JSON(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_conflicts")),
    )
    with op.batch_alter_table("ledger_conflicts", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_conflicts_key_digest", ["key", "digest"], unique=True)

    op.create_table(
        "ledger_holds",
        sa.Column("original_id", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("original_id", "event_id", name=op.f("pk_ledger_holds")),
    )
    op.create_table(
        "ledger_postings",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("transaction_key", sa.String(length=255), nullable=False),
        sa.Column("account", sa.String(length=255), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_postings")),
    )
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_postings_account", ["account"], unique=False)
        batch_op.create_index(
            "ix_ledger_postings_transaction_key", ["transaction_key"], unique=False
        )

    op.create_table(
        "ledger_redemptions",
        sa.Column("redemption_id", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("parent_id", sa.String(length=255), nullable=True),
        sa.Column("order_id", sa.String(length=255), nullable=True),
        sa.Column("applied_amount", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("redemption_id", name=op.f("pk_ledger_redemptions")),
    )
    with op.batch_alter_table("ledger_redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_redemptions_parent_id", ["parent_id"], unique=False)

    op.create_table(
        "ledger_transactions",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("memo", sa.Text(), server_default="", nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_transactions_key")),
    )
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_transactions_event_id", ["event_id"], unique=False)

    op.create_table(
        "loyalty_cards",
        sa.Column("card_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("balance_source", sa.String(length=255), server_default="", nullable=False),
        sa.Column("points_spent", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("card_id", name=op.f("pk_loyalty_cards")),
    )
    op.create_table(
        "loyalty_movements",
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("card_id", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("points_taken", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_loyalty_movements")),
    )
    op.create_table(
        "notifications",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), server_default="", nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_event_id", ["event_id"], unique=False)
        batch_op.create_index(
            "ix_notifications_source_id_channel_recipient",
            ["source_id", "channel", "recipient"],
            unique=True,
        )
        batch_op.create_index("ix_notifications_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_status")
        batch_op.drop_index("ix_notifications_source_id_channel_recipient")
        batch_op.drop_index("ix_notifications_event_id")

    op.drop_table("notifications")
    op.drop_table("loyalty_movements")
    op.drop_table("loyalty_cards")
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_transactions_event_id")

    op.drop_table("ledger_transactions")
    with op.batch_alter_table("ledger_redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_redemptions_parent_id")

    op.drop_table("ledger_redemptions")
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_postings_transaction_key")
        batch_op.drop_index("ix_ledger_postings_account")

    op.drop_table("ledger_postings")
    op.drop_table("ledger_holds")
    with op.batch_alter_table("ledger_conflicts", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_conflicts_key_digest")

    op.drop_table("ledger_conflicts")
    with op.batch_alter_table("handler_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_handler_runs_status")

    op.drop_table("handler_runs")
