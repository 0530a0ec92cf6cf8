"""A client of Voucherify's REST API for reconciliation: the redemptions (and rollbacks) of a
period, a campaign's card transactions, one voucher.

It reads only, pages through lists, and is polite within a run's budget:

- every request carries `X-App-Id` and `X-App-Token` (Project Settings → General →
  Application Keys) and `User-Agent: voucherhook/<version>`;
- 429, 5xx, timeouts and broken connections are retried with exponential backoff (1, 2, 4 …
  seconds, at most 60), or longer when the server asks (`Retry-After` in seconds,
  `X-Rate-Limit-Retry` as Unix epoch seconds; at most 300). Voucherify blocks an account
  that keeps going over its limits, so the client waits rather than hammering;
- every request, retries included, counts toward `max_requests`, since Voucherify counts API
  calls per minute and per billing cycle: once reached, BudgetSpent;
- failures raise ApiError, one line naming the endpoint, the status, Voucherify's own
  message and request id, and what to do. The token is never in a message, a log line or a
  repr.

The items are the API's objects, untouched: reading them is the caller's business.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import structlog

from models.voucherify.api_windows import (
    LAST_PAGE,
    MILLISECOND,
    PAGE_LIMIT,
    WINDOW_CAP,
    api_time,
    parse_api_time,
    split,
    utc,
    whole_ms,
)
from workers.parsing import version

log = structlog.get_logger(__name__)

BUDGET_SETTING = "VOUCHERHOOK_RECONCILE_MAX_REQUESTS"
REGIONS = "https://api.voucherify.io, https://us1.api.voucherify.io, https://as1.api.voucherify.io"
CREDENTIALS = (
    "set VOUCHERIFY_APP_ID and VOUCHERIFY_APP_TOKEN to the Application ID and Secret Key of "
    "Project Settings → General → Application Keys, and VOUCHERIFY_API_URL to your region's "
    f"API ({REGIONS})"
)
BACKOFF_CAP = 60.0
"""The longest wait the client chooses by itself between two attempts, in seconds."""
WAIT_CAP = 300.0
"""The longest wait between two attempts, even when the server asks for more, in seconds."""


class ApiError(Exception):
    """A request to Voucherify failed: one line naming the endpoint, what went wrong and what
    to do. Never contains the token."""


class BudgetSpent(ApiError):
    """The run made as many requests as `max_requests` allows
    (`VOUCHERHOOK_RECONCILE_MAX_REQUESTS`)."""


class NotFound(ApiError):
    """Voucherify answered 404: the resource asked for does not exist (or was deleted)."""


def _voucherify_says(response: httpx.Response) -> str:
    """Voucherify's error body (`message`, `details`, `request_id`) as a short clause, or the
    start of the body when it is not one (a proxy's page, say)."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())[:200]
        return f"the body is not Voucherify's error: {text!r}" if text else "the body is empty"
    if not isinstance(body, dict):
        return f"the body is not Voucherify's error: {str(body)[:200]!r}"
    said = ": ".join(str(body[key]) for key in ("message", "details") if body.get(key))
    if body.get("request_id"):
        said = f"{said} (request {body['request_id']})" if said else f"request {body['request_id']}"
    return said or "the error body says nothing"


def _status(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


class VoucherifyApi:
    """A synchronous client of one Voucherify project. Use it as a context manager, or call
    `close`. `sleep` and `transport` are for tests: a recorder of waits, a fake server."""

    def __init__(
        self,
        url: str,
        app_id: str,
        app_token: str,
        *,
        max_requests: int = 2000,
        retries: int = 6,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = url.strip().rstrip("/")
        if not base.startswith(("https://", "http://")):
            raise ApiError(
                f"VOUCHERIFY_API_URL {url!r} is not an http(s) URL: set it to your region's "
                f"API ({REGIONS})"
            )
        if not app_id or not app_token:
            missing = "VOUCHERIFY_APP_ID" if not app_id else "VOUCHERIFY_APP_TOKEN"
            raise ApiError(f"{missing} is empty: {CREDENTIALS}")
        self.url = base
        self.app_id = app_id
        self.max_requests = max_requests
        self.retries = retries
        self.requests = 0
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base,
            headers={
                "X-App-Id": app_id,
                "X-App-Token": app_token,
                "User-Agent": f"voucherhook/{version()}",
                "Accept": "application/json",
            },
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"VoucherifyApi(url={self.url!r}, app_id={self.app_id!r}, requests={self.requests})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # The lists.

    def redemptions(
        self, since: datetime, until: datetime, *, cap: int = WINDOW_CAP
    ) -> Iterator[dict[str, Any]]:
        """Every redemption and rollback (`object` `redemption_rollback`) created in
        `[since, until)`, oldest first, each once.

        `GET /v1/redemptions?limit=100&page=N&order=created_at`, with `created_at[after]`
        and `created_at[before]`. The first page of a window gives its `total`; a window with
        more than `cap` (9,900: 99 pages of 100) is split (`models.voucherify.api_windows`)
        before it is paged, so no query runs past page 99. The docs do not say whether
        `created_at[after]` and `[before]` include their bound: the query starts a millisecond
        early and the items outside `[since, until)` are dropped here, which is right either
        way. Should a window grow past the cap while it is paged (its end is in the future),
        the rest is asked for from the last time seen."""
        if utc(until) <= utc(since):
            return
        pages_at_most = max(1, min(LAST_PAGE, cap // PAGE_LIMIT))
        pending: deque[tuple[datetime, datetime, set[str] | None]] = deque([(since, until, None)])
        while pending:
            start, end, seen_before = pending.popleft()
            first = self._redemptions_page(start, end, 1)
            if seen_before is None:
                windows = split(start, end, self._total(first), cap)
                if len(windows) > 1:
                    pending.extendleft((a, b, None) for a, b in reversed(windows))
                    continue
            seen = seen_before if seen_before is not None else set()
            page, number, last = first, 1, None
            while True:
                items = _list(page, "redemptions", "GET /v1/redemptions")
                for item in items:
                    at = _created(item)
                    last = at if last is None or at > last else last
                    if item["id"] in seen or not utc(start) <= at < utc(end):
                        continue
                    seen.add(item["id"])
                    yield item
                if len(items) < PAGE_LIMIT or number * PAGE_LIMIT >= self._total(page):
                    break
                if number == pages_at_most:
                    if last is not None and last > utc(start):
                        pending.appendleft((last, end, seen))
                        break
                    raise ApiError(
                        f"GET /v1/redemptions has more than {cap} redemptions at "
                        f"{api_time(start)}, more than paging can reach: list that moment "
                        "with a narrower filter instead"
                    )
                number += 1
                page = self._redemptions_page(start, end, number)

    def campaign_transactions(
        self, campaign_id: str, starting_after_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every card transaction (`vtx_…`) of a gift card or loyalty campaign, oldest first
        (`order=id`), after `starting_after_id` when given: a later run resumes from the last
        one it saw. `GET /v1/campaigns/{id}/transactions?limit=100&order=id`, following
        `more_starting_after` while `has_more`."""
        path = f"/v1/campaigns/{quote(campaign_id, safe='')}/transactions"
        endpoint = f"GET {path}"
        cursor = starting_after_id
        while True:
            params: dict[str, str | int] = {"limit": PAGE_LIMIT, "order": "id"}
            if cursor is not None:
                params["starting_after_id"] = cursor
            page = self._get(path, params)
            items = _list(page, "data", endpoint)
            yield from items
            if not page.get("has_more"):
                return
            following = page.get("more_starting_after") or (items[-1].get("id") if items else None)
            if not isinstance(following, str) or following == cursor:
                raise ApiError(
                    f"{endpoint} says it has more transactions after {cursor or 'the first'} "
                    "but gives no next cursor: run again later, and report it to Voucherify's "
                    "support if it persists"
                )
            cursor = following

    def voucher(self, code: str) -> dict[str, Any]:
        """One voucher by its code or `v_…` id: `GET /v1/vouchers/{code}`. NotFound when
        Voucherify has no such voucher."""
        return self._get(f"/v1/vouchers/{quote(code, safe='')}", {})

    # One request.

    def _redemptions_page(self, since: datetime, until: datetime, page: int) -> dict[str, Any]:
        return self._get(
            "/v1/redemptions",
            {
                "limit": PAGE_LIMIT,
                "page": page,
                "order": "created_at",
                "created_at[after]": api_time(whole_ms(since) - MILLISECOND),
                "created_at[before]": api_time(until),
            },
        )

    def _total(self, page: dict[str, Any]) -> int:
        total = page.get("total")
        if not isinstance(total, int):
            raise ApiError(
                "GET /v1/redemptions answered without a numeric total: check that "
                f"VOUCHERIFY_API_URL ({self.url}) is Voucherify's API"
            )
        return total

    def _get(self, path: str, params: dict[str, str | int]) -> dict[str, Any]:
        """The JSON object `GET path` answers, retrying what a retry may mend."""
        endpoint = f"GET {path}"
        for attempt in range(self.retries + 1):
            if self.requests >= self.max_requests:
                raise BudgetSpent(
                    f"{endpoint} not sent: this run made {self.requests} requests to "
                    f"Voucherify, the most it may make; raise {BUDGET_SETTING} to allow more, "
                    "or reconcile a shorter period"
                )
            self.requests += 1
            last_try = attempt == self.retries
            try:
                response = self._client.get(path, params=params)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if last_try:
                    raise ApiError(
                        f"{endpoint} could not reach Voucherify at {self.url} after "
                        f"{attempt + 1} attempts ({problem}): check VOUCHERIFY_API_URL and "
                        "the network, then run again"
                    ) from None
                self._wait(endpoint, type(exc).__name__, attempt, None)
                continue
            status = response.status_code
            if status == 401:
                raise ApiError(
                    f"Voucherify refused the credentials ({_status(response)}) for {endpoint}: "
                    f"{CREDENTIALS}"
                )
            if status == 403:
                raise ApiError(
                    f"Voucherify refused {endpoint} ({_status(response)}: "
                    f"{_voucherify_says(response)}): check that the application key may read it "
                    f"(its permissions and IP whitelist), or {CREDENTIALS}"
                )
            if status == 429 or status >= 500:
                if last_try:
                    raise ApiError(
                        f"{endpoint} failed with {_status(response)} after {attempt + 1} "
                        f"attempts: {_voucherify_says(response)}; run again later"
                        + (
                            ", or with fewer other API calls at the same time"
                            if status == 429
                            else ""
                        )
                    )
                self._wait(endpoint, status, attempt, response)
                continue
            if status == 404:
                raise NotFound(
                    f"{endpoint} answered {_status(response)}: {_voucherify_says(response)}; "
                    "check the code or id, and that VOUCHERIFY_API_URL is your project's region"
                )
            if status >= 300:
                raise ApiError(
                    f"{endpoint} answered {_status(response)}: {_voucherify_says(response)}; "
                    "the request was refused as it was made: report it with the request id"
                )
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise ApiError(
                    f"{endpoint} answered {_status(response)} without a JSON object: check that "
                    f"VOUCHERIFY_API_URL ({self.url}) is Voucherify's API ({REGIONS})"
                )
            return body
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait(
        self, endpoint: str, status: int | str, attempt: int, response: httpx.Response | None
    ) -> None:
        """Sleep before the next attempt: the backoff, or what the server asks when longer."""
        wait = min(BACKOFF_CAP, 2.0**attempt)
        if response is not None:
            wait = max(wait, _asked_wait(response))
        wait = min(WAIT_CAP, wait)
        log.warning(
            "voucherify_api_retry", endpoint=endpoint, status=status, wait=wait, attempt=attempt + 1
        )
        self._sleep(wait)


def _asked_wait(response: httpx.Response) -> float:
    """The seconds the server asks to wait: `Retry-After` (seconds) or `X-Rate-Limit-Retry`
    (Unix epoch seconds of the next allowed request), the longer of the two; 0 if neither."""
    asked = 0.0
    retry_after = response.headers.get("Retry-After")
    # An HTTP date in Retry-After, or a header that is not a number: the backoff stands.
    if retry_after:
        with contextlib.suppress(ValueError):
            asked = max(asked, float(retry_after))
    epoch = response.headers.get("X-Rate-Limit-Retry")
    if epoch:
        with contextlib.suppress(ValueError):
            asked = max(asked, float(epoch) - time.time())
    return asked


def _list(page: dict[str, Any], key: str, endpoint: str) -> list[dict[str, Any]]:
    items = page.get(key)
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and isinstance(item.get("id"), str) for item in items
    ):
        raise ApiError(
            f"{endpoint} answered without a list of objects with ids under {key!r}: check that "
            "VOUCHERIFY_API_URL is Voucherify's API"
        )
    return items


def _created(item: dict[str, Any]) -> datetime:
    """When a redemption or rollback was made: its `created_at`, else its `date` (the field
    the published examples carry)."""
    text = item.get("created_at") or item.get("date")
    if not isinstance(text, str):
        raise ApiError(
            f"GET /v1/redemptions returned {item.get('id')} without a created_at or date: "
            "report it to Voucherify's support with that id"
        )
    try:
        return parse_api_time(text)
    except ValueError as exc:
        raise ApiError(
            f"GET /v1/redemptions returned {item.get('id')} with a time that is not one "
            f"({exc}): report it to Voucherify's support with that id"
        ) from None
