"""A small HTTP/1.1 load generator for signed Voucherify deliveries, run as its own process.

Every request carries a fresh `event.id` (and send-out `id`) in a v2024-01-01 envelope around
the recorded `redemption.succeeded` example, signed with HMAC-SHA256 just before it is sent.
Requests are written raw over keep-alive connections (uvloop when available), so the client
stays cheap next to the server on a small machine.

Two modes:
- closed loop (default): each connection sends its next request when the previous answer
  arrived, until the duration is over; answers still in flight are then awaited, so every
  request sent is accounted for;
- open loop (`--rate R`): requests are due at a fixed rate whatever the answers; a due request
  waits for a free connection, and its latency counts from when it was due (no coordinated
  omission).

Prints one JSON object: requests, ok (2xx), errors by kind, elapsed, latency quantiles, CPU.
Usage: python -m bench.loadgen --url http://127.0.0.1:8000/webhooks/voucherify [--rate R]
(the secret comes from BENCH_SECRET).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import resource
import secrets
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The CLI's sample, byte for byte the recorded example (tests/fixtures/voucherify/).
PAYLOAD = Path(__file__).resolve().parents[1] / "workers" / "samples" / "redemption.succeeded.json"
EVENT_MARK = "@@EVENT_ID@@"
DELIVERY_MARK = "@@DELIVERY_ID@@"
REQUEST_TIMEOUT = 15.0
CONNECT_TIMEOUT = 5.0


class Deliveries:
    """Builds signed request bytes, each with identities never used before."""

    def __init__(self, url: str, secret: bytes, payload: Path = PAYLOAD) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._path = parts.path or "/"
        self._secret = secret
        self._tag = secrets.token_hex(6)
        self._count = 0
        template = json.dumps(_envelope(json.loads(payload.read_bytes())), separators=(",", ":"))
        # The envelope's send-out id comes first, then the event's id.
        before_delivery, rest = template.split(DELIVERY_MARK)
        before_event, after = rest.split(EVENT_MARK)
        self._parts = (before_delivery.encode(), before_event.encode(), after.encode())

    def next_request(self) -> bytes:
        self._count += 1
        serial = f"{self._tag}{self._count:010d}".encode()
        head, middle, tail = self._parts
        body = b"".join((head, b"whs_", serial, middle, b"evred_", serial, tail))
        signature = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return (
            f"POST {self._path} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "User-Agent: voucherhook-bench\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"x-voucherify-signature: {signature}\r\n\r\n"
        ).encode() + body


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    redemption = data.get("redemption")
    entity = redemption.get("id") if isinstance(redemption, dict) else None
    return {
        "id": DELIVERY_MARK,
        "project_id": "proj_x",
        "created_at": now,
        "type": "redemption.succeeded",
        "data": data,
        "source": {
            "id": "wh_bench",
            "object": "webhook",
            "target_url": "http://127.0.0.1/webhooks/voucherify",
        },
        "event": {
            "id": EVENT_MARK,
            "type": "redemption.succeeded",
            "created_at": now,
            "entity_id": entity or "r_bench",
            "group_id": "v-bench",
            "event_source": {"channel": "API"},
        },
    }


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


class Connection:
    """One keep-alive connection; reconnects after any failure."""

    def __init__(self, deliveries: Deliveries) -> None:
        self._deliveries = deliveries
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, tally: Tally, started: float) -> None:
        """Send one new delivery; record its status and latency (from `started`) or an error."""
        try:
            status = await asyncio.wait_for(self._exchange(), REQUEST_TIMEOUT)
        except TimeoutError:
            tally.errors["timeout"] += 1
            self.close()
            return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.errors[type(exc).__name__] += 1
            self.close()
            return
        tally.statuses[status] += 1
        tally.latencies.append(time.perf_counter() - started)

    async def _exchange(self) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self._deliveries.host, self._deliveries.port),
                CONNECT_TIMEOUT,
            )
        assert self._reader is not None and self._writer is not None
        self._writer.write(self._deliveries.next_request())
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        length = _content_length(lowered)
        if length:
            await self._reader.readexactly(length)
        if b"\r\nconnection: close" in lowered:
            self.close()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def _content_length(head: bytes) -> int:
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    end = head.find(b"\r\n", start + 2)
    return int(head[start + 17 : end])


async def closed_loop(deliveries: Deliveries, connections: int, duration: float) -> Tally:
    tally = Tally()
    deadline = time.perf_counter() + duration

    async def run(connection: Connection) -> None:
        while time.perf_counter() < deadline:
            await connection.send(tally, time.perf_counter())
        connection.close()

    await asyncio.gather(*(run(Connection(deliveries)) for _ in range(connections)))
    return tally


async def open_loop(
    deliveries: Deliveries, connections: int, duration: float, rate: float
) -> Tally:
    tally = Tally()
    due: asyncio.Queue[float | None] = asyncio.Queue()

    async def schedule() -> None:
        start = time.perf_counter()
        total = int(duration * rate)
        for i in range(total):
            when = start + i / rate
            delay = when - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait(when)
        for _ in range(connections):
            due.put_nowait(None)

    async def run(connection: Connection) -> None:
        while (when := await due.get()) is not None:
            await connection.send(tally, when)
        connection.close()

    await asyncio.gather(schedule(), *(run(Connection(deliveries)) for _ in range(connections)))
    return tally


def quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(tally: Tally, elapsed: float) -> dict[str, Any]:
    latencies = sorted(tally.latencies)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    answered = sum(tally.statuses.values())
    return {
        "requests": answered + sum(tally.errors.values()),
        "ok": tally.ok,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": dict(tally.errors),
        "elapsed": elapsed,
        "rps": answered / elapsed if elapsed else 0.0,
        "ok_rps": tally.ok / elapsed if elapsed else 0.0,
        "p50_ms": _ms(quantile(latencies, 0.50)),
        "p99_ms": _ms(quantile(latencies, 0.99)),
        "max_ms": _ms(latencies[-1] if latencies else None),
        "cpu_percent": 100 * (usage.ru_utime + usage.ru_stime) / elapsed if elapsed else 0.0,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


async def main_async(args: argparse.Namespace, secret: bytes) -> dict[str, Any]:
    deliveries = Deliveries(args.url, secret)
    started = time.perf_counter()
    if args.rate:
        tally = await open_loop(deliveries, args.connections, args.duration, args.rate)
    else:
        tally = await closed_loop(deliveries, args.connections, args.duration)
    return summary(tally, time.perf_counter() - started)


def _run(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> int:
    parser = argparse.ArgumentParser(description="Signed Voucherify delivery load generator.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rate", type=float, help="open loop: requests per second")
    args = parser.parse_args()
    secret = os.environ.get("BENCH_SECRET", "").encode()
    if not secret:
        print("loadgen: BENCH_SECRET is not set", file=sys.stderr)
        return 2
    print(json.dumps(_run(main_async(args, secret))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
