"""Field types shared by the Voucherify payload models: how lenient, and where strict.

Timestamps accept every shape Voucherify is known to send (3 or 6 fraction digits, bare
dates, the published example's `"2024-05-13T10: 24: 01.084Z"`) and always come out as aware
UTC datetimes. Money and points must be JSON integers: never strings, booleans or fractions.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator
from pydantic import StringConstraints as Text

_SPACES_AFTER_COLON = re.compile(r":\s+")
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PLAIN_ISO = re.compile(r"[0-9T:.+\-Z]+")
"""What nearly every timestamp looks like: nothing to clean before parsing it."""
_STATUS_SEPARATORS = re.compile(r"[\s\-]+")


def parse_timestamp(value: object) -> datetime:
    """An aware UTC datetime from any timestamp shape Voucherify is known to send."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value if _PLAIN_ISO.fullmatch(value) else _cleaned(value)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None
    else:
        raise ValueError(f"expected an ISO 8601 timestamp, got {type(value).__name__}")
    # Voucherify always means UTC; a naive value is read as UTC rather than local time.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _cleaned(value: str) -> str:
    # The published reward-redemption example has "10: 24: 01.084Z"; nothing else puts
    # whitespace after a colon in an ISO 8601 string, so removing it is safe.
    text = _SPACES_AFTER_COLON.sub(":", value.strip())
    if _BARE_DATE.fullmatch(text):
        text += "T00:00:00+00:00"
    return text


def _integral(value: object) -> object:
    # Some JSON encoders write 7000 as 7000.0; that is still an integer amount.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normal_status(value: object) -> object:
    # Events spell "ROLLED BACK" where the API says ROLLED_BACK: compare one spelling only.
    if isinstance(value, str):
        if value.isascii() and value.isidentifier() and value.isupper():
            return value  # spelt the one way already ("PAID", "ROLLED_BACK"): as fast as can be
        return _STATUS_SEPARATORS.sub("_", value.strip()).upper()
    return value


Timestamp = Annotated[datetime, PlainValidator(parse_timestamp)]
Id = Annotated[str, Text(strip_whitespace=True, min_length=1)]
Amount = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=0)]
"""Money (minor units) or points that cannot be negative."""
Figure = Annotated[int, BeforeValidator(_integral), Field(strict=True)]
"""A reported integer that may be negative (a balance gone wrong, a rollback's amount)."""
Status = Annotated[str, BeforeValidator(normal_status)]
"""Upper case, words joined by `_`: `"rolled back"` reads as `ROLLED_BACK`."""


class Model(BaseModel):
    """Every payload model: unknown fields ignored (Voucherify adds some), values frozen."""

    model_config = ConfigDict(extra="ignore", frozen=True)
