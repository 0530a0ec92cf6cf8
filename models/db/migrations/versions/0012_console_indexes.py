"""events: the receipt-time index also holds the status, so the console's activity charts
count the events received per minute by status from the index alone; ledger_postings: the
account index also orders by seq, so an account's newest postings are one page of it

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-02 11:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each new index takes the place of one it extends: every query the old one served (a
    # receipt window, an account's postings) reads the new one as well, and a write still
    # maintains one index, not two.
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_received_at_status", ["received_at", "status"], unique=False
        )
        batch_op.drop_index("ix_events_received_at")
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_postings_account_seq", ["account", "seq"], unique=False)
        batch_op.drop_index("ix_ledger_postings_account")


def downgrade() -> None:
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_postings_account", ["account"], unique=False)
        batch_op.drop_index("ix_ledger_postings_account_seq")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_received_at", ["received_at"], unique=False)
        batch_op.drop_index("ix_events_received_at_status")
