"""Several processes, as in production: two receivers and three workers on loopback share one
PostgreSQL and one Redis; Voucherify's deliveries are spread over both receivers, every event
is delivered twice at the same moment, once to each, and the checker still holds."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from tests.support.checker import check
from tests.support.processes import Fleet, Worker, pool_children, worker_env
from tests.support.services import wait_for
from tests.support.sinks import Sinks
from tests.support.workload import Load, Workload

pytestmark = pytest.mark.timeout(420)


def test_two_receivers_and_three_workers_share_the_work_and_the_checker_holds(
    postgres_url: str, redis_url: str, queue: str, db: Engine, sinks: Sinks
) -> None:
    env = worker_env(postgres_url, redis_url, queue, VOUCHERHOOK_LOG_LEVEL="INFO", **sinks.env())
    load = Load(events=900, rate=45, duplicate=True)
    with Fleet(env) as fleet:
        fleet.receiver()
        fleet.receiver()
        workers = [fleet.worker("--concurrency", "2") for _ in range(3)]
        for worker in workers:
            wait_for(lambda w=worker: len(pool_children(w)) == 2, 60, what="2 pool processes")
        workload = Workload(fleet.webhook_urls, load).start()

        result = check(db, workload, webhook_sink=sinks.webhook, smtp_sink=sinks.smtp, timeout=240)
        result.assert_ok()

        assert all(worker.process.poll() is None for worker in workers), fleet.logs()
    assert result.sent == load.events and result.accepted == load.events
    shares = [_events_done(worker) for worker in workers]
    assert all(shares), f"a worker did no work: events processed per worker {shares}"
    print(result.summary(), f"events per worker {shares}")


def _events_done(worker: Worker) -> int:
    """Events the worker processed, as its log tells (a line per batch, at INFO)."""
    done = 0
    for line in worker.output().splitlines():
        if line.startswith("{") and '"events_processed"' in line:
            done += len(json.loads(line)["event_ids"])
    return done
