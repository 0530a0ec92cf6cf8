"""Windows for listing redemptions: a period over the 9,900 items one query reaches is cut,
on whole milliseconds, into adjoining windows; the API's time format."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.voucherify.api_windows import (
    MILLISECOND,
    WINDOW_CAP,
    WindowTooNarrow,
    api_time,
    parse_api_time,
    split,
    whole_ms,
)

SINCE = datetime(2024, 5, 1, tzinfo=UTC)
UNTIL = datetime(2024, 5, 2, tzinfo=UTC)


def test_one_query_reaches_99_pages_of_100() -> None:
    assert WINDOW_CAP == 9900


def test_a_window_within_the_cap_is_kept() -> None:
    assert split(SINCE, UNTIL, 9900) == [(SINCE, UNTIL)]
    assert split(SINCE, UNTIL, 0) == [(SINCE, UNTIL)]


def test_a_window_over_the_cap_is_halved() -> None:
    noon = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert split(SINCE, UNTIL, 9901) == [(SINCE, noon), (noon, UNTIL)]
    assert split(SINCE, UNTIL, 19800) == [(SINCE, noon), (noon, UNTIL)]


def test_a_window_far_over_the_cap_is_cut_in_proportion() -> None:
    windows = split(SINCE, UNTIL, 4 * 9900 + 1)
    assert len(windows) == 5
    assert {end - start for start, end in windows} <= {
        timedelta(hours=24) / 5,
        timedelta(hours=24) / 5 + MILLISECOND,
        timedelta(hours=24) / 5 - MILLISECOND,
    }


def test_the_cap_is_a_parameter() -> None:
    assert len(split(SINCE, UNTIL, 120, cap=100)) == 2
    assert split(SINCE, UNTIL, 100, cap=100) == [(SINCE, UNTIL)]


def test_cuts_fall_on_whole_milliseconds() -> None:
    start = datetime(2024, 5, 1, 0, 0, 0, 123_456, tzinfo=UTC)
    windows = split(start, start + timedelta(milliseconds=3), 10_000)
    assert windows[0][0] == start
    assert all(cut.microsecond % 1000 == 0 for _, cut in windows[:-1])


def test_two_milliseconds_split_into_one_each() -> None:
    end = SINCE + 2 * MILLISECOND
    assert split(SINCE, end, 30_000) == [(SINCE, SINCE + MILLISECOND), (SINCE + MILLISECOND, end)]


def test_one_millisecond_over_the_cap_cannot_be_split() -> None:
    with pytest.raises(WindowTooNarrow, match=r"2024-05-01T00:00:00\.000Z.*narrower filter"):
        split(SINCE, SINCE + MILLISECOND, 9901)


def test_an_empty_or_backward_window_is_refused() -> None:
    with pytest.raises(ValueError, match="is empty: give a start before its end"):
        split(UNTIL, SINCE, 1)
    with pytest.raises(ValueError, match="is empty"):
        split(SINCE, SINCE, 0)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone: give an aware datetime"):
        split(datetime(2024, 5, 1), UNTIL, 1)


@given(
    start_ms=st.integers(min_value=0, max_value=10**12),
    length_ms=st.integers(min_value=2, max_value=10**10),
    total=st.integers(min_value=9901, max_value=10**7),
)
def test_windows_adjoin_cover_the_period_and_are_not_empty(
    start_ms: int, length_ms: int, total: int
) -> None:
    since = datetime(2000, 1, 1, tzinfo=UTC) + start_ms * MILLISECOND
    until = since + length_ms * MILLISECOND
    windows = split(since, until, total)
    assert len(windows) >= 2
    assert windows[0][0] == since and windows[-1][1] == until
    assert all(a_end == b_start for (_, a_end), (b_start, _) in itertools.pairwise(windows))
    assert all(end - start >= MILLISECOND for start, end in windows)


def test_the_api_time_is_utc_with_milliseconds_and_z() -> None:
    paris = timezone(timedelta(hours=2))
    assert api_time(datetime(2024, 5, 13, 14, 0, 0, 250_999, tzinfo=paris)) == (
        "2024-05-13T12:00:00.250Z"
    )
    assert api_time(SINCE) == "2024-05-01T00:00:00.000Z"


def test_an_api_time_reads_back() -> None:
    assert parse_api_time("2022-11-18T12:30:32.622Z") == datetime(
        2022, 11, 18, 12, 30, 32, 622_000, tzinfo=UTC
    )
    assert parse_api_time("2016-11-16") == datetime(2016, 11, 16, tzinfo=UTC)
    assert parse_api_time(api_time(whole_ms(UNTIL))) == UNTIL
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_api_time("yesterday")
