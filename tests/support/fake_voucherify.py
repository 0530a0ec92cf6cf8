"""A fake of Voucherify's REST API for tests: a real HTTP server on 127.0.0.1, answering the
list endpoints a reconciliation reads as the published API does (docs in
`voucherifyio/voucherify-openapi`; the response examples are in `tests/fixtures/voucherify/`).

- `GET /v1/redemptions`: `limit` 1 to 100 (default 10), `page` 1 to 99, `order` `created_at` or
  `-created_at` (default: newest first), `created_at[after]` and `created_at[before]`;
  answers `{"object": "list", "data_ref": "redemptions", "redemptions": […], "total": N}`.
  The docs do not say whether the bounds are inclusive: strict here, or inclusive with
  `inclusive_bounds=True`.
- `GET /v1/campaigns/{id}/transactions`: `limit`, `order` `id` or `-id` (default newest
  first, as every example), `starting_after_id`; answers `{"object": "list", "data_ref": "data",
  "data": […], "has_more": …, "more_starting_after": "vtx_…"}` (the last only when has_more).
- `GET /v1/vouchers/{code}`: the voucher, or 404 `not_found`.

Every request must carry `X-App-Id` and `X-App-Token`, else 401 with Voucherify's error body.
Tests script faults (`fail_next`, `hang_up_next`) and read every request (`requests`).
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from models.voucherify.api_windows import api_time, parse_api_time
from tests.support.payloads import FIXTURES
from tests.support.services import free_port

Json = dict[str, Any]


@dataclass(frozen=True)
class Request:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Fault:
    """A scripted answer to the next request: a status with an error body, or a hang-up."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: Json | None = None


def _error(code: int, key: str, message: str, details: str) -> Json:
    return {
        "code": code,
        "key": key,
        "message": message,
        "details": details,
        "request_id": f"v-{uuid.uuid4().hex[:18]}",
    }


def _fixture(name: str) -> Json:
    data: Json = json.loads((FIXTURES / name).read_text())
    return data


def _time(item: Json) -> datetime:
    return parse_api_time(item.get("created_at") or item["date"])


class FakeVoucherify:
    """The fake API. `with FakeVoucherify() as api:` starts it on a free port; `api.url` is its
    base URL, `api.app_id` and `api.app_token` the credentials it accepts."""

    def __init__(
        self,
        *,
        app_id: str = "fake-app-id",
        app_token: str = "fake-secret-token-0123456789",
        inclusive_bounds: bool = False,
    ) -> None:
        self.app_id = app_id
        self.app_token = app_token
        self.inclusive_bounds = inclusive_bounds
        self.redemptions: list[Json] = []
        self.transactions: dict[str, list[Json]] = {}
        self.vouchers: dict[str, Json] = {}
        self.requests: list[Request] = []
        self.after_answer: Callable[[Request], None] | None = None
        """Called once a request is answered: a test may change the data between pages."""
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Scripting.

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        rate_limit_retry: float | None = None,
        body: Json | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` requests get `status` with Voucherify's error body (or `body`),
        and `Retry-After` (seconds) / `X-Rate-Limit-Retry` (epoch seconds) when given."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if rate_limit_retry is not None:
            headers["X-Rate-Limit-Retry"] = f"{rate_limit_retry:.0f}"
        if body is None:
            if status == 429:
                body = _error(429, "too_many_requests", "Too many requests", "API limit reached")
            else:
                body = _error(status, "error", "Internal error", f"a scripted {status}")
        with self._lock:
            self._faults.extend(Fault(status, headers, body) for _ in range(times))

    def hang_up_next(self, times: int = 1) -> None:
        """The next `times` requests are read, then the connection is closed unanswered."""
        with self._lock:
            self._faults.extend(Fault(None) for _ in range(times))

    def requests_to(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    # The server.

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                request = Request("GET", unquote(parts.path), query, dict(self.headers.items()))
                with api._lock:
                    api.requests.append(request)
                    fault = api._faults.popleft() if api._faults else None
                if fault is not None and fault.status is None:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault is not None:
                    self._answer(fault.status or 500, fault.body or {}, fault.headers)
                    return
                status, body = api.answer(request)
                self._answer(status, body, {})
                if api.after_answer is not None:
                    api.after_answer(request)

            def _answer(self, status: int, body: Json, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def answer(self, request: Request) -> tuple[int, Json]:
        """The status and body the API gives `request`."""
        if (
            request.headers.get("X-App-Id") != self.app_id
            or request.headers.get("X-App-Token") != self.app_token
        ):
            return 401, _error(
                401, "unauthorized", "Unauthorized", "Provide valid X-App-Id and X-App-Token"
            )
        path = request.path.rstrip("/").split("/")
        try:
            if path == ["", "v1", "redemptions"]:
                return 200, self._list_redemptions(request.query)
            if len(path) == 5 and path[:3] == ["", "v1", "campaigns"] and path[4] == "transactions":
                return 200, self._list_transactions(path[3], request.query)
            if len(path) == 4 and path[:3] == ["", "v1", "vouchers"]:
                if path[3] not in self.vouchers:
                    return 404, _error(
                        404,
                        "not_found",
                        "Resource not found",
                        f"Cannot find voucher with id {path[3]}",
                    )
                return 200, self.vouchers[path[3]]
        except _Invalid as invalid:
            return 400, _error(400, "invalid_payload", "Invalid payload", str(invalid))
        return 404, _error(404, "not_found", "Resource not found", f"No route {request.path}")

    def _list_redemptions(self, query: dict[str, str]) -> Json:
        limit = _integer(query, "limit", 10, 1, 100)
        page = _integer(query, "page", 1, 1, 99)
        order = query.get("order", "-created_at")
        if order not in ("created_at", "-created_at"):
            raise _Invalid(f"order {order!r} is not supported here")
        items = self.redemptions
        after, before = query.get("created_at[after]"), query.get("created_at[before]")
        if after is not None:
            low = _bound(after, "created_at[after]")
            items = [i for i in items if _time(i) > low or self._on(_time(i), low)]
        if before is not None:
            high = _bound(before, "created_at[before]")
            items = [i for i in items if _time(i) < high or self._on(_time(i), high)]
        items = sorted(items, key=lambda item: (_time(item), item["id"]), reverse=order[0] == "-")
        return {
            "object": "list",
            "data_ref": "redemptions",
            "redemptions": copy.deepcopy(items[(page - 1) * limit : page * limit]),
            "total": len(items),
        }

    def _on(self, at: datetime, bound: datetime) -> bool:
        """An item at a bound is listed only when the bounds are taken as inclusive."""
        return self.inclusive_bounds and at == bound

    def _list_transactions(self, campaign_id: str, query: dict[str, str]) -> Json:
        limit = _integer(query, "limit", 10, 1, 100)
        order = query.get("order", "-id")
        if order not in ("id", "-id"):
            raise _Invalid(f"order {order!r} is not one of id, -id")
        items = sorted(
            self.transactions.get(campaign_id, []), key=lambda t: t["id"], reverse=order == "-id"
        )
        cursor = query.get("starting_after_id")
        if cursor is not None:
            items = [t for t in items if (t["id"] > cursor if order == "id" else t["id"] < cursor)]
        shown = items[:limit]
        body: Json = {"object": "list", "data_ref": "data", "data": copy.deepcopy(shown)}
        body["has_more"] = len(items) > limit
        if body["has_more"]:
            body["more_starting_after"] = shown[-1]["id"]
        return body


class _Invalid(ValueError):
    pass


def _integer(query: dict[str, str], name: str, default: int, least: int, most: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _Invalid(f"{name} should be an integer, not {text!r}") from None
    if not least <= value <= most:
        raise _Invalid(f"{name} should be between {least} and {most}, not {value}")
    return value


def _bound(text: str, name: str) -> datetime:
    try:
        return parse_api_time(text)
    except ValueError:
        raise _Invalid(f"{name} should be an ISO 8601 date or time, not {text!r}") from None


# Items shaped like the published examples.

_ids = itertools.count(1)


def _hex_id(prefix: str, at: datetime) -> str:
    """An id like Voucherify's (`r_0c0469eaf705889d99`): time-ordered, then a counter."""
    return f"{prefix}_{int(at.timestamp() * 1000):011x}{next(_ids):07x}"


def redemption(at: datetime, *, amount: int = 300, result: str = "SUCCESS") -> Json:
    """A gift card redemption made at `at`, built on the published `GET /v1/redemptions`
    example item that redeems gift credits (`r_0ba9fa02fcd28ed8f1`)."""
    example = next(
        item
        for item in _fixture("get-v1-redemptions.response-example.json")["redemptions"]
        if "gift" in item
    )
    item = copy.deepcopy(example)
    item.update(
        id=_hex_id("r" if result == "SUCCESS" else "rf", at),
        date=api_time(at),
        result=result,
        status="SUCCEEDED" if result == "SUCCESS" else "FAILED",
        amount=amount,
        redemption=None,
        gift={"amount": amount},
    )
    return item


def rollback(of: Json, at: datetime) -> Json:
    """A rollback of `of` made at `at`, built on the published gift card rollback example."""
    item = _fixture("post-v1-redemptions-rollback.gift-card.response-example.json")
    amount = -int(of.get("amount") or 0)
    item.update(
        id=_hex_id("rr", at),
        date=api_time(at),
        redemption=of["id"],
        result="SUCCESS",
        status="SUCCEEDED",
        amount=amount,
        gift={"amount": amount},
    )
    return item


def transaction(campaign_id: str, at: datetime, *, points: int = 10) -> Json:
    """A loyalty transaction of a campaign, built on the published campaign transactions
    example's first item; ids grow with `at` (`vtx_…`)."""
    item = copy.deepcopy(_fixture("get-v1-campaign-transactions.response-example.json")["data"][0])
    item.update(id=_hex_id("vtx", at), campaign_id=campaign_id, created_at=api_time(at))
    item["details"]["balance"]["points"] = points
    return item


def spread(since: datetime, count: int, step: timedelta = timedelta(seconds=1)) -> list[datetime]:
    """`count` times from `since`, `step` apart."""
    return [since + step * n for n in range(count)]


EPOCH = datetime(2024, 5, 1, tzinfo=UTC)
