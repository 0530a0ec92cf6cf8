"""Amounts as a person reads them: money from integer minor units with its currency
(`70.00 USD`), points as points (`1,200 points`). Stored and `--json` amounts stay integers;
this is for tables and sentences only."""

from __future__ import annotations

from models.journal import POINTS

# ISO 4217 minor units of the currencies that do not have two (the list's "Minor unit"
# column). A code not named here has two, as most do.
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
            "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip


def minor_per_unit(currency: str) -> int:
    """Minor units in one unit of the currency: 100 for USD, 1 for JPY, 1000 for KWD."""
    return int(10 ** MINOR_UNITS.get(currency.upper(), 2))


def money(minor: int, currency: str) -> str:
    """`7000, "USD"` → `70.00 USD`; `-150, "JPY"` → `-150 JPY`; thousands grouped by commas."""
    places = MINOR_UNITS.get(currency.upper(), 2)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**places)
    shown = f"{whole:,}" + (f".{fraction:0{places}d}" if places else "")
    return f"{sign}{shown} {currency}"


def points(count: int) -> str:
    """`1200` → `1,200 points`; `1` → `1 point`."""
    return f"{count:,} point{'' if abs(count) == 1 else 's'}"


def of_asset(amount: int, asset: str) -> str:
    """A ledger balance in its asset: points for POINTS, money for a currency code."""
    return points(amount) if asset == POINTS else money(amount, asset)
