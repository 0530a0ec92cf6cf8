"""Table definitions: the event log (which doubles as the transactional outbox)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants a BIGINT for a log.
Seq = BigInteger().with_variant(Integer(), "sqlite")

EVENT_STATUSES = ("pending", "processed", "failed", "ignored", "quarantined")

events = Table(
    "events",
    metadata,
    # Receipt order: rebuilds fold the log in this order.
    Column("seq", Seq, primary_key=True, autoincrement=True),
    # The event's identity (see models.identity): the key of deduplication.
    Column("id", String(255), nullable=False, unique=True),
    Column("type", String(255), nullable=True),
    Column("status", String(16), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # Exactly the bytes that arrived; the signature was verified over them.
    Column("body", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("remote_addr", String(255), nullable=True),
    # The envelope's send-out id (whs_…), when there is an envelope.
    Column("delivery_id", String(255), nullable=True),
    # Why the event is quarantined, or the last processing error.
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # Outbox: when the event was last handed to the broker (NULL: never).
    Column("dispatched_at", DateTime(timezone=True), nullable=True),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    Index("ix_events_status_seq", "status", "seq"),
    Index("ix_events_type_seq", "type", "seq"),
    Index("ix_events_received_at", "received_at"),
    # The sweep's working set stays small: only events still waiting to be processed.
    Index(
        "ix_events_outbox",
        "received_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)
