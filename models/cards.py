"""A card's movements (points or credit in or out), their chain, and what they say about it.

Pure. Every change of a loyalty card's points or a gift card's credit is one `Movement`,
keyed by the Voucherify object it is about: the redemption (`redemption:{r}:points`, or
`redemption:{r}:discount` for a gift card), the rollback (`rollback:{rr}:points`,
`rollback:{rr}`) or, for the rest, the transaction (`transaction:{vtx}`). The key is the
ledger key of the transaction that moves the card, so whichever of a movement's events
arrives first books it, and the others find it booked.

One movement may be reported by several events (`transaction.created` and `points_added`,
a distribution copy, `redemption.succeeded`, `customer.reward_redemptions.completed`). The
report kept is the best by `rank` (the full transaction first), so the card's state never
depends on which came first.

**The chain.** Each report gives the change and the balance after it, so balance before +
change = balance after. Ordered by the transaction's own time, then by the chain (on equal
times, a movement whose balance before is another's balance after comes after it), then by
the envelope's `event.created_at`, then by the figures themselves, never by an id, the
movements must link up: where one's balance before is not the previous one's balance after,
a movement is missing (a `Gap`). The first movement of a card starts from 0: a card created
with a balance, or whose first movements were not seen, shows an opening gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from models.voucherify.transactions import CardKind

RANK_TRANSACTION = 0
"""`…transaction.created`: the full transaction."""
RANK_TRANSACTION_COPY = 1
"""Another event carrying the transaction (`points_added`, `points_expired`, a copy)."""
RANK_REDEMPTION = 2
"""`redemption.succeeded`: the redemption, with the card as it was after it."""
RANK_REWARD = 3
"""`customer.reward_redemptions.completed`."""


@dataclass(frozen=True)
class Movement:
    """One change of a card's balance, as one event reports it."""

    card_id: str
    kind: CardKind
    key: str
    type: str
    """The Voucherify transaction type (`POINTS_ACCRUAL`, `CREDITS_REDEMPTION`, …)."""
    change: int
    after: int
    at: datetime
    envelope_at: datetime | None
    rank: int
    customer_id: str
    event_id: str

    @property
    def before(self) -> int:
        return self.after - self.change

    @property
    def preference(self) -> tuple[int, datetime, int, int, str, str, str]:
        """Which report of one movement is kept: the lowest. Reports equal in everything
        but their event (a copy sent at the same instant) keep the smaller event id: which
        one is kept then changes no figure, only that it is the same whatever the order."""
        return (
            self.rank,
            self.at,
            self.after,
            self.change,
            self.envelope_text,
            self.customer_id,
            self.event_id,
        )

    @property
    def envelope_text(self) -> str:
        return self.envelope_at.isoformat() if self.envelope_at else ""

    @property
    def taken(self) -> int:
        """Points or credit spent by a redemption; 0 for any other movement."""
        return -self.change if self.type.endswith("_REDEMPTION") and self.change < 0 else 0


@dataclass(frozen=True)
class Gap:
    """Movements that never arrived: between `after_key` (None: the card's creation) and
    `before_key`, the balance changed by `missing` without a movement seen."""

    after_key: str | None
    before_key: str
    expected: int
    """The balance after `after_key` (0 at the card's creation)."""
    found: int
    """The balance before `before_key`."""

    @property
    def missing(self) -> int:
        return self.found - self.expected

    def describe(self, amount: Callable[[int], str]) -> str:
        """In words, each balance shown by `amount` (e.g. `models.amounts.points`)."""
        start = self.after_key or "the card's creation"
        sign = "+" if self.missing > 0 else ""
        return (
            f"between {start} (balance {amount(self.expected)}) and {self.before_key} "
            f"(balance before {amount(self.found)}): {sign}{amount(self.missing)} not seen"
        )


def better(kept: Movement | None, report: Movement) -> bool:
    """Whether `report` replaces the report `kept` of the same movement."""
    return kept is None or report.preference < kept.preference


def chain(movements: Iterable[Movement]) -> list[Movement]:
    """The movements in the order they happened (see the module's docstring)."""
    by_time: dict[datetime, list[Movement]] = {}
    for movement in movements:
        by_time.setdefault(movement.at, []).append(movement)
    ordered: list[Movement] = []
    for at in sorted(by_time):
        ordered.extend(_same_time(by_time[at], ordered[-1].after if ordered else 0))
    return ordered


def newest(movements: Sequence[Movement]) -> Movement | None:
    """The movement whose balance is the card's reported balance: the last of the chain.

    Only the card's two latest times matter (`latest_times`): the movements of the latest
    time in chain order, after the last movement of the time before."""
    if not movements:
        return None
    times = sorted({movement.at for movement in movements})[-LATEST_TIMES:]
    if len(times) == 1:  # the card's only time: its chain starts from 0
        return _same_time(list(movements), 0)[-1]
    before = _same_time([m for m in movements if m.at == times[0]], None)[-1]
    return _same_time([m for m in movements if m.at == times[1]], before.after)[-1]


LATEST_TIMES = 2
"""How many of a card's latest times `newest` reads."""


def gaps(movements: Iterable[Movement]) -> list[Gap]:
    """Where the chain breaks, oldest first."""
    found = []
    previous: Movement | None = None
    for movement in chain(movements):
        expected = previous.after if previous else 0
        if movement.before != expected:
            found.append(
                Gap(previous.key if previous else None, movement.key, expected, movement.before)
            )
        previous = movement
    return found


def _same_time(group: list[Movement], start: int | None) -> list[Movement]:
    """Movements of one time, in chain order: first one that follows no other of the group,
    preferring the one that continues from `start` (the balance before this time; None when
    not known); where every one follows another (a loop: +5 then -5), the one continuing from
    `start`. Each is followed by the one it links to; then the envelope's time, then the
    figures decide."""
    remaining = sorted(group, key=_tiebreak)
    ordered: list[Movement] = []
    current_after = start
    while remaining:
        afters = {m.after for m in remaining}
        heads = [m for m in remaining if m.before not in afters or m.before == m.after]
        continuing = [m for m in heads or remaining if m.before == current_after]
        current = (continuing or heads or remaining)[0]
        while True:
            ordered.append(current)
            remaining.remove(current)
            following = [m for m in remaining if m.before == current.after]
            if not following:
                break
            current = following[0]
        current_after = current.after
    return ordered


def _tiebreak(movement: Movement) -> tuple[str, int, int, str, str]:
    # The envelope's time; then the figures; the key only between movements of equal figures
    # at one time, whose order changes no balance.
    return (
        movement.envelope_text or "~",
        movement.after,
        movement.change,
        movement.type,
        movement.key,
    )


@dataclass(frozen=True)
class CardReport:
    """A card as Voucherify reported it against what the ledger holds for it."""

    card_id: str
    kind: CardKind
    balance: int
    """The newest reported balance (0 before any movement)."""
    as_of: datetime | None
    ledger_balance: int
    gaps: tuple[Gap, ...]
    movements: int

    @property
    def drift(self) -> int:
        """Reported minus booked: 0 once every movement since the card's creation is seen."""
        return self.balance - self.ledger_balance

    @property
    def agrees(self) -> bool:
        return self.drift == 0 and not self.gaps

    @property
    def unit(self) -> str:
        return "points" if self.kind == "loyalty" else "minor units"


def report(
    card_id: str, kind: CardKind, movements: Sequence[Movement], ledger_balance: int
) -> CardReport:
    latest = newest(movements)
    return CardReport(
        card_id=card_id,
        kind=kind,
        balance=latest.after if latest else 0,
        as_of=latest.at if latest else None,
        ledger_balance=ledger_balance,
        gaps=tuple(gaps(movements)),
        movements=len(movements),
    )
