"""The client of Voucherify's API against a fake of the API over real HTTP
(`tests/support/fake_voucherify.py`): paging, windows under the page cap, cursors, the
credentials, retries, and the request budget."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from tests.support.fake_voucherify import (
    EPOCH,
    FakeVoucherify,
    Request,
    redemption,
    rollback,
    spread,
    transaction,
)
from workers.parsing import version
from workers.voucherify_api import ApiError, BudgetSpent, NotFound, VoucherifyApi

DAY = timedelta(days=1)


@pytest.fixture
def api() -> Iterator[FakeVoucherify]:
    with FakeVoucherify() as fake:
        yield fake


class Waits(list[float]):
    """A `sleep` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(api: FakeVoucherify, **options: Any) -> VoucherifyApi:
    options.setdefault("sleep", Waits())
    return VoucherifyApi(api.url, api.app_id, api.app_token, timeout=5.0, **options)


def test_250_redemptions_come_in_three_pages_of_100_oldest_first(api: FakeVoucherify) -> None:
    api.redemptions = [redemption(at) for at in reversed(spread(EPOCH, 250))]
    with client(api) as voucherify:
        listed = list(voucherify.redemptions(EPOCH, EPOCH + DAY))
        assert voucherify.requests == 3
    assert [item["id"] for item in listed] == sorted(item["id"] for item in api.redemptions)
    pages = api.requests_to("/v1/redemptions")
    assert [request.query["page"] for request in pages] == ["1", "2", "3"]
    assert {request.query["limit"] for request in pages} == {"100"}
    assert {request.query["order"] for request in pages} == {"created_at"}
    assert {request.query["created_at[before]"] for request in pages} == {
        "2024-05-02T00:00:00.000Z"
    }


def test_items_are_the_api_objects_untouched(api: FakeVoucherify) -> None:
    api.redemptions = [redemption(EPOCH)]
    with client(api) as voucherify:
        assert list(voucherify.redemptions(EPOCH, EPOCH + DAY)) == api.redemptions


def test_the_window_is_half_open_whichever_way_the_api_takes_its_bounds() -> None:
    for inclusive in (False, True):
        with FakeVoucherify(inclusive_bounds=inclusive) as api:
            at_start, inside = redemption(EPOCH), redemption(EPOCH + DAY / 2)
            at_end = redemption(EPOCH + DAY)
            api.redemptions = [at_start, inside, at_end, redemption(EPOCH - timedelta(seconds=1))]
            with client(api) as voucherify:
                listed = list(voucherify.redemptions(EPOCH, EPOCH + DAY))
            assert [item["id"] for item in listed] == [at_start["id"], inside["id"]], inclusive


def test_a_window_over_the_cap_is_split_so_no_query_runs_past_its_last_page(
    api: FakeVoucherify,
) -> None:
    api.redemptions = [redemption(at) for at in spread(EPOCH, 120, timedelta(minutes=10))]
    with client(api) as voucherify:
        listed = list(voucherify.redemptions(EPOCH, EPOCH + DAY, cap=100))
    assert [item["id"] for item in listed] == [item["id"] for item in api.redemptions]
    queries = [request.query for request in api.requests_to("/v1/redemptions")]
    # The whole day counts 120: it is halved, and each half fits one page of 100.
    assert [(q["created_at[after]"], q["created_at[before]"], q["page"]) for q in queries] == [
        ("2024-04-30T23:59:59.999Z", "2024-05-02T00:00:00.000Z", "1"),
        ("2024-04-30T23:59:59.999Z", "2024-05-01T12:00:00.000Z", "1"),
        ("2024-05-01T11:59:59.999Z", "2024-05-02T00:00:00.000Z", "1"),
    ]


def test_rollbacks_are_listed_with_redemptions_oldest_first(api: FakeVoucherify) -> None:
    first = redemption(EPOCH + timedelta(hours=1), amount=500)
    second = redemption(EPOCH + timedelta(hours=2))
    undo = rollback(first, EPOCH + timedelta(hours=3))
    api.redemptions = [undo, second, first]
    with client(api) as voucherify:
        listed = list(voucherify.redemptions(EPOCH, EPOCH + DAY))
    assert [(item["id"], item["object"]) for item in listed] == [
        (first["id"], "redemption"),
        (second["id"], "redemption"),
        (undo["id"], "redemption_rollback"),
    ]
    assert listed[2]["redemption"] == first["id"] and listed[2]["amount"] == -500


def test_campaign_transactions_follow_the_cursor_oldest_first(api: FakeVoucherify) -> None:
    made = [transaction("camp_1", at) for at in spread(EPOCH, 230)]
    api.transactions = {"camp_1": list(reversed(made)), "camp_2": [transaction("camp_2", EPOCH)]}
    with client(api) as voucherify:
        listed = list(voucherify.campaign_transactions("camp_1"))
        resumed = list(
            voucherify.campaign_transactions("camp_1", starting_after_id=made[199]["id"])
        )
    assert [t["id"] for t in listed] == [t["id"] for t in made]
    assert [t["id"] for t in resumed] == [t["id"] for t in made[200:]]
    queries = [r.query for r in api.requests_to("/v1/campaigns/camp_1/transactions")]
    assert [q.get("starting_after_id") for q in queries[:3]] == [
        None,
        made[99]["id"],
        made[199]["id"],
    ]
    assert {(q["limit"], q["order"]) for q in queries} == {("100", "id")}


def test_a_voucher_by_code_and_a_missing_one(api: FakeVoucherify) -> None:
    api.vouchers = {"GIFT-1": {"id": "v_1", "code": "GIFT-1", "gift": {"balance": 700}}}
    with client(api) as voucherify:
        assert voucherify.voucher("GIFT-1")["gift"] == {"balance": 700}
        with pytest.raises(NotFound, match=r"GET /v1/vouchers/NOPE answered 404.*Cannot find"):
            voucherify.voucher("NOPE")


def test_every_request_carries_the_keys_and_the_user_agent(api: FakeVoucherify) -> None:
    with client(api) as voucherify:
        list(voucherify.redemptions(EPOCH, EPOCH + DAY))
    (request,) = api.requests
    assert request.headers["X-App-Id"] == api.app_id
    assert request.headers["X-App-Token"] == api.app_token
    assert request.headers["User-Agent"] == f"voucherhook/{version()}"


def test_a_wrong_token_names_the_settings_and_never_the_token(api: FakeVoucherify) -> None:
    wrong = "wrong-secret-token-do-not-print"
    voucherify = VoucherifyApi(api.url, api.app_id, wrong, sleep=Waits())
    with voucherify, pytest.raises(ApiError) as refused:
        list(voucherify.redemptions(EPOCH, EPOCH + DAY))
    message = str(refused.value)
    assert message.startswith("Voucherify refused the credentials (401 Unauthorized)")
    assert "VOUCHERIFY_APP_ID" in message and "VOUCHERIFY_APP_TOKEN" in message
    assert "https://us1.api.voucherify.io" in message
    assert wrong not in message and wrong not in repr(voucherify)
    assert "\n" not in message
    assert voucherify.requests == 1  # refused credentials are not retried


def test_a_429_waits_what_retry_after_asks_then_succeeds(api: FakeVoucherify) -> None:
    api.redemptions = [redemption(EPOCH)]
    api.fail_next(429, retry_after=7)
    waits = Waits()
    with client(api, sleep=waits) as voucherify, capture_logs() as logs:
        assert len(list(voucherify.redemptions(EPOCH, EPOCH + DAY))) == 1
        assert voucherify.requests == 2
    assert waits == [7.0]
    (retry,) = [line for line in logs if line["event"] == "voucherify_api_retry"]
    assert retry["endpoint"] == "GET /v1/redemptions"
    assert retry["status"] == 429 and retry["wait"] == 7.0
    assert api.app_token not in repr(logs)


def test_a_429_honours_x_rate_limit_retry(api: FakeVoucherify) -> None:
    api.fail_next(429, rate_limit_retry=time.time() + 20)
    waits = Waits()
    with client(api, sleep=waits) as voucherify:
        list(voucherify.redemptions(EPOCH, EPOCH + DAY))
    (wait,) = waits
    assert 17 < wait <= 21


def test_a_server_that_asks_too_long_a_wait_is_capped(api: FakeVoucherify) -> None:
    api.fail_next(429, retry_after=86400)
    waits = Waits()
    with client(api, sleep=waits) as voucherify:
        list(voucherify.redemptions(EPOCH, EPOCH + DAY))
    assert waits == [300.0]


def test_503s_and_a_broken_connection_back_off_then_succeed(api: FakeVoucherify) -> None:
    api.redemptions = [redemption(EPOCH)]
    api.fail_next(503, times=2)
    api.hang_up_next()
    waits = Waits()
    with client(api, sleep=waits) as voucherify:
        assert len(list(voucherify.redemptions(EPOCH, EPOCH + DAY))) == 1
    assert waits == [1.0, 2.0, 4.0]


def test_retries_exhausted_name_the_endpoint_and_status(api: FakeVoucherify) -> None:
    api.fail_next(503, times=4)
    waits = Waits()
    with client(api, sleep=waits, retries=3) as voucherify, pytest.raises(ApiError) as failed:
        list(voucherify.campaign_transactions("camp_1"))
    message = str(failed.value)
    assert "GET /v1/campaigns/camp_1/transactions failed with 503" in message
    assert "after 4 attempts" in message and "request v-" in message
    assert "run again later" in message
    assert waits == [1.0, 2.0, 4.0]
    assert api.app_token not in message


def test_the_backoff_is_capped_at_a_minute(api: FakeVoucherify) -> None:
    api.fail_next(500, times=8)
    waits = Waits()
    # After 8 failures the 9th attempt reaches the route: there is no voucher X.
    with client(api, sleep=waits, retries=8) as voucherify, pytest.raises(NotFound):
        voucherify.voucher("X")
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_the_request_budget_stops_the_run(api: FakeVoucherify) -> None:
    api.redemptions = [redemption(at) for at in spread(EPOCH, 250)]
    with client(api, max_requests=2) as voucherify:
        listed = voucherify.redemptions(EPOCH, EPOCH + DAY)
        with pytest.raises(BudgetSpent) as spent:
            list(listed)
        assert voucherify.requests == 2
    assert "made 2 requests" in str(spent.value)
    assert "VOUCHERHOOK_RECONCILE_MAX_REQUESTS" in str(spent.value)
    assert len(api.requests) == 2


def test_retries_count_toward_the_budget(api: FakeVoucherify) -> None:
    api.fail_next(503, times=3)
    with client(api, max_requests=3) as voucherify, pytest.raises(BudgetSpent):
        voucherify.voucher("X")
    assert len(api.requests) == 3


def test_a_url_that_is_not_http_is_refused_at_once() -> None:
    with pytest.raises(ApiError, match=r"VOUCHERIFY_API_URL 'api\.voucherify\.io' is not an http"):
        VoucherifyApi("api.voucherify.io", "id", "token")


def test_the_fake_refuses_what_the_api_refuses(api: FakeVoucherify) -> None:
    keys = {"X-App-Id": api.app_id, "X-App-Token": api.app_token}
    with httpx.Client(base_url=api.url, headers=keys) as http:
        for params in ({"page": 100}, {"limit": 101}, {"limit": 0}, {"order": "date"}):
            answer = http.get("/v1/redemptions", params=params)
            assert answer.status_code == 400, params
            assert answer.json()["request_id"].startswith("v-")
        listed = http.get("/v1/redemptions").json()
        empty = {"object": "list", "data_ref": "redemptions", "redemptions": [], "total": 0}
        assert listed == empty
        nobody = httpx.get(f"{api.url}/v1/redemptions").json()
        assert (nobody["code"], nobody["key"]) == (401, "unauthorized")


def test_a_full_page_at_the_total_ends_the_window_without_an_empty_page(
    api: FakeVoucherify,
) -> None:
    api.redemptions = [redemption(at) for at in spread(EPOCH, 200)]
    with client(api) as voucherify:
        assert len(list(voucherify.redemptions(EPOCH, EPOCH + DAY))) == 200
        assert voucherify.requests == 2


def test_a_window_that_grows_past_its_last_page_goes_on_from_the_last_time_seen(
    api: FakeVoucherify,
) -> None:
    api.redemptions = [redemption(at) for at in spread(EPOCH, 150)]
    later = [redemption(at) for at in spread(EPOCH + timedelta(hours=1), 100)]

    def grow(request: Request) -> None:
        if len(api.requests) == 1:
            api.redemptions.extend(later)

    api.after_answer = grow
    with client(api) as voucherify:
        # A cap of 200 allows two pages: the third hundred is asked for as a new window.
        listed = list(voucherify.redemptions(EPOCH, EPOCH + DAY, cap=200))
    assert [item["id"] for item in listed] == [item["id"] for item in api.redemptions]
    queries = [request.query for request in api.requests_to("/v1/redemptions")]
    assert [q["page"] for q in queries] == ["1", "2", "1"]
    assert (
        queries[2]["created_at[after]"]
        < "2024-05-01T01:00:49.000Z"
        < queries[2]["created_at[before]"]
    )
