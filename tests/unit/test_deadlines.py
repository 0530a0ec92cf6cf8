"""receiver.deadlines: one timer for many waits of one length, on a real event loop."""

from __future__ import annotations

import asyncio

from receiver.deadlines import Deadlines


def test_each_key_expires_after_its_seconds_in_the_order_added_unless_discarded() -> None:
    async def scenario() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        expired: list[tuple[str, float]] = []
        deadlines: Deadlines[str] = Deadlines(0.2, lambda key: expired.append((key, loop.time())))
        deadlines.add("a")
        await asyncio.sleep(0.05)
        deadlines.add("b")
        deadlines.add("c")
        await asyncio.sleep(0.05)
        deadlines.add("d")
        deadlines.discard("c")
        await asyncio.sleep(0.4)
        assert len(deadlines) == 0
        return [(key, at - started) for key, at in expired]

    expired = asyncio.run(scenario())
    assert [key for key, _ in expired] == ["a", "b", "d"]
    # Never before its time; on a loaded machine possibly a little after it.
    for (key, at), due in zip(expired, (0.2, 0.25, 0.3), strict=True):
        assert due - 0.005 <= at < due + 0.15, (key, at)


def test_a_key_discarded_in_time_never_expires_and_the_timer_is_set_again() -> None:
    async def scenario() -> list[str]:
        expired: list[str] = []
        deadlines: Deadlines[str] = Deadlines(0.1, expired.append)
        for round_ in range(5):
            deadlines.add(f"kept-{round_}")
            await asyncio.sleep(0.03)
            deadlines.discard(f"kept-{round_}")
        deadlines.add("late")
        await asyncio.sleep(0.2)
        return expired

    assert asyncio.run(scenario()) == ["late"]


def test_a_new_event_loop_starts_afresh() -> None:
    expired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(0.1, expired.append)

    async def add_and_leave(key: str) -> None:
        deadlines.add(key)  # the loop ends before it is due

    async def add_and_wait(key: str) -> None:
        deadlines.add(key)
        await asyncio.sleep(0.2)

    asyncio.run(add_and_leave("first loop"))
    asyncio.run(add_and_wait("second loop"))
    assert expired == ["second loop"]
