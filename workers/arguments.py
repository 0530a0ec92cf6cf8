"""The command line's argument types: each turns a string into a value or says, in one line,
what was wrong and what to give instead. Standard library only, so parsing stays instant."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from models.moments import NotAMoment, moment
from workers import sample_events

WHEN = "ISO 8601, or a time ago: 30m, 1h, 2d"
"""What a time argument takes, for its help."""


def timestamp(text: str) -> datetime:
    """An ISO 8601 date (its midnight) or date and time, UTC unless it says; or a time ago
    (`30m`, `1h`, `2d`) counted back from now."""
    try:
        return moment(text, datetime.now(UTC))
    except NotAMoment as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a number from 1 to 65535")
    return int(text)


def customer_id(text: str) -> str:
    value = text.strip()
    if not value or any(ch.isspace() for ch in value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a customer id: give the Voucherify id, e.g. cust_1g637SqVZnkdPNdA"
        )
    if "@" in value:
        raise argparse.ArgumentTypeError(
            f"{text!r} is an email address, not a customer id: give the customer's Voucherify "
            "id (cust_…, shown in Voucherify and in `voucherhook events show`); their addresses "
            "are found from it"
        )
    return value


def sample_name(text: str) -> str:
    """--sample's argument: one of the built-in samples."""
    if text not in sample_events.NAMES:
        raise argparse.ArgumentTypeError(str(sample_events.UnknownSample(text)))
    return text
