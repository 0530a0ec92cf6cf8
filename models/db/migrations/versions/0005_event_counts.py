"""event_counts: stored events by type and status, kept by triggers, so a metrics scrape reads
a few rows instead of counting the whole log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# PostgreSQL: one statement-level trigger per change, adding what changed in a batch with one
# upsert, on a row of its own per connection (shard), so concurrent writers do not queue on one
# row. Rows are upserted in (type, status) order, the same in every transaction.
POSTGRES_FUNCTION = """
CREATE FUNCTION event_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    _shard integer := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO event_counts (type, status, shard, n)
        SELECT coalesce(type, ''), status, _shard, count(*) FROM new_rows
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (type, status, shard) DO UPDATE SET n = event_counts.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO event_counts (type, status, shard, n)
        SELECT coalesce(type, ''), status, _shard, -count(*) FROM old_rows
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (type, status, shard) DO UPDATE SET n = event_counts.n + excluded.n;
    ELSE
        INSERT INTO event_counts (type, status, shard, n)
        SELECT t, s, _shard, sum(d) FROM (
            SELECT coalesce(type, '') AS t, status AS s, -1 AS d FROM old_rows
            UNION ALL
            SELECT coalesce(type, ''), status, 1 FROM new_rows
        ) AS changes
        GROUP BY t, s HAVING sum(d) <> 0 ORDER BY t, s
        ON CONFLICT (type, status, shard) DO UPDATE SET n = event_counts.n + excluded.n;
    END IF;
    RETURN NULL;
END $$
"""

POSTGRES_TRIGGERS = (
    "CREATE TRIGGER events_counted_insert AFTER INSERT ON events "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply()",
    "CREATE TRIGGER events_counted_update AFTER UPDATE ON events "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply()",
    "CREATE TRIGGER events_counted_delete AFTER DELETE ON events "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply()",
    # TRUNCATE fires no row or statement DELETE trigger: the counts go with the rows.
    "CREATE FUNCTION event_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN DELETE FROM event_counts; RETURN NULL; END $$",
    "CREATE TRIGGER events_counted_truncate AFTER TRUNCATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION event_counts_clear()",
)

# SQLite has one writer at a time and row triggers only.
_SQLITE_ADD = (
    "INSERT INTO event_counts (type, status, shard, n) VALUES (coalesce({row}.type, ''), "
    "{row}.status, 0, {delta}) ON CONFLICT (type, status, shard) DO UPDATE SET n = n + {delta};"
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER events_counted_insert AFTER INSERT ON events BEGIN "
    + _SQLITE_ADD.format(row="NEW", delta=1)
    + " END",
    "CREATE TRIGGER events_counted_update AFTER UPDATE OF type, status ON events "
    "WHEN OLD.status IS NOT NEW.status OR OLD.type IS NOT NEW.type BEGIN "
    + _SQLITE_ADD.format(row="OLD", delta=-1)
    + " "
    + _SQLITE_ADD.format(row="NEW", delta=1)
    + " END",
    "CREATE TRIGGER events_counted_delete AFTER DELETE ON events BEGIN "
    + _SQLITE_ADD.format(row="OLD", delta=-1)
    + " END",
)


def upgrade() -> None:
    op.create_table(
        "event_counts",
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("type", "status", "shard", name="pk_event_counts"),
    )
    # Triggers first: creating one locks out writers until this migration commits, so the
    # count below sees every event committed before, and the triggers count every one after.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for statement in POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.execute(
        "INSERT INTO event_counts (type, status, shard, n) "
        "SELECT coalesce(type, ''), status, 0, count(*) FROM events GROUP BY 1, 2"
    )


def downgrade() -> None:
    for name in ("insert", "update", "delete", "truncate"):
        if op.get_bind().dialect.name == "postgresql" or name != "truncate":
            op.execute(f"DROP TRIGGER IF EXISTS events_counted_{name}" + _on_events())
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS event_counts_apply()")
        op.execute("DROP FUNCTION IF EXISTS event_counts_clear()")
    op.drop_table("event_counts")


def _on_events() -> str:
    return " ON events" if op.get_bind().dialect.name == "postgresql" else ""
