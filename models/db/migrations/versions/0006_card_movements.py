"""card movements: every point and credit a card moves, once; the ledger's keys for a movement
told by several events

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:00:00

What is already booked is moved to the new keys and accounts, so that `voucherhook rebuild`
afterwards finds the books as it computes them:

- a reward paid by a redemption (`reward_redemption.source_id`) is booked as that redemption's
  points (`redemption:{r}:points`, debit `loyalty:payments`); where its `redemption.succeeded`
  booked them already, the second booking (the reward's) is removed: it counted the points
  twice. A reward without its redemption keeps its key, and is debited to `loyalty:payments`.
- a rollback's points come back under `rollback:{rr}:points`, apart from its money.
- `loyalty_movements` becomes `card_movements`, refilled from the stored events with the card
  rules of this version (`models.loyalty`), and each loyalty card's state is folded again from
  them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

POINTS = "POINTS"
PAYMENTS = "loyalty:payments"
_TIME = sa.DateTime(timezone=True)
CARD_EVENTS = ("redemption.succeeded", "customer.reward_redemptions.completed")


def upgrade() -> None:
    op.create_table(
        "card_movements",
        sa.Column("card_id", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("change", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("envelope_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("card_id", "key", name=op.f("pk_card_movements")),
    )
    op.create_index(
        op.f("ix_card_movements_card_id_at"), "card_movements", ["card_id", "at"], unique=False
    )
    conn = op.get_bind()
    _rewards_as_redemptions(conn)
    _rollback_points_apart(conn)
    _refill_cards(conn)
    op.drop_table("loyalty_movements")


def downgrade() -> None:
    op.create_table(
        "loyalty_movements",
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("card_id", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("points_taken", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_loyalty_movements")),
    )
    op.drop_index(op.f("ix_card_movements_card_id_at"), table_name="card_movements")
    op.drop_table("card_movements")


def _digest(postings: list[tuple[str, str, int]]) -> str:
    """The ledger's digest of a transaction: sha256 of `json.dumps` of its sorted postings."""
    return hashlib.sha256(json.dumps(sorted(postings)).encode()).hexdigest()


def _postings(conn: sa.Connection, key: str) -> list[tuple[str, str, int]]:
    rows = conn.execute(
        sa.text(
            "SELECT account, asset, amount FROM ledger_postings WHERE transaction_key = :key "
            "ORDER BY seq"
        ),
        {"key": key},
    )
    return [(account, asset, int(amount)) for account, asset, amount in rows]


def _body(conn: sa.Connection, event_id: str) -> dict[str, Any]:
    raw = conn.scalar(sa.text("SELECT body FROM events WHERE id = :id"), {"id": event_id})
    try:
        body = json.loads(raw) if raw is not None else {}
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    data = body.get("data")
    return data if isinstance(data, dict) and isinstance(body.get("event"), dict) else body


def _rewards_as_redemptions(conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.text("SELECT key, event_id FROM ledger_transactions WHERE key LIKE 'reward_redemption%'")
    ).all()
    for key, event_id in rows:
        postings = [
            (PAYMENTS if account.startswith("loyalty:rewards:") else account, asset, amount)
            for account, asset, amount in _postings(conn, key)
        ]
        reward = _body(conn, event_id).get("reward_redemption")
        source = reward.get("source_id") if isinstance(reward, dict) else None
        source_type = (reward.get("source_type") if isinstance(reward, dict) else None) or ""
        new_key = key
        if isinstance(source, str) and source and source_type in ("", "redemption"):
            new_key = f"redemption:{source}:points"
        booked = conn.scalar(
            sa.text("SELECT count(*) FROM ledger_transactions WHERE key = :key"), {"key": new_key}
        )
        if new_key != key and booked:
            # Its redemption.succeeded booked these points already: the reward counted them twice.
            conn.execute(
                sa.text("DELETE FROM ledger_postings WHERE transaction_key = :key"), {"key": key}
            )
            conn.execute(sa.text("DELETE FROM ledger_transactions WHERE key = :key"), {"key": key})
            continue
        card = next((a for a, _s, n in postings if a.startswith("loyalty:card:")), "")
        points = next((n for a, _s, n in postings if a == PAYMENTS), 0)
        memo = None
        if new_key != key:
            memo = f"{source} paid {points} points from card {card.removeprefix('loyalty:card:')}"
        conn.execute(
            sa.text(
                "UPDATE ledger_postings SET account = :payments, transaction_key = :new "
                "WHERE transaction_key = :key AND account LIKE 'loyalty:rewards:%'"
            ),
            {"payments": PAYMENTS, "new": new_key, "key": key},
        )
        conn.execute(
            sa.text(
                "UPDATE ledger_postings SET transaction_key = :new WHERE transaction_key = :key"
            ),
            {"new": new_key, "key": key},
        )
        conn.execute(
            sa.text("UPDATE ledger_transactions SET key = :new, digest = :digest WHERE key = :key"),
            {"new": new_key, "digest": _digest(postings), "key": key},
        )
        if memo is not None:
            conn.execute(
                sa.text("UPDATE ledger_transactions SET memo = :memo WHERE key = :key"),
                {"memo": memo, "key": new_key},
            )


def _rollback_points_apart(conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.text(
            "SELECT t.key, t.event_id, t.memo, t.booked_at FROM ledger_transactions AS t "
            "WHERE t.key LIKE 'rollback%' AND t.key NOT LIKE :suffix AND EXISTS ("
            "SELECT 1 FROM ledger_postings AS p WHERE p.transaction_key = t.key "
            "AND p.asset = :points)"
        ),
        {"points": POINTS, "suffix": "%" + ":points"},
    ).all()
    for key, event_id, memo, booked_at in rows:
        postings = _postings(conn, key)
        points = [p for p in postings if p[1] == POINTS]
        money = [p for p in postings if p[1] != POINTS]
        rollback = key.removeprefix("rollback:")
        original = (memo or "").partition(" reverses ")[2].partition(":")[0]
        points_key = f"{key}:points"
        conn.execute(
            sa.text(
                "INSERT INTO ledger_transactions (key, event_id, digest, memo, booked_at) "
                "VALUES (:key, :event_id, :digest, :memo, :booked_at)"
            ),
            {
                "key": points_key,
                "event_id": event_id,
                "digest": _digest(points),
                "memo": f"{rollback} reverses {original}: redemption:{original}:points",
                "booked_at": booked_at,
            },
        )
        conn.execute(
            sa.text(
                "UPDATE ledger_postings SET transaction_key = :new "
                "WHERE transaction_key = :key AND asset = :points"
            ),
            {"new": points_key, "key": key, "points": POINTS},
        )
        if not money:
            conn.execute(sa.text("DELETE FROM ledger_transactions WHERE key = :key"), {"key": key})
            continue
        keys = [k.strip() for k in (memo or "").partition(": ")[2].split(",")]
        rest = ", ".join(k for k in keys if k and not k.endswith(":points"))
        conn.execute(
            sa.text(
                "UPDATE ledger_transactions SET digest = :digest, memo = :memo WHERE key = :key"
            ),
            {
                "digest": _digest(money),
                "memo": f"{rollback} reverses {original}: {rest}",
                "key": key,
            },
        )


def _refill_cards(conn: sa.Connection) -> None:
    """The movements of the events the loyalty handler applied, by the rules of this version,
    and each loyalty card folded again from them."""
    from models.cards import better
    from models.loyalty import fold_cards, movement_of, snapshot_flags
    from models.voucherify import PayloadError, load_json, parse_payload

    rows = conn.execute(
        sa.text(
            "SELECT e.id, e.type, e.body FROM events AS e JOIN handler_runs AS r "
            "ON r.event_id = e.id AND r.handler = 'loyalty' AND r.status = 'done' "
            "WHERE e.type IN :types ORDER BY e.seq"
        ).bindparams(sa.bindparam("types", expanding=True)),
        {"types": list(CARD_EVENTS)},
    )
    reports = []
    for event_id, event_type, raw in rows:
        try:
            body = load_json(raw)
            payload = parse_payload(event_type, body)
            movement = movement_of(event_type, payload, body, event_id)
        except (PayloadError, ValueError):
            continue  # the handler could not have applied it either
        if movement is not None:
            reports.append((movement, snapshot_flags(payload, movement)))
    kept: dict[tuple[str, str], Any] = {}
    for movement, _flags in reports:
        if better(kept.get((movement.card_id, movement.key)), movement):
            kept[movement.card_id, movement.key] = movement
    table = sa.table(
        "card_movements",
        *(
            sa.column(name)
            for name in (
                "card_id",
                "key",
                "kind",
                "type",
                "change",
                "balance_after",
                "rank",
                "customer_id",
                "event_id",
            )
        ),
        # Typed, so that SQLite keeps them as the tables' type writes them (what a rebuild
        # compares against), not as the driver would.
        sa.column("at", _TIME),
        sa.column("envelope_at", _TIME),
    )
    if kept:
        conn.execute(
            table.insert(),
            [
                {
                    "card_id": m.card_id,
                    "key": m.key,
                    "kind": m.kind,
                    "type": m.type,
                    "change": m.change,
                    "balance_after": m.after,
                    "at": m.at,
                    "envelope_at": m.envelope_at,
                    "rank": m.rank,
                    "customer_id": m.customer_id,
                    "event_id": m.event_id,
                }
                for m in kept.values()
            ],
        )
    now = datetime.now(UTC)
    for card_id, state in fold_cards(reports).items():
        conn.execute(
            sa.text(
                "UPDATE loyalty_cards SET customer_id = :customer, balance = :balance, "
                "as_of = :as_of, balance_source = :source, points_spent = :spent, "
                "events = :events, flags = :flags, updated_at = :now WHERE card_id = :card"
            ).bindparams(sa.bindparam("as_of", type_=_TIME), sa.bindparam("now", type_=_TIME)),
            {
                "customer": state.customer_id,
                "balance": state.balance,
                "as_of": state.as_of,
                "source": state.balance_source,
                "spent": state.points_spent,
                "events": state.events,
                "flags": json.dumps(list(state.flags)),
                "now": now,
                "card": card_id,
            },
        )
