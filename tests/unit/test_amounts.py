"""Amounts for people: money from minor units with its currency, points as points."""

from __future__ import annotations

import pytest

from models.amounts import money, of_asset, points


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (7000, "USD", "70.00 USD"),
        (-7000, "USD", "-70.00 USD"),
        (5, "EUR", "0.05 EUR"),
        (-5, "EUR", "-0.05 EUR"),
        (0, "USD", "0.00 USD"),
        (123456789, "USD", "1,234,567.89 USD"),
        (1500, "JPY", "1,500 JPY"),
        (1500, "KWD", "1.500 KWD"),
        (10000, "CLF", "1.0000 CLF"),
    ],
)
def test_money_is_minor_units_in_the_currency_s_decimals(
    minor: int, currency: str, shown: str
) -> None:
    assert money(minor, currency) == shown


def test_points_are_counted_as_points() -> None:
    assert points(1200) == "1,200 points"
    assert points(1) == "1 point"
    assert points(-1) == "-1 point"
    assert points(0) == "0 points"


def test_a_ledger_balance_is_shown_in_its_asset() -> None:
    assert of_asset(-7000, "USD") == "-70.00 USD"
    assert of_asset(40, "POINTS") == "40 points"
