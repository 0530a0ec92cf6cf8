"""Which handlers run for which event type, and what each handler is: the one table to read
or extend.

An event type missing here is stored, listed and replayable, with status `ignored` until a
handler exists for it. A handler's function is found under its name in
`workers.handlers.BY_NAME`; everything else the workers know of a handler (the order of
handlers in a batch, which take the rebuild guard, which a rebuild runs again) is read from
its declaration here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Handler:
    """A handler, as the processing, the rebuild and the operators' commands know it."""

    name: str
    """Its name in `handler_runs.handler`, and of its function."""
    rebuilt: tuple[str, ...] = ()
    """The statuses of its runs that a rebuild folds again, running the handler on books in
    memory (empty: a rebuild leaves it alone). Such a handler keeps its effects in the books
    (the ledger, the cards), which a rebuild replaces: it writes them under the rebuild guard
    (`guarded`)."""

    @property
    def guarded(self) -> bool:
        """It must not write while a rebuild runs."""
        return bool(self.rebuilt)


LEDGER = Handler("ledger", rebuilt=("done", "held"))
LOYALTY = Handler("loyalty", rebuilt=("done",))
"""The cards: loyalty cards' points and gift cards' credit (named before gift cards came)."""
NOTIFICATIONS = Handler("notifications")

ORDER: tuple[Handler, ...] = (LEDGER, LOYALTY, NOTIFICATIONS)
"""Every handler, in run order within a batch: the books first, then the cards, then what is
told to people."""

_CARD_TRANSACTION = (LEDGER, LOYALTY, NOTIFICATIONS)
"""An event carrying a loyalty or gift card transaction (`vtx_...`): books the movement, moves
the card, tells the customer."""

HANDLERS: dict[str, tuple[Handler, ...]] = {
    "redemption.succeeded": (LEDGER, LOYALTY, NOTIFICATIONS),
    "customer.reward_redemptions.completed": (LEDGER, LOYALTY, NOTIFICATIONS),
    "redemption.rollback.succeeded": (LEDGER,),
    "voucher.loyalty_card.transaction.created": _CARD_TRANSACTION,
    "voucher.loyalty_card.points_added": _CARD_TRANSACTION,
    "voucher.loyalty_card.points_expired": _CARD_TRANSACTION,
    "voucher.loyalty_card.pending_points.activated": _CARD_TRANSACTION,
    "voucher.gift.transaction.created": _CARD_TRANSACTION,
    "voucher.gift.balance_added": _CARD_TRANSACTION,
    "customer.voucher.loyalty_card.points_added": _CARD_TRANSACTION,
    "customer.voucher.loyalty_card.points_expired": _CARD_TRANSACTION,
    "customer.voucher.gift.balance_added": _CARD_TRANSACTION,
    # No transaction: the points are booked by the transaction that moves them (an accrual,
    # an activation); these only tell the customer.
    "customer.rewarded.loyalty_points": (NOTIFICATIONS,),
    "voucher.loyalty_card.pending_points.added": (NOTIFICATIONS,),
    "voucher.loyalty_card.pending_points.canceled": (NOTIFICATIONS,),
}

_NAMES: dict[str, tuple[str, ...]] = {
    event_type: tuple(handler.name for handler in ORDER if handler in handlers)
    for event_type, handlers in HANDLERS.items()
}


def handlers_for(event_type: str | None) -> tuple[str, ...]:
    """The names of the handlers of `event_type`, in run order; () for an event type without
    handlers."""
    return _NAMES.get(event_type or "", ())
