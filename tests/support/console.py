"""What the console tests share: every page the console serves, as a test visits it."""

from __future__ import annotations

PAGES = [
    "/console/",
    "/console/events",
    "/console/event?id=x",
    "/console/replay?status=failed",
    "/console/ledger",
    "/console/ledger/account?name=sales",
    "/console/cards",
    "/console/card?id=v_1",
    "/console/notifications",
]
