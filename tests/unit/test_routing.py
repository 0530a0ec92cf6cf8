"""The table of handlers (`models.routing`): every property the workers read of a handler is
declared there once, and every handler declared there has a function."""

from __future__ import annotations

from models.routing import HANDLERS, LEDGER, LOYALTY, NOTIFICATIONS, ORDER, handlers_for
from workers.handlers import BY_NAME
from workers.processing import GUARDED
from workers.rebuild import FOLDED


def test_every_handler_has_a_function_and_one_name() -> None:
    names = [handler.name for handler in ORDER]
    assert len(set(names)) == len(names)
    assert set(BY_NAME) == set(names)
    assert {handler for handlers in HANDLERS.values() for handler in handlers} <= set(ORDER)


def test_an_event_types_handlers_are_named_in_run_order() -> None:
    assert handlers_for("redemption.succeeded") == ("ledger", "loyalty", "notifications")
    assert handlers_for("customer.reward_redemptions.completed") == (
        "ledger",
        "loyalty",
        "notifications",
    )
    assert handlers_for("redemption.rollback.succeeded") == ("ledger",)
    assert handlers_for("voucher.created") == handlers_for(None) == ()


def test_the_processing_and_the_rebuild_read_the_handlers_properties() -> None:
    assert sorted(GUARDED) == [LEDGER.name, LOYALTY.name]
    assert dict(FOLDED) == {LEDGER.name: ("done", "held"), LOYALTY.name: ("done",)}
    assert list(FOLDED) == [LEDGER.name, LOYALTY.name]  # a rebuild runs them in run order
    assert not NOTIFICATIONS.guarded and not NOTIFICATIONS.rebuilt
