"""Sign a payload the way Voucherify does and POST it: what `voucherhook send` does."""

from __future__ import annotations

import httpx

from receiver.signature import HEADER, sign


def post(body: bytes, url: str, secret: bytes, event_type: str | None = None) -> httpx.Response:
    """POST `body` signed with `secret`; a raw payload's `event_type` goes in the URL."""
    if event_type:
        url = f"{url.rstrip('/')}/{event_type}"
    return httpx.post(
        url,
        content=body,
        headers={"content-type": "application/json", HEADER: sign(body, secret)},
        timeout=15,
    )
