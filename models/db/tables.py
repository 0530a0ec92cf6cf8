"""Table definitions: the event log (which doubles as the transactional outbox), the handler
runs, the books (ledger and loyalty cards) and the notifications; every time column is a
`UtcDateTime`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A time with its zone, written in UTC and read back as an aware UTC datetime, through
    SQLAlchemy's statements on every database.

    PostgreSQL keeps `timestamp with time zone`. SQLite keeps text without a zone, read back
    naive: every time is written in UTC, so a naive one read is UTC. A naive time written is
    taken as UTC too (not left for the database to place: SQLite would read it as UTC,
    PostgreSQL in the session's zone). The storage type is `DateTime(timezone=True)` either
    way, as the migrations create it.

    Only what goes through SQLAlchemy's types is converted. The bulk I/O of `models.db.bulk_io`
    on PostgreSQL skips them: `fetch` and `stream` read straight from the driver, which gives
    an aware datetime in the session's zone, not necessarily UTC (and `insert_rows`' COPY
    writes values as they are). The books' fingerprint stays right because `models.db.digest`
    converts a card's `as_of` with `astimezone(UTC)` itself.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants a BIGINT for a log.
Seq = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    # Receipt order: rebuilds fold the log in this order.
    Column("seq", Seq, primary_key=True, autoincrement=True),
    # The event's identity (see models.identity): the key of deduplication.
    Column("id", String(255), nullable=False, unique=True),
    Column("type", String(255), nullable=True),
    # One of models.statuses.EVENT_STATUSES.
    Column("status", String(16), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
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
    Column("dispatched_at", UtcDateTime(), nullable=True),
    Column("processed_at", UtcDateTime(), nullable=True),
    # Until when a live worker holds it (a message it took and has not finished); a worker
    # renews it every third of VOUCHERHOOK_LEASE_EXPIRY. Past it, pending: the worker died,
    # and the sweep dispatches it again (workers.leases). NULL: no worker holds it.
    Column("lease_until", UtcDateTime(), nullable=True),
    # The worker holding it (host:pid of its main process), while leased.
    Column("leased_by", String(255), nullable=True),
    # When its personal data was removed (purge, forget-customer); NULL: never.
    Column("redacted_at", UtcDateTime(), nullable=True),
    Index("ix_events_status_seq", "status", "seq"),
    Index("ix_events_type_seq", "type", "seq"),
    # Receipt windows (`--since`, replay), and the console's activity by status from the
    # index alone (migration 0012).
    Index("ix_events_received_at_status", "received_at", "status"),
    # The sweep's working set stays small: only events still waiting to be processed.
    Index(
        "ix_events_outbox",
        "received_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)


# Stored events by type ('' for none) and status, kept by triggers on `events` (migration
# 0005): a sum over these few rows is the count a scrape reports. `shard` spreads concurrent
# writers over rows; a count is the sum over its shards.
event_counts = Table(
    "event_counts",
    metadata,
    Column("type", String(255), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
)

# One row per (event, handler) that ran; committed with the handler's effects, so a
# redelivered task finds it and changes nothing.
handler_runs = Table(
    "handler_runs",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("handler", String(32), primary_key=True),
    # One of models.statuses.RUN_STATUSES: running | done | failed | held.
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_handler_runs_status", "status"),
)

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    # The idempotency key built from Voucherify ids (order:…:gross, redemption:…:discount, …).
    Column("key", String(255), nullable=False, unique=True),
    Column("event_id", String(255), nullable=False),
    # sha256 of the sorted postings: the same key with another digest is a conflict.
    Column("digest", String(64), nullable=False),
    Column("memo", Text, nullable=False, server_default=""),
    Column("booked_at", UtcDateTime(), nullable=False),
    Index("ix_ledger_transactions_event_id", "event_id"),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("transaction_key", String(255), nullable=False),
    Column("account", String(255), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    # An account's balance, and its newest postings a page at a time (migration 0012).
    Index("ix_ledger_postings_account_seq", "account", "seq"),
    Index("ix_ledger_postings_transaction_key", "transaction_key"),
)

ledger_conflicts = Table(
    "ledger_conflicts",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("booked_digest", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("postings", JSON, nullable=False),
    Column("detected_at", UtcDateTime(), nullable=False),
    Index("ix_ledger_conflicts_key_digest", "key", "digest", unique=True),
)

# A rollback that arrived before its original waits here until the original is booked.
ledger_holds = Table(
    "ledger_holds",
    metadata,
    Column("original_id", String(255), primary_key=True),
    Column("event_id", String(255), primary_key=True),
)

# Every redemption the ledger has seen, even one that posted nothing: a rollback waits until
# its original is here, and a stack parent is checked against the children listed here.
ledger_redemptions = Table(
    "ledger_redemptions",
    metadata,
    Column("redemption_id", String(255), primary_key=True),
    # plain | child | parent
    Column("role", String(8), nullable=False),
    Column("parent_id", String(255), nullable=True),
    Column("order_id", String(255), nullable=True),
    # What this redemption applied (order.total_applied_discount_amount).
    Column("applied_amount", BigInteger, nullable=False),
    Column("event_id", String(255), nullable=False),
    Index("ix_ledger_redemptions_parent_id", "parent_id"),
)

loyalty_cards = Table(
    "loyalty_cards",
    metadata,
    Column("card_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("as_of", UtcDateTime(), nullable=False),
    Column("balance_source", String(255), nullable=False, server_default=""),
    Column("points_spent", BigInteger, nullable=False),
    Column("events", Integer, nullable=False),
    Column("flags", JSON, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Every movement of a card's points or credit, once per card and movement key (the ledger key
# that moves the card), as the best report of it tells it (`models.cards`).
card_movements = Table(
    "card_movements",
    metadata,
    Column("card_id", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("kind", String(8), nullable=False),  # loyalty | gift
    Column("type", String(32), nullable=False),
    Column("change", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("envelope_at", UtcDateTime(), nullable=True),
    Column("rank", Integer, nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("event_id", String(255), nullable=False),
    Index("ix_card_movements_card_id_at", "card_id", "at"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False),
    # The Voucherify object notified about (r_…, rewr_…): the same object reported by two
    # deliveries under different identities is notified once.
    Column("source_id", String(255), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(512), nullable=False),
    # pending | sending | sent | failed
    Column("status", String(16), nullable=False),
    Column("subject", Text, nullable=False, server_default=""),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    # When it should go out: when planned, then when its retry is due. A pending delivery
    # long past due lost its send message (a broker restart); the sweep queues it again.
    Column("due_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    # As events.lease_until: a live worker holds the send task; past it, pending, the sweep
    # queues it again.
    Column("lease_until", UtcDateTime(), nullable=True),
    Index(
        "ix_notifications_source_id_channel_recipient",
        "source_id",
        "channel",
        "recipient",
        unique=True,
    ),
    Index("ix_notifications_event_id", "event_id"),
    # By status in sequence order: a newest-first page in one status reads that page only.
    Index("ix_notifications_status_seq", "status", "seq"),
    # The senders take a channel's waiting deliveries, those due first first (seq breaks the
    # ties of a batch planned at one moment: a claim reads the rows it takes, no more).
    Index("ix_notifications_status_channel_due_at_seq", "status", "channel", "due_at", "seq"),
)

# Numbers a worker computes now and then over the whole books (`workers.books_check`), read
# by a metrics scrape: one row each, `computed_at` NULL until the first computation.
figures = Table(
    "figures",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
    Column("computed_at", UtcDateTime(), nullable=True),
)

# One row per notification channel: its rate limit's budget, shared by every process that
# sends (see `models.pacing`), and when a send task is already scheduled to take what waits.
notification_budget = Table(
    "notification_budget",
    metadata,
    Column("channel", String(16), primary_key=True),
    # The earliest time the channel's next message may leave; NULL: at once.
    Column("next_at", UtcDateTime(), nullable=True),
    # When a send task is scheduled to run for the channel; NULL or past: none is.
    Column("wake_at", UtcDateTime(), nullable=True),
)

# Reconciliation with Voucherify's API (`voucherhook reconcile`): where each API list was read
# up to (its high-water mark: a time for redemptions, a transaction id for a campaign's
# transactions), so that a scheduled run resumes where the last one stopped.
reconcile_marks = Table(
    "reconcile_marks",
    metadata,
    Column("source", String(255), primary_key=True),
    Column("mark", String(255), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# A card's balance as Voucherify's API reported it (`GET /v1/vouchers/{id}`) when a
# reconciliation last checked it, against the ledger's at that moment.
card_checks = Table(
    "card_checks",
    metadata,
    Column("card_id", String(255), primary_key=True),
    Column("kind", String(8), nullable=False),  # loyalty | gift
    Column("reported", BigInteger, nullable=False),
    Column("ledger", BigInteger, nullable=False),
    Column("checked_at", UtcDateTime(), nullable=False),
)

# One row per reconciliation run: what it found, for the console and the metrics.
reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("since", UtcDateTime(), nullable=False),
    Column("until", UtcDateTime(), nullable=False),
    Column("here", Integer, nullable=False, server_default=text("0")),
    Column("missing", Integer, nullable=False, server_default=text("0")),
    Column("differing", Integer, nullable=False, server_default=text("0")),
    Column("drifting", Integer, nullable=False, server_default=text("0")),
    Column("requests", Integer, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=True),
    # When the last delivery before a silence arrived: set when the run found objects missing
    # and no delivery for longer than VOUCHERHOOK_SILENCE_AFTER (the webhook is probably off).
    Column("silent_since", UtcDateTime(), nullable=True),
)
