"""`voucherhook loyalty`, `giftcard` and `cards --drift` on books the workers filled: the card
Voucherify reported against the ledger, the drift, and the gap a missing movement leaves,
closed when it arrives."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from tests.support.processes import base_env
from tests.test_operations import cli, cli_json, process_live, store_all
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, Json

LOYALTY = "voucher.loyalty_card.transaction.created"
GIFT = "voucher.gift.transaction.created"
CARD, GIFT_CARD = "v_cli_card", "v_cli_gift"


def history() -> list[tuple[str, Json]]:
    """A loyalty card: +100, -10 expired, then 30 paid in a redemption (as the redemption and
    as its transaction); a gift card: 5000 added, 2000 removed."""
    paid = recorded.redemption(
        "r_cli_paid", order_id="ord_cli", kind="loyalty", points=30, voucher_id=CARD
    )
    paid["voucher"]["loyalty_card"].update(points=100, balance=60)
    paid["voucher"]["redemption"]["redeemed_points"] = 30
    paid["created_at"] = "2024-08-01T10:00:00.000Z"
    return [
        (
            LOYALTY,
            recorded.card_transaction(
                "vtx_cli_1", CARD, "POINTS_ACCRUAL", 100, 100, created_at="2024-07-01T10:00:00.000Z"
            ),
        ),
        (REDEMPTION, paid),
        (
            LOYALTY,
            recorded.card_transaction(
                "vtx_cli_3",
                CARD,
                "POINTS_REDEMPTION",
                -30,
                60,
                created_at="2024-08-01T10:00:00.000Z",
                redemption="r_cli_paid",
            ),
        ),
        (
            GIFT,
            recorded.card_transaction(
                "vtx_cli_g1",
                GIFT_CARD,
                "CREDITS_ADDITION",
                5000,
                5000,
                created_at="2024-07-02T10:00:00.000Z",
            ),
        ),
        (
            GIFT,
            recorded.card_transaction(
                "vtx_cli_g2",
                GIFT_CARD,
                "CREDITS_REMOVAL",
                -2000,
                3000,
                created_at="2024-07-03T10:00:00.000Z",
            ),
        ),
    ]


EXPIRY = (
    LOYALTY,
    recorded.card_transaction(
        "vtx_cli_2", CARD, "POINTS_EXPIRATION", -10, 90, created_at="2024-07-15T10:00:00.000Z"
    ),
)


def test_a_missing_movement_is_a_gap_and_drift_until_it_arrives(
    postgres_url: str, db: Engine
) -> None:
    env = base_env(postgres_url, None)
    process_live(db, store_all(db, history()))

    card: dict[str, Any] = cli_json(env, "loyalty", CARD, "--json")
    assert (card["balance"], card["ledger_balance"], card["drift"]) == (60, 70, -10)
    assert (card["points_spent"], card["events"]) == (30, 2)
    assert card["gaps"] == [
        {
            "after": "transaction:vtx_cli_1",
            "before": "redemption:r_cli_paid:points",
            "expected": 100,
            "found": 90,
            "missing": -10,
        }
    ]
    gift: dict[str, Any] = cli_json(env, "giftcard", GIFT_CARD, "--json")
    assert (gift["balance"], gift["ledger_balance"], gift["drift"], gift["gaps"]) == (
        3000,
        3000,
        0,
        [],
    )
    drifting = cli(env, "cards", "--drift", "--json")
    assert drifting.returncode == 1
    assert [c["card_id"] for c in json.loads(drifting.stdout)] == [CARD]
    told = cli(env, "loyalty", CARD)
    assert (
        "gap: between transaction:vtx_cli_1 (balance 100 points) and "
        "redemption:r_cli_paid:points (balance before 90 points): -10 points not seen"
        in told.stdout
    )
    assert "balance         60 points" in told.stdout

    process_live(db, store_all(db, [EXPIRY]))

    card = cli_json(env, "loyalty", CARD, "--json")
    assert (card["balance"], card["ledger_balance"], card["drift"], card["gaps"]) == (60, 60, 0, [])
    agreed = cli(env, "cards", "--drift")
    assert agreed.returncode == 0, agreed.stderr
    assert agreed.stdout.strip() == "every card's books agree with Voucherify"


def test_an_unknown_card_is_named_with_what_to_do(postgres_url: str, db: Engine) -> None:
    env = base_env(postgres_url, None)
    for command in ("loyalty", "giftcard"):
        result = cli(env, command, "v_nobody")
        assert result.returncode != 0
        assert "v_nobody" in result.stderr and "voucherhook events list" in result.stderr
