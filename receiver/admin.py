"""The operators' side of the receiver: readiness and metrics, fit to face the internet.

`/metrics` (and any later admin page) needs `Authorization: Bearer VOUCHERHOOK_ADMIN_TOKEN`;
with no token configured it is off. `/readyz` says what is down, never where: the detail goes
to the log. Both answer from a result at most a second old, computed by one request at a time,
so a flood of them costs the database one query a second.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.errors import first_line
from receiver.limits import Throttled

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Cached(Generic[T]):
    """`compute` run in a thread by one caller at a time; its result reused for `ttl` s."""

    def __init__(self, compute: Callable[[], T], ttl: float = 1.0) -> None:
        self._compute = compute
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._value: T | None = None
        self._at = float("-inf")

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._at < self._ttl:
            return self._value
        async with self._lock:
            if self._value is None or time.monotonic() - self._at >= self._ttl:
                self._value = await run_in_threadpool(self._compute)
                self._at = time.monotonic()
            return self._value


def refusal(token: str | None, request: Request) -> Response | None:
    """None when the request carries the admin token; else the answer that refuses it."""
    if token is None:
        return JSONResponse(
            {
                "status": "forbidden",
                "error": f"{request.url.path} is off: set VOUCHERHOOK_ADMIN_TOKEN and send it "
                "as `Authorization: Bearer <token>`",
            },
            status_code=403,
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode()
    ):
        return None
    _log_refused(path=request.url.path)
    return JSONResponse(
        {
            "status": "unauthorized",
            "error": "missing or wrong admin token: send `Authorization: Bearer <token>` with "
            "the value of VOUCHERHOOK_ADMIN_TOKEN",
        },
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


_log_refused = Throttled(lambda **fields: log.warning("admin_unauthorized", **fields))


def state_of(name: str, check: Callable[[], None]) -> Callable[[], str]:
    """A readiness check that answers "ok" or "unavailable" and logs why (throttled)."""
    throttled = Throttled(lambda **fields: log.warning("not_ready", **fields))

    def state() -> str:
        try:
            check()
        except Exception as exc:
            throttled(part=name, error=first_line(exc))
            return "unavailable"
        return "ok"

    return state
