"""The times a person gives the command line: an ISO 8601 date or time, or a time ago
(`30m`, `1h`, `2d`, `1h30m`). Pure: the caller passes the present."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGO = re.compile(r"(?:\d{1,9}[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")

EXAMPLES = "2024-05-13, 2024-05-13T12:00:00Z, or a time ago such as 30m, 1h, 2d"


class NotAMoment(ValueError):
    """The text is neither an ISO 8601 date or time nor a time ago; says what to give."""

    def __init__(
        self, text: str, reason: str = "is not an ISO 8601 date or time nor a time ago"
    ) -> None:
        super().__init__(f"{text!r} {reason}: give {EXAMPLES}")


def moment(text: str, now: datetime) -> datetime:
    """`text` as an aware time: an ISO 8601 date (its midnight) or date and time, UTC unless
    it says; or that long before `now` (s, m, h, d, w: seconds to weeks; `30m` is minutes)."""
    given = text.strip()
    if _AGO.fullmatch(given.lower()):
        try:
            return now - ago(given)
        except OverflowError:
            raise NotAMoment(text, "is further back than a calendar goes") from None
    try:
        value = datetime.fromisoformat(given)
    except ValueError:
        raise NotAMoment(text) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ago(text: str) -> timedelta:
    """`1h30m` → 90 minutes. NotAMoment unless it is made of such parts only."""
    given = text.strip().lower()
    if not _AGO.fullmatch(given):
        raise NotAMoment(text)
    try:
        return sum(
            (timedelta(**{UNITS[unit]: int(count)}) for count, unit in _PART.findall(given)),
            timedelta(),
        )
    except OverflowError:
        raise NotAMoment(text, "is further back than a calendar goes") from None
