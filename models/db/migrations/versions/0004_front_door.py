"""front door: no stored signatures, no stored webhook URL, and a mark for redacted events

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SIGNATURE_HEADER = "x-voucherify-signature"


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        # When the event's personal data was removed (purge, forget-customer); NULL: never.
        batch_op.add_column(sa.Column("redacted_at", sa.DateTime(timezone=True), nullable=True))
    _drop_stored_signatures()
    # The operations webhook's URL is a credential (a Slack incoming webhook): rows name the
    # setting it is read from at send time instead of holding a copy. One Voucherify object
    # notified to two URLs (the setting changed in between) keeps two rows: the later ones
    # are told apart by their seq, so the unique (source_id, channel, recipient) still holds.
    op.execute(
        "UPDATE notifications SET recipient = CASE WHEN seq = (SELECT min(other.seq) "
        "FROM notifications AS other WHERE other.source_id = notifications.source_id "
        "AND other.channel = 'webhook') THEN 'NOTIFY_WEBHOOK_URL' "
        "ELSE 'NOTIFY_WEBHOOK_URL #' || CAST(seq AS TEXT) END WHERE channel = 'webhook'"
    )


def _drop_stored_signatures() -> None:
    """A stored signature with its body is a delivery anyone who reads a backup can replay."""
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute(
            f"UPDATE events SET headers = (headers::jsonb - '{SIGNATURE_HEADER}')::json "
            f"WHERE headers::jsonb ? '{SIGNATURE_HEADER}'"
        )
        return
    rows = conn.execute(
        sa.text("SELECT seq, headers FROM events WHERE headers LIKE :pattern"),
        {"pattern": f"%{SIGNATURE_HEADER}%"},
    ).all()
    for seq, headers in rows:
        kept = {k: v for k, v in json.loads(headers).items() if k != SIGNATURE_HEADER}
        conn.execute(
            sa.text("UPDATE events SET headers = :headers WHERE seq = :seq"),
            {"headers": json.dumps(kept), "seq": seq},
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("redacted_at")
