"""How many messages a channel may send now under its rate limit, and when each may go: pure.

A channel's budget is one time, `next_at`: the earliest moment its next message may leave
(the "theoretical arrival time" of the generic cell rate algorithm). Taking `n` messages gives
them the slots `start`, `start + 1/rate`, … and moves `next_at` past the last one, so messages
on one channel never leave closer together than `1/rate` seconds, however many processes
send. A message that gets no slot is not refused: it stays waiting for a later one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Grant:
    start: datetime
    """The slot of the first message."""
    count: int
    """How many messages may take the slots from `start` on; 0 when the next is too far."""
    interval: float
    """Seconds between two slots: 1 / rate."""

    def slot(self, index: int) -> datetime:
        return self.start + timedelta(seconds=index * self.interval)

    def next_at(self, taken: int) -> datetime:
        """The channel's budget once `taken` (≤ count) of the slots are used."""
        return self.slot(taken)


def grant(
    next_at: datetime | None, now: datetime, rate: float, wanted: int, horizon: float
) -> Grant:
    """The slots for up to `wanted` messages whose send may be awaited at most `horizon`
    seconds from `now`; an infinite `rate` gives every one at once."""
    if math.isinf(rate):
        return Grant(now, max(wanted, 0), 0.0)
    interval = 1.0 / rate
    start = now if next_at is None or next_at < now else next_at
    ahead = (start - now).total_seconds()
    if wanted <= 0 or ahead > horizon:
        return Grant(start, 0, interval)
    if math.isinf(horizon):
        return Grant(start, wanted, interval)
    fits = math.floor((horizon - ahead) / interval + 1e-9) + 1
    return Grant(start, min(wanted, fits), interval)


def most(rate: float, horizon: float) -> float:
    """The most slots one `grant` gives at `rate` within `horizon` (when the budget is free):
    a sender claims no more than that, since it could not send them yet. Infinite when
    unlimited."""
    if math.isinf(rate) or math.isinf(horizon):
        return math.inf
    return math.floor(horizon * rate + 1e-9) + 1
