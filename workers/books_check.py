"""How many cards disagree with Voucherify, counted now and then by one worker for the metrics.

A card disagrees when its ledger balance differs from the balance Voucherify last reported,
or its history has a gap: the cards `voucherhook cards --drift` lists. Counting reads every
movement and card account, far too much for a scrape, so a worker's main process counts every
`CARDS_CHECK_EVERY` seconds (less often when counting takes long: `DUTY`) and stores the
figure (`models.db.figures`), which every scrape reads; the workers share the job, one of them
doing it each time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from models.cards import report
from models.db import card_store, figures

CARDS_CHECK_EVERY = 300.0
"""Seconds between two counts: a drift is a matter of hours (a missed webhook), not seconds."""
DUTY = 20
"""Counts are at least this many times their own length apart, so that counting large books
(a minute at a million card movements: bench/cards_check.py) takes at most a twentieth of
one worker's time."""


def count_drifting(engine: Engine, every: float = CARDS_CHECK_EVERY, duty: float = DUTY) -> int:
    """Count the cards that disagree and store the figure, unless another worker counted
    within `every` seconds (or `duty` times as long as that count took) or is counting;
    answers how many disagree (0 when it did not count)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        figures.ensure(conn, figures.CARDS_DRIFTING)
        took = figures.computed(conn).get(figures.CARDS_COUNT_MS, (0, now))[0] / 1000
    wait = max(every, duty * took)
    started = time.perf_counter()
    with engine.begin() as conn:
        # A little early, so that the worker whose turn it is next does not just miss it.
        if not figures.claim(conn, figures.CARDS_DRIFTING, now - timedelta(seconds=wait * 0.9)):
            return 0
        booked = card_store.ledger_balances(conn)
        drifting = sum(
            1
            for movements in card_store.all_movements(conn)
            if not report(
                movements[0].card_id,
                movements[0].kind,
                movements,
                booked.get((movements[0].kind, movements[0].card_id), 0),
            ).agrees
        )
        at = datetime.now(UTC)
        figures.put(conn, figures.CARDS_DRIFTING, drifting, at)
        elapsed = round((time.perf_counter() - started) * 1000)
        figures.ensure(conn, figures.CARDS_COUNT_MS)
        figures.put(conn, figures.CARDS_COUNT_MS, elapsed, at)
    return drifting
