"""The rate limit rule (`models.pacing`): slots one interval apart, from where the shared
budget ends, never further than the horizon a sender may wait."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from models import pacing

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_slots_are_one_interval_apart_from_now_when_the_budget_is_free() -> None:
    grant = pacing.grant(None, NOW, 4.0, 3, 10.0)
    assert grant.count == 3
    assert [grant.slot(i) for i in range(3)] == [
        NOW,
        NOW + timedelta(seconds=0.25),
        NOW + timedelta(seconds=0.5),
    ]
    assert grant.next_at(3) == NOW + timedelta(seconds=0.75)


def test_a_budget_spent_ahead_starts_the_slots_where_it_ends() -> None:
    ahead = NOW + timedelta(seconds=0.2)
    grant = pacing.grant(ahead, NOW, 1.0, 5, 0.25)
    assert (grant.start, grant.count) == (ahead, 1)


@pytest.mark.parametrize("seconds", [0.3, 5.0])
def test_a_slot_beyond_the_horizon_is_not_given_and_the_budget_is_kept(seconds: float) -> None:
    ahead = NOW + timedelta(seconds=seconds)
    grant = pacing.grant(ahead, NOW, 1.0, 5, 0.25)
    assert (grant.start, grant.count) == (ahead, 0)
    assert grant.next_at(0) == ahead


def test_a_budget_left_in_the_past_gives_no_burst() -> None:
    grant = pacing.grant(NOW - timedelta(hours=1), NOW, 2.0, 10, 1.0)
    assert (grant.start, grant.count) == (NOW, 3)


def test_the_horizon_bounds_how_many_slots_one_grant_gives() -> None:
    assert pacing.grant(None, NOW, 100.0, 1000, 0.25).count == 26
    assert pacing.grant(None, NOW, 100.0, 1000, float("inf")).count == 1000
    assert pacing.grant(None, NOW, float("inf"), 7, 0.25).count == 7


@pytest.mark.parametrize(("rate", "horizon"), [(1.0, 0.25), (10.0, 0.25), (4.0, 0.5), (0.5, 3.0)])
def test_a_grant_never_gives_more_than_most_and_a_free_budget_gives_that_many(
    rate: float, horizon: float
) -> None:
    limit = pacing.most(rate, horizon)
    assert pacing.grant(None, NOW, rate, 1000, horizon).count == limit
    for ahead in (0.0, 0.01, horizon / 2, horizon):
        start = NOW + timedelta(seconds=ahead)
        assert pacing.grant(start, NOW, rate, 1000, horizon).count <= limit


def test_most_is_unbounded_without_a_limit() -> None:
    assert pacing.most(math.inf, 0.25) == math.inf
