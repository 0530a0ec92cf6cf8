"""`voucherhook send`: sign a payload the way Voucherify does and POST it."""

from __future__ import annotations

from pathlib import Path

import httpx

from receiver.signature import HEADER, sign


def send(path: Path, url: str, secret: bytes, event_type: str | None = None) -> httpx.Response:
    body = path.read_bytes()
    if event_type:
        url = f"{url.rstrip('/')}/{event_type}"
    return httpx.post(
        url,
        content=body,
        headers={"content-type": "application/json", HEADER: sign(body, secret)},
        timeout=15,
    )
