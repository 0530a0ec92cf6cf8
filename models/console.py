"""What the operator console shows, as pure rules: ages, bodies
pretty-printed, the events filter read from a query string, and the activity charts' series.

Pure: the console's pages (`workers/console/`) read the database through
`models/db/console_queries.py` and format with this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from models.charts import Series
from models.statuses import EVENT_STATUSES

SEARCH_MAX = 200
"""Longest search term: an order id, a customer id or a voucher code is far shorter."""


def age(seconds: float) -> str:
    """A duration as a person reads it: `42 s`, `7 min`, `3 h 5 min`, `2 d 4 h`."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def pretty_body(body: bytes) -> tuple[str, bool]:
    """The stored body for reading: JSON indented (keys in their order), else the text as it
    arrived; and whether it was JSON."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(body)
    except ValueError:
        return text, False
    return json.dumps(parsed, indent=2, ensure_ascii=False), True


class FilterError(ValueError):
    """A query parameter of the events filter is malformed; the message says which and how."""


@dataclass(frozen=True)
class EventFilter:
    """The events page's filter: search over the body and id, type, status, receipt window."""

    q: str | None = None
    type: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def replayable(self) -> bool:
        """A filter `replay` can select by itself (it does not search bodies)."""
        return self.q is None and any((self.type, self.status, self.since, self.until))

    def query(self, **extra: str | int | None) -> str:
        """The query string of this filter (and `extra`), without empty values."""
        values: dict[str, str | int | None] = {
            "q": self.q,
            "type": self.type,
            "status": self.status,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    def without_search(self) -> EventFilter:
        return replace(self, q=None)

    def describe(self) -> str:
        """`failed redemption.succeeded events received since 09:00 …`, for a preview."""
        words = [self.status or "all", self.type or "", "events"]
        if self.q:
            words.append(f"whose body holds {self.q!r}")
        if self.since:
            words.append(f"received since {self.since.isoformat()}")
        if self.until:
            words.append(f"{'and' if self.since else 'received'} before {self.until.isoformat()}")
        return " ".join(word for word in words if word)


def read_filter(params: Mapping[str, str]) -> EventFilter:
    """The filter of a query string; a malformed value raises FilterError naming it."""
    q = (params.get("q") or "").strip() or None
    if q is not None and len(q) > SEARCH_MAX:
        raise FilterError(f"q is {len(q)} characters long: search for at most {SEARCH_MAX}")
    status = params.get("status") or None
    if status is not None and status not in EVENT_STATUSES:
        raise FilterError(f"status {status!r} is not one of {', '.join(EVENT_STATUSES)}")
    event_type = (params.get("type") or "").strip() or None
    if event_type is not None and len(event_type) > 255:
        raise FilterError("type is longer than any event type (255 characters)")
    return EventFilter(
        q=q,
        type=event_type,
        status=status,
        since=read_time(params.get("since"), "since"),
        until=read_time(params.get("until"), "until"),
    )


def read_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or time, UTC unless it says; None when empty."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if len(text) > 40:
        raise FilterError(f"{name} is not a date or time: give ISO 8601, e.g. 2026-12-02T09:00")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(
            f"{name} {text!r} is not a date or time: give ISO 8601, e.g. 2026-12-02T09:00"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_cursor(value: str | None, name: str) -> int | None:
    """A page's position (an event's or a row's sequence number); None when absent."""
    if not value:
        return None
    if not value.isdigit() or len(value) > 19:
        raise FilterError(f"{name} must be a sequence number from a page's link")
    return int(value)


@dataclass(frozen=True)
class Window:
    """A span of time cut into buckets: the last `buckets` times `width` seconds up to `end`."""

    end: datetime
    width: int
    """Seconds per bucket."""
    buckets: int

    @property
    def start(self) -> datetime:
        return self.end - timedelta(seconds=self.width * self.buckets)

    def first_bucket(self) -> int:
        """The bucket number (seconds since the epoch // width) of the window's first."""
        return int(self.start.timestamp()) // self.width + 1


ACTIVITY = (
    ("received", "received"),
    ("processed", "processed"),
    ("failed", "failed"),
)
"""The activity chart's series: (name, CSS class)."""


def activity_series(
    counted: Iterable[tuple[int, str, int]], window: Window
) -> tuple[list[Series], dict[str, int]]:
    """From (bucket number, status, count) of the events received in `window`: a series of
    events received per bucket, and of those since processed and failed; and the totals.
    Buckets without events are zeros, so a quiet minute shows as one."""
    first = window.first_bucket()
    per: dict[str, list[float]] = {name: [0.0] * window.buckets for name, _ in ACTIVITY}
    for bucket, status, n in counted:
        index = bucket - first
        if not 0 <= index < window.buckets:
            continue
        per["received"][index] += n
        if status in ("processed", "failed"):
            per[status][index] += n
    series = [
        Series(name, [(i, value) for i, value in enumerate(per[name])], css)
        for name, css in ACTIVITY
    ]
    return series, {name: int(sum(values)) for name, values in per.items()}


def window_labels(window: Window, count: int = 4) -> list[tuple[float, str]]:
    """Labels along a window's x axis (bucket indexes), as UTC times."""
    form = "%H:%M" if window.width < 3600 else "%m-%d %H:%M"
    labels = []
    for step in range(count + 1):
        index = (window.buckets - 1) * step / count
        at = window.start + timedelta(seconds=window.width * (index + 1))
        labels.append((index, at.strftime(form)))
    return labels
