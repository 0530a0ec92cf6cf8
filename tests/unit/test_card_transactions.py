"""Card transactions (bookkeeping.md, "Loyalty-card and gift-card transactions") on the published
examples, with exact figures: what each transaction type books and which movement it is, the
chain of a card and its gaps, and one movement told by several events booked, chained and
notified once."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime

import pytest

from models.cards import Gap, Movement, chain, gaps, newest, report
from models.journal import POINTS, Posting, Transaction, asset_totals
from models.ledger import (
    post_card_transaction,
    post_redemption,
    post_reward_redemption,
    post_rollback,
)
from models.loyalty import fold_cards, movement_of
from models.notifications import Message, messages
from models.voucherify import (
    CardTransactionEvent,
    Payload,
    RedemptionRollbackSucceeded,
    RedemptionSucceeded,
    RewardRedemptionCompleted,
    parse_payload,
)
from tests.support.card_histories import (
    BALANCE_ADDED,
    GIFT_LIST,
    GIFT_TRANSACTION,
    LOYALTY_LIST,
    POINTS_ADDED,
    POINTS_EXPIRED,
    REWARDED,
    TRANSACTION,
    envelope,
    listed,
    transfer_in,
)
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION, ROLLBACK, Json
from workers.books import MemoryBooks
from workers.templates import environment

USD = "USD"
CARD = "v_lWRrcwNm0vqxBaU5nsSMzRRHusCsS4Vl"
"""The loyalty card of the member-transactions list example."""
RECEIVER = "v_Wak6xlf5WdR4rIcvJxC2olOopk0boK6t"
"""The card its transfers go to."""
CAMPAIGN = "camp_LyAZf94hbZaUbSdKIeAJpjRp"
HOLDER = "cust_member"
GIFT = "v_dky7ksKfPX50Wb2Bxvcoeb1xT20b6tcp"
"""The gift card of the voucher-transactions list example."""
POINTS_PAID = "r_0c9b08fe4b80897849"
POINTS_ROLLBACK = "rr_0c9b0967244a862a33"
POINTS_ORDER = "ord_DH2gGDlDWB1hRImf1VVB4EIH"
GIFT_PAID = "r_0c94ed583fcafc31c1"
GIFT_ROLLBACK = "rr_0c94edbb8d0bef5d9e"
GIFT_ORDER = "ord_jj5EzDxDOd2xFPsAJJ18IaZK"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def member_card(card_id: str = CARD) -> Json:
    return {
        "id": card_id,
        "code": f"CODE-{card_id[-4:]}",
        "type": "LOYALTY_CARD",
        "campaign_id": CAMPAIGN,
        "holder_id": HOLDER,
        "object": "voucher",
    }


def gift_card() -> Json:
    return {
        "id": GIFT,
        "code": "GIFT-6tcp",
        "type": "GIFT_VOUCHER",
        "campaign_id": "camp_FNYR4jhqZBM9xTptxDGgeNBV",
        "holder_id": HOLDER,
        "object": "voucher",
    }


def listed_event(transaction: Json) -> tuple[str, Json]:
    """A transaction of a list example as `….transaction.created` delivers it."""
    gift = transaction["type"].startswith("CREDITS_")
    event_type = GIFT_TRANSACTION if gift else TRANSACTION
    voucher = gift_card() if gift else member_card(transaction["voucher_id"])
    data = {"transaction": copy.deepcopy(transaction), "voucher": voucher}
    body = envelope(event_type, data, f"evt_{transaction['id']}", transaction["created_at"])
    return event_type, body


def member_transactions() -> list[Json]:
    """The member-transactions list example, oldest first."""
    return listed(LOYALTY_LIST)


def the_transfer_in() -> Json:
    """The receiving half of the example's first transfer: +1 to 1001 (the receiver's balance
    the OUT row shows)."""
    out = member_transactions()[0]
    after = out["details"]["destination_voucher"]["loyalty_card"]["balance"]
    return transfer_in(out, vtx=out["related_transaction_id"], after=after)


def post(event_type: str, body: Json) -> tuple[Transaction, ...]:
    payload = parse_payload(event_type, body)
    assert isinstance(payload, CardTransactionEvent)
    return post_card_transaction(payload, USD)


def movement(event_type: str, body: Json, event_id: str = "evt") -> Movement:
    found = movement_of(event_type, parse_payload(event_type, body), body, event_id)
    assert found is not None
    return found


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def move(account: str, asset: str, amount: int, counter: str) -> tuple[Posting, ...]:
    return (Posting(account, asset, amount), Posting(counter, asset, -amount))


# What each transaction type books ------------------------------------------------------------

L, G = f"loyalty:card:{CARD}", f"giftcard:{GIFT}"
# (vtx, type, key, postings, change, after), the examples oldest first.
MEMBER = [
    ("vtx_0c9afe802593b34b80", "POINTS_TRANSFER_OUT", None,
     move(L, POINTS, -1, f"loyalty:transfers:{CARD}>{RECEIVER}"), -1, 999),
    ("vtx_0c9b073072408969d1", "POINTS_REMOVAL", None,
     move(L, POINTS, -1, "loyalty:removals"), -1, 998),
    ("vtx_0c9b074afed3b30e4b", "POINTS_ADDITION", None,
     move(L, POINTS, 100, "loyalty:additions"), 100, 1098),
    ("vtx_0c9b08fe530089785c", "POINTS_REDEMPTION", f"redemption:{POINTS_PAID}:points",
     (Posting("loyalty:payments", POINTS, 1000), Posting(L, POINTS, -1000)), -1000, 98),
    ("vtx_0c9b09673f8a862a51", "POINTS_REFUND", f"rollback:{POINTS_ROLLBACK}:points",
     (Posting("loyalty:payments", POINTS, -1000), Posting(L, POINTS, 1000)), 1000, 1098),
    ("vtx_0c9c21df658d03ce3f", "POINTS_ACCRUAL", None,
     move(L, POINTS, 200, f"loyalty:accrual:{CAMPAIGN}"), 200, 1298),
    ("vtx_0c9dd1ce1d403f4204", "POINTS_REMOVAL", None,
     move(L, POINTS, -1, "loyalty:removals"), -1, 1297),
    ("vtx_0c9dd2527696ba081b", "POINTS_ADDITION", None,
     move(L, POINTS, 100, "loyalty:additions"), 100, 1397),
    ("vtx_0c9dd3c2e392f78613", "POINTS_TRANSFER_OUT", None,
     move(L, POINTS, -1, f"loyalty:transfers:{CARD}>{RECEIVER}"), -1, 1396),
]  # fmt: skip
GIFT_CHAIN = [
    ("vtx_0c94e6b82a4bef406c", "CREDITS_ADDITION", None,
     move(G, USD, -5000, "giftcard:additions"), 5000, 130000),
    ("vtx_0c94e8100f8afc1c6c", "CREDITS_REDEMPTION", "redemption:r_0c94e80fda4afc1c59:discount",
     move(G, USD, 7000, "order:ord_qZX3pEt5rFf5W23qRMDQcVt9"), -7000, 123000),
    ("vtx_0c94e9432c4afc2134", "CREDITS_REMOVAL", None,
     move(G, USD, 2000, "giftcard:removals"), -2000, 121000),
    ("vtx_0c94ed584f4afc31da", "CREDITS_REDEMPTION", f"redemption:{GIFT_PAID}:discount",
     move(G, USD, 44, f"order:{GIFT_ORDER}"), -44, 120956),
    ("vtx_0c94edbbaccbef5db6", "CREDITS_REFUND", f"rollback:{GIFT_ROLLBACK}",
     move(G, USD, -44, f"order:{GIFT_ORDER}"), 44, 121000),
    ("vtx_0c94f018d30bef6689", "CREDITS_ADDITION", None,
     move(G, USD, -2000, "giftcard:additions"), 2000, 123000),
    ("vtx_0c9dcc920ac0e9ef82", "CREDITS_ADDITION", None,
     move(G, USD, -20, "giftcard:additions"), 20, 123020),
    ("vtx_0c9dccc4d5813e71bd", "CREDITS_REMOVAL", None,
     move(G, USD, 2000, "giftcard:removals"), -2000, 121020),
]  # fmt: skip
Expected = tuple[str, str, str | None, tuple[Posting, ...], int, int]


@pytest.mark.parametrize(
    ("name", "expected"),
    [(LOYALTY_LIST, row) for row in MEMBER] + [(GIFT_LIST, row) for row in GIFT_CHAIN],
    ids=[f"{row[1]}-{row[0]}" for row in MEMBER + GIFT_CHAIN],
)
def test_a_listed_transaction_books_its_change_against_its_counter_account(
    name: str, expected: Expected
) -> None:
    vtx, kind, key, postings, change, after = expected
    [transaction] = [t for t in listed(name) if t["id"] == vtx]
    assert transaction["type"] == kind
    event_type, body = listed_event(transaction)

    [booked] = post(event_type, body)

    assert booked.key == (key or f"transaction:{vtx}")
    assert booked.postings == postings
    assert all(total == 0 for total in asset_totals(booked.postings).values())
    found = movement(event_type, body, "evt_1")
    assert (found.key, found.type, found.change, found.after) == (booked.key, kind, change, after)
    assert (found.at, found.envelope_at) == (at(transaction["created_at"]),) * 2
    assert (found.card_id, found.rank, found.event_id) == (transaction["voucher_id"], 0, "evt_1")


def test_a_transfer_in_books_against_the_clearing_account_its_out_half_empties() -> None:
    out, into = member_transactions()[0], the_transfer_in()
    [booked_out] = post(*listed_event(out))
    [booked_in] = post(*listed_event(into))
    clearing = f"loyalty:transfers:{CARD}>{RECEIVER}"
    assert booked_in.key == "transaction:vtx_0c9afe802593b34b81"
    assert booked_in.postings == move(f"loyalty:card:{RECEIVER}", POINTS, 1, clearing)
    cleared = [
        p.amount for t in (booked_out, booked_in) for p in t.postings if p.account == clearing
    ]
    assert cleared == [1, -1]
    found = movement(*listed_event(into))
    assert (found.card_id, found.type, found.change, found.after) == (
        RECEIVER, "POINTS_TRANSFER_IN", 1, 1001
    )  # fmt: skip


# (event type, example file, key, postings, change, after, at, rank)
EXAMPLES = [
    (TRANSACTION, "voucher.loyalty_card.transaction.created.json",
     "transaction:vtx_0f1ad36b8992670da4",
     move("loyalty:card:v_9st8n1XRtoeBz85LPi7P9BCnKJS5OIIY", POINTS, 10,
          "loyalty:accrual:camp_CF2h3bNSTGgH2dDdTDy60qYg"),
     10, 210, "2024-07-24T10:51:30.608Z", 0),
    (POINTS_ADDED, "voucher.loyalty_card.points_added.json",
     "transaction:vtx_0e30615d5ed9b7011b",
     move("loyalty:card:v_hjQhSsitD6lAATASbRV1Ef7dUCjpy0iw", POINTS, 50, "loyalty:additions"),
     50, 1020, "2024-01-24T08:28:37.621033Z", 1),
    (POINTS_EXPIRED, "voucher.loyalty_card.points_expired.json",
     "transaction:vtx_0f0764c45fd232ef8e",
     move("loyalty:card:v_66qyRgwumJomTSV2NvkCBa05lP0UOn82", POINTS, -10, "loyalty:expired"),
     -10, 970, "2024-07-09T08:36:55.237Z", 1),
    ("voucher.loyalty_card.pending_points.activated",
     "voucher.loyalty_card.pending_points.activated.json",
     "transaction:vtx_0ff34b9df109a39357",
     move("loyalty:card:v_bITntTcyfRHPvrOMgwdQVSlShsWRZu4v", POINTS, 23,
          "loyalty:accrual:camp_E14SFSXh2JueXgZ0wFarf3jU"),
     23, 23, "2025-01-08T14:08:34.127Z", 1),
    (GIFT_TRANSACTION, "voucher.gift.transaction.created.json",
     "transaction:vtx_0f1c4589b8cd1c07b2",
     move("giftcard:v_Wi8kP8EW4f1L2yT2N7tfFXxMzZOp7EsS", USD, -1000, "giftcard:additions"),
     1000, 2000, "2024-07-25T13:48:34.908Z", 0),
    (BALANCE_ADDED, "voucher.gift.balance_added.json",
     "transaction:vtx_0e453f45e82ef51f2a",
     move("giftcard:v_oNia4nTFDqYZOWYJiMpX8ocB6p6ZaEBm", USD, -1200, "giftcard:additions"),
     1200, 11500, "2024-02-09T13:27:46.844Z", 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("event_type", "name", "key", "postings", "change", "after", "when", "rank"),
    EXAMPLES,
    ids=[row[0] for row in EXAMPLES],
)
def test_an_event_example_books_its_transaction_and_reports_its_movement(
    event_type: str,
    name: str,
    key: str,
    postings: tuple[Posting, ...],
    change: int,
    after: int,
    when: str,
    rank: int,
) -> None:
    body = recorded.recorded(name)
    [booked] = post(event_type, body)
    assert (booked.key, booked.postings) == (key, postings)
    assert all(total == 0 for total in asset_totals(booked.postings).values())
    # Raw, then enveloped: the same movement, the envelope's time beside it.
    for delivered, envelope_at in (
        (body, None),
        (envelope(event_type, body, "evt_env", "2025-02-01T00:00:00.000Z"),
         at("2025-02-01T00:00:00.000Z")),
    ):  # fmt: skip
        found = movement(event_type, delivered)
        assert (found.key, found.change, found.after, found.at) == (key, change, after, at(when))
        assert (found.rank, found.envelope_at) == (rank, envelope_at)
    assert post(event_type, envelope(event_type, body, "evt_env", when)) == (booked,)


def test_points_rewarded_and_pending_points_move_no_card_and_book_nothing() -> None:
    for event_type, name in (
        (REWARDED, "customer.rewarded.loyalty_points.json"),
        ("voucher.loyalty_card.pending_points.added",
         "voucher.loyalty_card.pending_points.added.json"),
        ("voucher.loyalty_card.pending_points.canceled",
         "voucher.loyalty_card.pending_points.canceled.json"),
    ):  # fmt: skip
        body = recorded.recorded(name)
        assert movement_of(event_type, parse_payload(event_type, body), body, "evt") is None


# The chain -----------------------------------------------------------------------------------


def member_movements() -> list[Movement]:
    return [movement(*listed_event(t), f"evt_{n}") for n, t in enumerate(member_transactions())]


def test_the_member_chain_links_up_from_its_opening_balance() -> None:
    movements = member_movements()
    ordered = chain(reversed(movements))
    assert [m.after for m in ordered] == [999, 998, 1098, 98, 1098, 1298, 1297, 1397, 1396]
    assert [m.change for m in ordered] == [-1, -1, 100, -1000, 1000, 200, -1, 100, -1]
    assert ordered == movements
    # The card had 1000 points before the first transaction listed: only the opening gap.
    assert gaps(movements) == [Gap(None, movements[0].key, 0, 1000)]
    assert gaps(movements)[0].missing == 1000
    latest = newest(movements)
    assert latest is not None and (latest.key, latest.after) == (movements[-1].key, 1396)


@pytest.mark.parametrize("withheld", range(1, 8))
def test_a_withheld_transaction_is_exactly_the_gap_between_its_neighbours(withheld: int) -> None:
    movements = member_movements()
    missing = movements.pop(withheld)
    before, after = movements[withheld - 1], movements[withheld]
    found = gaps(movements)
    assert found == [
        Gap(None, movements[0].key, 0, 1000),
        Gap(before.key, after.key, before.after, after.before),
    ]
    assert found[1].missing == missing.change


def test_a_withheld_first_transaction_joins_the_opening_gap_and_a_last_one_shows_none() -> None:
    movements = member_movements()
    assert gaps(movements[1:]) == [Gap(None, movements[1].key, 0, 999)]
    # Nothing after the last one to break the chain: the card's balance is the one before it.
    assert gaps(movements[:-1]) == [Gap(None, movements[0].key, 0, 1000)]
    latest = newest(movements[:-1])
    assert latest is not None and latest.after == 1397


def test_the_gift_chain_reports_its_balance_and_the_ledger_drifts_by_the_opening_balance() -> None:
    transactions = listed(GIFT_LIST)
    movements = [movement(*listed_event(t), f"evt_{n}") for n, t in enumerate(transactions)]
    booked = [t for body in map(listed_event, transactions) for t in post(*body)]
    ledger = -sum(p.amount for t in booked for p in t.postings if p.account == G)
    assert ledger == 5000 - 7000 - 2000 - 44 + 44 + 2000 + 20 - 2000

    found = report(GIFT, "gift", movements, ledger)

    assert (found.balance, found.ledger_balance, found.drift) == (121020, -3980, 125000)
    assert found.gaps == (Gap(None, movements[0].key, 0, 125000),)
    assert found.unit == "minor units" and not found.agrees


# Equal times ---------------------------------------------------------------------------------


def reward(rewr: str, source: str, *, points: int, balance: int, envelope_at: str) -> Json:
    data = recorded.seed_reward_redemption()
    data["reward_redemption"].update(id=rewr, source_id=source)
    data["reward_assignment"]["parameters"]["loyalty"]["points"] = points
    data["voucher"]["loyalty_card"].update(balance=balance, points=270)
    data["voucher"]["redemption"]["redeemed_points"] = 270 - balance
    return envelope(REWARD_REDEMPTION, data, f"evt_{rewr}", envelope_at)


@pytest.mark.parametrize("envelopes", ["in order", "reversed"])
def test_two_rewards_at_one_instant_leave_the_later_balance_in_any_order(envelopes: str) -> None:
    # Both completed at the seed's time: 170 -> 70 (-100), then 70 -> 40 (-30).
    first_at, second_at = "2024-05-13T12:26:07.000Z", "2024-05-13T12:26:08.000Z"
    if envelopes == "reversed":
        first_at, second_at = second_at, first_at
    first = reward("rewr_a", "r_a", points=100, balance=70, envelope_at=first_at)
    second = reward("rewr_b", "r_b", points=30, balance=40, envelope_at=second_at)
    reports = [movement(REWARD_REDEMPTION, body, body["event"]["id"]) for body in (first, second)]
    assert reports[0].at == reports[1].at

    for arrival in itertools.permutations(reports):
        latest = newest(list(arrival))
        assert latest is not None and (latest.key, latest.after) == ("redemption:r_b:points", 40)
        assert gaps(arrival) == [Gap(None, "redemption:r_a:points", 0, 170)]
        state = fold_cards((m, ()) for m in arrival)[reports[0].card_id]
        assert (state.balance, state.points_spent, state.events) == (40, 130, 2)
        assert state.balance_source == "redemption:r_b:points"


# One movement, several events ----------------------------------------------------------------


def points_redemption_events() -> dict[str, Json]:
    """The example's POINTS_REDEMPTION (-1000, balance 98) as each of its three events."""
    transaction = member_transactions()[3]
    _, paid = listed_event(transaction)
    redeemed = recorded.redemption(
        POINTS_PAID,
        order_id=POINTS_ORDER,
        kind="loyalty",
        campaign_id=CAMPAIGN,
        voucher_id=CARD,
        points=1000,
        created_at=transaction["created_at"],
    )
    redeemed["voucher"]["loyalty_card"] = {"points": 1098, "balance": 98}
    redeemed["voucher"]["redemption"] = {"redeemed_quantity": 1, "redeemed_points": 1000}
    rewarded = recorded.seed_reward_redemption()
    rewarded["voucher"].update(id=CARD, loyalty_card={"points": 1098, "balance": 98})
    rewarded["voucher"]["redemption"] = {"redeemed_quantity": 1, "redeemed_points": 1000}
    rewarded["reward_redemption"].update(
        source_id=POINTS_PAID, voucher_id=CARD, created_at=transaction["created_at"]
    )
    rewarded["reward_assignment"]["parameters"]["loyalty"]["points"] = 1000
    return {TRANSACTION: paid["data"], REDEMPTION: redeemed, REWARD_REDEMPTION: rewarded}


def booked_by(event_type: str, payload: Payload) -> tuple[Transaction, ...]:
    if isinstance(payload, CardTransactionEvent):
        return post_card_transaction(payload, USD)
    if isinstance(payload, RedemptionSucceeded):
        return post_redemption(payload, USD)
    assert isinstance(payload, RewardRedemptionCompleted), event_type
    return post_reward_redemption(payload)


def test_a_points_redemption_its_redemption_and_its_reward_book_one_transaction() -> None:
    events = points_redemption_events()
    key = f"redemption:{POINTS_PAID}:points"
    expected = Transaction(
        key,
        (Posting("loyalty:payments", POINTS, 1000), Posting(L, POINTS, -1000)),
        f"{POINTS_PAID} paid 1000 points from card {CARD}",
    )
    for event_type, body in events.items():
        [points] = [
            t for t in booked_by(event_type, parse_payload(event_type, body)) if t.key == key
        ]
        assert points == expected, event_type
        found = movement(event_type, body)
        assert (found.key, found.change, found.after, found.card_id) == (key, -1000, 98, CARD)

    for arrival in itertools.permutations(events):
        books = MemoryBooks()
        verdicts = [
            books.book(t, event_type, NOW)
            for event_type in arrival
            for t in booked_by(event_type, parse_payload(event_type, events[event_type]))
            if t.key == key
        ]
        assert verdicts == ["booked", "unchanged", "unchanged"], arrival


def test_a_refund_and_its_rollback_book_one_transaction() -> None:
    original = points_redemption_events()[REDEMPTION]
    rollback = parse_payload(ROLLBACK, recorded.rollback(original, POINTS_ROLLBACK))
    assert isinstance(rollback, RedemptionRollbackSucceeded)
    redeemed = parse_payload(REDEMPTION, original)
    assert isinstance(redeemed, RedemptionSucceeded)
    key = f"rollback:{POINTS_ROLLBACK}:points"
    [reversed_] = [
        t for t in post_rollback(rollback, post_redemption(redeemed, USD)) if t.key == key
    ]
    [refund] = post(*listed_event(member_transactions()[4]))
    assert refund == reversed_
    assert refund.postings == (Posting("loyalty:payments", POINTS, -1000), Posting(L, POINTS, 1000))


def test_a_gift_card_payment_and_its_refund_book_as_the_redemption_and_its_rollback() -> None:
    transactions = {t["type"]: t for t in listed(GIFT_LIST)}  # the newer of each type
    original = recorded.redemption(
        GIFT_PAID, order_id=GIFT_ORDER, amount=5000, applied=44, kind="gift", voucher_id=GIFT
    )
    redeemed = parse_payload(REDEMPTION, original)
    assert isinstance(redeemed, RedemptionSucceeded)
    paid = post_redemption(redeemed, USD)
    [paid_by_card] = post(*listed_event(transactions["CREDITS_REDEMPTION"]))
    assert paid_by_card in paid

    rollback = parse_payload(ROLLBACK, recorded.rollback(original, GIFT_ROLLBACK))
    assert isinstance(rollback, RedemptionRollbackSucceeded)
    [refund] = post(*listed_event(transactions["CREDITS_REFUND"]))
    assert refund in post_rollback(rollback, paid)
    assert refund.key == f"rollback:{GIFT_ROLLBACK}"


# Notifications -------------------------------------------------------------------------------


def rendered(event_type: str, body: Json) -> list[Message]:
    return messages(
        environment(),
        event_type,
        parse_payload(event_type, body),
        currency=USD,
        email=True,
        webhook=True,
    )


def test_an_accrual_and_its_points_rewarded_tell_one_message() -> None:
    accrual = recorded.recorded("voucher.loyalty_card.transaction.created.json")
    accrual["holder"]["email"] = "john@example.com"
    card, holder = accrual["voucher"], accrual["holder"]
    rewarded = recorded.recorded("customer.rewarded.loyalty_points.json")
    rewarded.update(holder=holder, customer=holder)
    rewarded["voucher"].update(id=card["id"], code=card["code"], holder_id=holder["id"])
    rewarded["balance"].update(points=10, balance=210, total=210)
    rewarded["event"]["id"] = accrual["transaction"]["details"]["event"]["id"]

    told = rendered(TRANSACTION, accrual)

    assert rendered(REWARDED, rewarded) == told
    assert [(m.channel, m.recipient, m.source_id) for m in told] == [
        ("email", "john@example.com", f"earned:{card['id']}:evcus_0f1ad36a884d1c7c69"),
        ("webhook", "NOTIFY_WEBHOOK_URL", f"earned:{card['id']}:evcus_0f1ad36a884d1c7c69"),
    ]
    assert told[1].body == "Card 8KBUE0M6: 10 points earned; balance now 210."


def test_an_addition_told_by_points_added_and_by_its_transaction_is_one_message() -> None:
    added = recorded.recorded("voucher.loyalty_card.points_added.json")
    transaction = copy.deepcopy(member_transactions()[2])
    transaction.update(id=added["transaction"]["id"], voucher_id=added["voucher"]["id"])
    transaction["details"]["balance"].update(points=50, balance=1020)
    created = {"transaction": transaction, "voucher": added["voucher"], "holder": added["customer"]}

    told = rendered(POINTS_ADDED, added)

    assert rendered(TRANSACTION, created) == told
    assert [m.source_id for m in told] == ["transaction:vtx_0e30615d5ed9b7011b"]
    assert told[0].body == "Card L0y4L: 50 points earned; balance now 1020."
