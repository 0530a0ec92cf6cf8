"""Benchmark: the CPU one outbox publish costs (a Celery message of `--ids` event ids, one
`LPUSH` to Redis), through kombu's own Redis transport (the baseline) and through voucherhook's
(`workers.redis_transport`, one client per pool), alternated round by round in this process.

The receiver's outbox thread publishes while its event loop serves deliveries, and holds the
GIL while it does, so every microsecond here is taken from the deliveries as well.

Run:  uv run python -m bench.publish [--redis redis://127.0.0.1:6379/0] [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime

import redis
from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from workers import redis_transport
from workers.celery_app import PROCESS_EVENTS

STOCK = "kombu.transport.redis:Transport"


def cpu_per_publish(app: Celery, queue: str, ids: list[str], count: int) -> float:
    """Microseconds of this process's CPU per `send_task`, as the outbox calls it."""
    started = time.process_time()
    for _ in range(count):
        app.send_task(PROCESS_EVENTS, args=[ids], queue=queue, retry=False, argsrepr="[ids]")
    return (time.process_time() - started) / count * 1e6


def app_with(transport: str, url: str) -> Celery:
    """A Celery app whose broker connections use `transport` (a scheme of its own: kombu looks
    the transport up by the URL's scheme when it connects)."""
    scheme = f"bench{len(TRANSPORT_ALIASES)}"
    TRANSPORT_ALIASES[scheme] = transport
    app = Celery("bench-publish", broker=f"{scheme}://{url.split('://', 1)[1]}")
    app.conf.update(task_serializer="json", task_ignore_result=True)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=2000, help="publishes per round")
    parser.add_argument("--ids", type=int, default=100, help="event ids per message")
    args = parser.parse_args()
    queue = f"vh-bench-publish-{uuid.uuid4().hex[:8]}"
    ids = [f"redemption.succeeded:r_{n:020d}" for n in range(args.ids)]
    apps = {
        "kombu's transport (baseline)": app_with(STOCK, args.redis),
        "voucherhook's transport": app_with(f"{redis_transport.__name__}:Transport", args.redis),
    }
    figures: dict[str, list[float]] = {name: [] for name in apps}
    try:
        for name, app in apps.items():
            cpu_per_publish(app, queue, ids, 200)  # connections, declarations, warm caches
            with app.connection_for_write() as connection:
                transport = type(connection.transport)
                print(f"{name}: {transport.__module__}.{transport.__name__}")
        for _ in range(args.rounds):
            for name, app in apps.items():
                figures[name].append(cpu_per_publish(app, queue, ids, args.count))
            redis.Redis.from_url(args.redis).delete(queue)
    finally:
        redis.Redis.from_url(args.redis).delete(queue)
        for app in apps.values():
            app.close()

    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}: {args.rounds} rounds of {args.count} publishes "
        f"of {args.ids} ids"
    )
    baseline = statistics.median(next(iter(figures.values())))
    for name, values in figures.items():
        median = statistics.median(values)
        print(
            f"  {name:30} {median:7.1f} µs CPU per publish (rounds {min(values):.1f} to "
            f"{max(values):.1f}), {baseline / median:.2f}x the baseline's speed"
        )


if __name__ == "__main__":
    main()
