"""The times the command line takes: ISO 8601, or a time ago counted back from the present."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from models.moments import NotAMoment, ago, moment

NOW = datetime(2024, 5, 13, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(minutes=90)),
        (" 2D ", timedelta(days=2)),
    ],
)
def test_a_time_ago_counts_back_from_now(text: str, back: timedelta) -> None:
    assert moment(text, NOW) == NOW - back


def test_m_is_minutes_not_months() -> None:
    assert ago("1m") == timedelta(minutes=1)


def test_an_iso_date_is_its_midnight_in_utc() -> None:
    assert moment("2024-05-01", NOW) == datetime(2024, 5, 1, tzinfo=UTC)


def test_an_iso_time_keeps_its_offset_and_z_is_utc() -> None:
    assert moment("2024-05-01T10:00:00Z", NOW) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert moment("2024-05-01T10:00:00+02:00", NOW) == datetime(
        2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=2))
    )
    assert moment("2024-05-01T10:00", NOW) == datetime(2024, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "2024-13-45", "1", "h", "1y", "-1h", "1h-", ""])
def test_anything_else_says_what_to_give(text: str) -> None:
    with pytest.raises(NotAMoment) as error:
        moment(text, NOW)
    message = str(error.value)
    assert message.startswith(f"{text!r} is not an ISO 8601 date or time nor a time ago")
    assert "2024-05-13T12:00:00Z" in message and "30m, 1h, 2d" in message


def test_a_time_ago_beyond_the_calendar_is_refused_in_words() -> None:
    with pytest.raises(NotAMoment, match="further back than a calendar goes"):
        moment("999999999w", NOW)
