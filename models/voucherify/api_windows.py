"""Time windows for listing redemptions through Voucherify's API, and its time format.

`GET /v1/redemptions` returns at most 100 items a page (`limit` ≤ 100) and pages 1 to 99
(`page` ≤ 99), so one query reaches at most 9,900 items, however many its `total` says there
are. A period with more is listed as several `created_at[after]`/`created_at[before]` windows,
each under that cap: `split` cuts a window whose `total` is over it. Pure: no I/O; the client
that asks is `workers.voucherify_api`.

The API's times have millisecond precision, so windows are cut on whole milliseconds.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

PAGE_LIMIT = 100
"""The most items `GET /v1/redemptions` returns in one page (`limit`)."""
LAST_PAGE = 99
"""The highest `page` `GET /v1/redemptions` accepts."""
WINDOW_CAP = PAGE_LIMIT * LAST_PAGE
"""The most items one query can reach by paging: 9,900."""

MILLISECOND = timedelta(milliseconds=1)

Window = tuple[datetime, datetime]
"""`[since, until)`: created at or after `since` and before `until`."""


class WindowTooNarrow(ValueError):
    """More items than one query reaches were created within one millisecond: no window
    narrower than that can be asked for, so they cannot all be listed page by page."""

    def __init__(self, since: datetime, total: int, cap: int) -> None:
        super().__init__(
            f"Voucherify counts {total} redemptions created at {api_time(since)}, more than the "
            f"{cap} one query can list and within one millisecond, which no window can split: "
            "list that moment with a narrower filter (result, campaign or customer) instead"
        )


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive time is refused, since it would be read in an unknown zone."""
    if moment.tzinfo is None:
        raise ValueError(
            f"{moment.isoformat()} has no time zone: give an aware datetime (e.g. tzinfo=UTC)"
        )
    return moment.astimezone(UTC)


def whole_ms(moment: datetime) -> datetime:
    """`moment` in UTC, cut down to its millisecond (the API's precision)."""
    at = utc(moment)
    return at.replace(microsecond=at.microsecond - at.microsecond % 1000)


def api_time(moment: datetime) -> str:
    """The API's form of a time, ISO 8601 in UTC with milliseconds and `Z`:
    `2024-05-13T12:00:00.250Z`. Microseconds are cut, not rounded."""
    at = utc(moment)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_api_time(text: str) -> datetime:
    """An API time (`2022-11-18T12:30:32.622Z`, or a date) as an aware UTC datetime; a time
    without a zone is UTC, as Voucherify writes them. ValueError names a text that is not one."""
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"{text!r} is not an ISO 8601 time such as 2022-11-18T12:30:32.622Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def split(since: datetime, until: datetime, total: int, cap: int = WINDOW_CAP) -> list[Window]:
    """`[since, until)` as it is when `total` ≤ `cap`; otherwise cut into equal windows, on
    whole milliseconds, oldest first: two when `total` is up to twice the cap, and as many as
    the cap divides `total` into when it is more (one request finds a window's `total`, so
    cutting a large one in proportion spends fewer requests than halving it again and again).
    A window still over the cap once its items are counted is split again by the caller.

    WindowTooNarrow when a window over the cap is a single millisecond."""
    if cap < 1:
        raise ValueError(f"a window's cap must be at least 1, not {cap}")
    if utc(until) <= utc(since):
        raise ValueError(
            f"the window {since.isoformat()} to {until.isoformat()} is empty: "
            "give a start before its end"
        )
    if total <= cap:
        return [(since, until)]
    start, end = whole_ms(since), whole_ms(until)
    milliseconds = (end - start) // MILLISECOND
    if milliseconds < 2:
        raise WindowTooNarrow(start, total, cap)
    parts = min(max(2, math.ceil(total / cap)), milliseconds)
    cuts = [start + MILLISECOND * (milliseconds * k // parts) for k in range(1, parts)]
    bounds = [since, *cuts, until]
    return list(itertools.pairwise(bounds))
