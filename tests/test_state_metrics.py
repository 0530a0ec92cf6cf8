"""The state a scrape reads from the database: a held rollback counted apart from the oldest
pending event (it may wait for days by design), the newest receipt, and the cards that
disagree with Voucherify, counted by one worker at a time and read by every scrape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, update

from models.db import figures
from models.db.tables import events
from receiver.metrics import ReceiverMetrics
from tests.test_cards_cli import EXPIRY, history
from tests.test_operations import process_live, store_all
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION
from workers.books_check import count_drifting

ROLLBACK = "redemption.rollback.succeeded"


def scraped(engine: Engine) -> dict[str, float]:
    """The unlabelled gauges, and `events` by "type/status", of one scrape."""
    text = generate_latest(ReceiverMetrics(engine, quiet_after=3600).registry).decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels and sample.name == "voucherhook_events":
                found[f"events:{sample.labels['type']}/{sample.labels['status']}"] = sample.value
            elif not sample.labels:
                found[sample.name] = sample.value
    return found


def test_a_held_rollback_is_counted_apart_from_the_oldest_pending(db: Engine) -> None:
    original = recorded.redemption("r_state_held", order_id="ord_state_held")
    [held] = store_all(db, [(ROLLBACK, recorded.rollback(original, "rr_state_held"))])
    process_live(db, [held])
    with db.begin() as conn:  # received an hour ago: it has waited since
        conn.execute(update(events).values(received_at=datetime.now(UTC) - timedelta(hours=1)))

    state = scraped(db)

    assert state["voucherhook_held_rollbacks"] == 1
    assert state["voucherhook_backlog_events"] == 1
    assert state["voucherhook_oldest_pending_seconds"] == 0
    assert state["voucherhook_database_up"] == 1
    assert state["voucherhook_quiet_alert_after_seconds"] == 3600
    received = state["voucherhook_last_received_timestamp_seconds"]
    assert abs(received - (datetime.now(UTC) - timedelta(hours=1)).timestamp()) < 60

    # A redemption waiting behind it is the oldest pending that counts.
    [waiting] = store_all(db, [(REDEMPTION, recorded.redemption("r_state_other"))])
    with db.begin() as conn:
        conn.execute(
            update(events)
            .where(events.c.id == waiting)
            .values(received_at=datetime.now(UTC) - timedelta(minutes=20))
        )
    state = scraped(db)
    assert state["voucherhook_backlog_events"] == 2
    assert 1190 < state["voucherhook_oldest_pending_seconds"] < 1300


def test_every_status_of_a_type_seen_is_a_series(db: Engine) -> None:
    """A rule over `status="failed"` has a series (at 0) before the first failure."""
    process_live(db, store_all(db, [(REDEMPTION, recorded.redemption("r_state_ok"))]))
    state = scraped(db)
    assert state["events:redemption.succeeded/processed"] == 1
    assert state["events:redemption.succeeded/failed"] == 0
    assert state["events:redemption.succeeded/pending"] == 0


def test_cards_that_disagree_are_counted_by_one_worker_and_read_by_every_scrape(
    db: Engine,
) -> None:
    assert "voucherhook_cards_drifting" not in scraped(db)  # never counted: not reported
    process_live(db, store_all(db, history()))

    assert count_drifting(db) == 1  # the loyalty card misses its expiry
    state = scraped(db)
    assert state["voucherhook_cards_drifting"] == 1
    checked = state["voucherhook_cards_checked_timestamp_seconds"]
    assert abs(checked - datetime.now(UTC).timestamp()) < 60

    process_live(db, store_all(db, [EXPIRY]))
    # Counted a moment ago (by this or another worker): not again before the interval.
    assert count_drifting(db) == 0
    assert scraped(db)["voucherhook_cards_drifting"] == 1

    assert count_drifting(db, every=0, duty=0) == 0
    with db.connect() as conn:
        value, at = figures.computed(conn)[figures.CARDS_DRIFTING]
    assert value == 0 and at.timestamp() >= checked
    assert scraped(db)["voucherhook_cards_drifting"] == 0


def test_a_worker_counting_holds_the_others_off(db: Engine) -> None:
    """While one worker counts (its transaction holds the figure), another skips at once."""
    with db.begin() as conn:
        figures.ensure(conn, figures.CARDS_DRIFTING)
    with db.begin() as conn:
        assert figures.claim(conn, figures.CARDS_DRIFTING, datetime.now(UTC))
        assert count_drifting(db, every=0, duty=0) == 0
        figures.put(conn, figures.CARDS_DRIFTING, 7, datetime.now(UTC))
    assert scraped(db)["voucherhook_cards_drifting"] == 7


def test_a_long_count_spaces_out_the_next_ones(db: Engine) -> None:
    """A count that took a minute is not made again within twenty."""
    process_live(db, store_all(db, history()))
    assert count_drifting(db, every=0, duty=0) == 1

    def counted(minutes_ago: float, took_ms: int) -> None:
        at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        with db.begin() as conn:
            figures.put(conn, figures.CARDS_DRIFTING, 1, at)
            figures.put(conn, figures.CARDS_COUNT_MS, took_ms, at)

    counted(minutes_ago=10, took_ms=60_000)
    assert count_drifting(db) == 0  # 5 minutes passed, but not 20 times a minute
    counted(minutes_ago=10, took_ms=100)
    assert count_drifting(db) == 1
