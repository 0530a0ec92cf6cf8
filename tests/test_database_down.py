"""PostgreSQL unreachable: the receiver answers 503 with Retry-After (never a 500), stores
nothing half-way, and accepts again as soon as the database is back."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from receiver.signature import HEADER, sign
from tests.conftest import EventLog
from tests.support.payloads import REDEMPTION, dumps, envelope
from tests.support.processes import SECRET, Receiver, base_env
from tests.support.services import TcpProxy

KEY = SECRET.encode()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    target = urlsplit(postgres_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.start()
    yield proxy
    proxy.close()


def deliver(url: str, payload: dict[str, object]) -> httpx.Response:
    body = dumps(payload)
    return httpx.post(url, content=body, headers={HEADER: sign(body, KEY)}, timeout=30)


def test_database_unreachable_is_503_with_retry_after_then_accepting_again(
    postgres_url: str, redis_url: str, queue: str, proxy: TcpProxy
) -> None:
    netloc = urlsplit(postgres_url).netloc
    via_proxy = postgres_url.replace(netloc, f"postgres@127.0.0.1:{proxy.port}")
    env = base_env(via_proxy, redis_url, VOUCHERHOOK_QUEUE=queue, VOUCHERHOOK_STORE_TIMEOUT="6")
    receiver = Receiver(env, "--no-worker")
    from models.db.engine import make_engine

    log = EventLog(make_engine(postgres_url))
    try:
        assert deliver(receiver.webhook_url, envelope(REDEMPTION)).status_code == 202

        proxy.cut()
        refused = envelope(REDEMPTION)
        outage = deliver(receiver.webhook_url, refused)
        ready = httpx.get(f"{receiver.url}/readyz", timeout=30)

        proxy.restore()
        retried = deliver(receiver.webhook_url, refused)
    finally:
        receiver.stop()

    assert outage.status_code == 503, outage.text
    assert outage.headers["retry-after"].isdigit()
    assert "database unavailable" in outage.json()["error"]
    assert ready.status_code == 503
    # What is down, never where: no host, port or driver message for the internet to read.
    assert ready.json() == {"status": "unavailable", "database": "unavailable", "broker": "ok"}
    assert str(proxy.port) not in ready.text and "127.0.0.1" not in ready.text
    # Voucherify's retry of the refused delivery is accepted, and stored once.
    assert retried.status_code == 202, retried.text
    assert log.get(refused["event"]["id"]) is not None  # type: ignore[index]
    log.engine.dispose()
