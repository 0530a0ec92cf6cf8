"""Observations gathered and added at once come out as observing each one does, and the
deliveries' counts reach the metrics within a second, or at once before a scrape."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from sqlalchemy import create_engine

from receiver.metrics import DeliveryCounts, ReceiverMetrics, observe_many

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)


def histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("t_seconds", "t", ["kind"], buckets=BUCKETS, registry=registry)


@given(st.lists(st.one_of(st.sampled_from(BUCKETS), st.floats(0, 100, allow_nan=False))))
def test_observing_many_at_once_is_observing_each(amounts: list[float]) -> None:
    one_by_one, each = histogram()
    at_once, gathered = histogram()
    child = each.labels("x")
    for amount in amounts:
        child.observe(amount)
    observe_many(gathered.labels("x"), amounts)
    assert samples(at_once) == samples(one_by_one)


def samples(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, but the creation time of each series."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def delivered(metrics: ReceiverMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_deliveries_are_counted_within_a_second_or_at_a_scrape() -> None:
    # No database: the state metrics then say only that it is down.
    metrics = ReceiverMetrics(create_engine("sqlite:///file:nowhere?mode=ro&uri=true"))
    counts = DeliveryCounts(metrics, every=0.2)

    async def deliveries() -> tuple[str, str, str]:
        counts.count("accepted", 0.003)
        counts.count("accepted", 0.02)
        counts.count("unauthorized", 0.0005)
        before = delivered(metrics)
        await asyncio.sleep(0.5)
        after = delivered(metrics)
        counts.count("duplicate", 0.004)
        counts.flush()  # as the scrape does
        return before, after, delivered(metrics)

    before, after, scraped = asyncio.run(deliveries())
    assert 'voucherhook_deliveries_total{outcome="accepted"} 0.0' in before
    assert 'voucherhook_deliveries_total{outcome="accepted"} 2.0' in after
    assert 'voucherhook_deliveries_total{outcome="unauthorized"} 1.0' in after
    assert "voucherhook_receive_seconds_count 3.0" in after
    assert 'voucherhook_receive_seconds_bucket{le="0.001"} 1.0' in after
    assert 'voucherhook_deliveries_total{outcome="duplicate"} 1.0' in scraped
    assert "voucherhook_receive_seconds_count 4.0" in scraped
    assert "voucherhook_database_up 0.0" in scraped
