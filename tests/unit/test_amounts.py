"""Amounts for people: money from minor units with its currency, points as points."""

from __future__ import annotations

import pytest

from models.amounts import minor_per_unit, money, of_asset, points


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
    assert of_asset(7000, "USD") == "70.00 USD"
    assert of_asset(-5, "USD") == "-0.05 USD"
    assert of_asset(123456789, "EUR") == "1,234,567.89 EUR"
    assert of_asset(1500, "JPY") == "1,500 JPY"  # no minor units
    assert of_asset(1250, "POINTS") == "1,250 points"
    assert of_asset(-1, "POINTS") == "-1 point"


def test_a_currency_s_minor_units_per_unit() -> None:
    assert [minor_per_unit(c) for c in ("USD", "jpy", "KWD", "CLF")] == [100, 1, 1000, 10000]
