"""Double-entry primitives: postings, keyed transactions, conflicts, and folding into balances.

A posting is signed, debit positive, in integer minor units (or points). A transaction's
postings sum to zero per asset, checked when it is built, so an unbalanced transaction
cannot exist. Its key is an idempotency key built from Voucherify ids: the same key again
is a no-op, the same key with other postings is a conflict to surface. The posting rules
that produce transactions from events are in `models.ledger`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

POINTS = "POINTS"
"""The asset of loyalty points; the other asset is the configured currency."""


@dataclass(frozen=True, order=True)
class Posting:
    account: str
    asset: str
    amount: int
    """Signed, debit positive."""

    def __post_init__(self) -> None:
        if not self.account or not self.asset:
            raise ValueError(f"a posting needs an account and an asset: {self!r}")
        # bool is an int subclass; True as an amount is always a bug upstream. (A plain int,
        # nearly always, is told apart first: a rebuild makes millions of postings.)
        amount = self.amount
        if type(amount) is not int and (not isinstance(amount, int) or isinstance(amount, bool)):
            raise TypeError(f"a posting amount is an integer, got {amount!r}")

    def reversed(self) -> Posting:
        return Posting(self.account, self.asset, -self.amount)


@dataclass(frozen=True)
class Transaction:
    """Postings booked together under one idempotency key; balanced per asset."""

    key: str
    postings: tuple[Posting, ...]
    memo: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a transaction needs an idempotency key")
        if not self.postings:
            raise ValueError(f"{self.key}: a transaction needs postings")
        # A zero posting records nothing and would make "same postings" depend on noise.
        if any(posting.amount == 0 for posting in self.postings):
            raise ValueError(f"{self.key}: zero-amount posting")
        unbalanced = {asset: total for asset, total in asset_totals(self.postings).items() if total}
        if unbalanced:
            raise ValueError(f"{self.key}: postings do not sum to zero per asset: {unbalanced}")

    def reversal(self, key: str, memo: str = "") -> Transaction:
        """The exact inverse, under its own key: history is corrected, never edited."""
        return Transaction(key, tuple(p.reversed() for p in self.postings), memo)


def asset_totals(postings: Iterable[Posting]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for posting in postings:
        totals[posting.asset] = totals.get(posting.asset, 0) + posting.amount
    return totals


def same_postings(a: Transaction, b: Transaction) -> bool:
    """Whether two transactions book the same thing, whatever the order of their postings."""
    return sorted(a.postings) == sorted(b.postings)


def is_conflict(stored: Transaction, incoming: Transaction) -> bool:
    """Same key, different postings: record and surface it, never apply or ignore it.

    Memos are prose and never make a conflict.
    """
    return stored.key == incoming.key and not same_postings(stored, incoming)


@dataclass(frozen=True)
class Conflict:
    key: str
    kept: Transaction
    refused: Transaction


@dataclass(frozen=True)
class Journal:
    """The ledger folded from transactions: the first of each key wins."""

    transactions: Mapping[str, Transaction] = field(default_factory=lambda: MappingProxyType({}))
    conflicts: tuple[Conflict, ...] = ()

    def balances(self) -> dict[tuple[str, str], int]:
        """(account, asset) -> the sum of its postings, for every account touched."""
        totals: Counter[tuple[str, str]] = Counter()
        for transaction in self.transactions.values():
            for posting in transaction.postings:
                totals[(posting.account, posting.asset)] += posting.amount
        return dict(totals)


def fold(transactions: Iterable[Transaction]) -> Journal:
    """Apply transactions in order, as the database does with its unique key on `key`.

    Repeats of a key are no-ops; a repeat with other postings is kept aside as a conflict.
    """
    booked: dict[str, Transaction] = {}
    found: list[Conflict] = []
    for transaction in transactions:
        kept = booked.setdefault(transaction.key, transaction)
        if is_conflict(kept, transaction):
            found.append(Conflict(transaction.key, kept, transaction))
    return Journal(MappingProxyType(booked), tuple(found))


def balances(transactions: Iterable[Transaction]) -> dict[tuple[str, str], int]:
    """(account, asset) -> balance after folding `transactions` (first of each key wins)."""
    return fold(transactions).balances()
