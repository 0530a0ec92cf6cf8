"""Observed as an operations team observes it: a real Prometheus server scrapes a real
`voucherhook serve --workers 2` and `voucherhook worker` on PostgreSQL and Redis, with the
admin token, while deliveries arrive; its query API then answers with the figures the database
holds: the events processed, a handler's failure (a ledger conflict), the notifications sent.
The scraped text passes `promtool check metrics`; every metric the dashboard and the alert
rules read is in a scrape, and every dashboard query runs. Counts survive the death of a web
process (the others answer for it) and start again after a worker's restart, which
Prometheus sees as a counter reset. One grep of an event's id follows it from receipt to its
notification.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine, func, select

from models.db import schema
from models.db.engine import make_engine
from models.db.tables import events, notifications
from tests.support import services
from tests.support.payloads import REDEMPTION, dumps, envelope
from tests.support.processes import ADMIN, Fleet, Receiver, Worker, pool_children, post, worker_env
from tests.support.prometheus import (
    PrometheusServer,
    alert_rules,
    dashboard_queries,
    metric_names,
    promtool,
    scraped_names,
)
from tests.support.services import wait_for
from tests.support.sinks import HttpSink
from tests.support.workload import signed
from tests.unit import recorded
from workers import sample_events

pytestmark = pytest.mark.slow

REDEMPTIONS = 12
"""Fresh redemptions sent; with the two below, every one processed but one."""


@dataclass
class Deployment:
    engine: Engine
    fleet: Fleet
    receiver: Receiver
    worker: Worker
    prometheus: PrometheusServer
    sink: HttpSink
    ordinary: list[str]
    conflicting: str

    def scrape(self, url: str) -> str:
        answer = httpx.get(url, headers=ADMIN, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.text

    def scrapes(self) -> dict[str, str]:
        return {
            "web": self.scrape(f"{self.receiver.url}/metrics"),
            "worker": self.scrape(self.worker.metrics_url),
        }

    def stored(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(events.c.status, func.count()).group_by(events.c.status))
            return {status: count for status, count in rows}

    def notifications_sent(self) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).where(notifications.c.status == "sent")
            return int(conn.scalar(query) or 0)

    def settled(self) -> bool:
        with self.engine.connect() as conn:
            waiting = conn.scalar(
                select(func.count()).where(notifications.c.status.in_(("pending", "sending")))
            )
        return self.stored().get("pending", 0) == 0 and waiting == 0


def deliver(url: str, data: dict[str, object], event_type: str = REDEMPTION) -> str:
    body = dumps(envelope(event_type, data))
    answer = httpx.post(url, content=body, headers=signed(body), timeout=30)
    assert answer.status_code == 202, answer.text
    event_id: str = answer.json()["event_id"]
    return event_id


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    services.check_redis()
    queue = f"vh-test-{uuid.uuid4().hex[:10]}"
    with services.postgres_database() as url, running(HttpSink()) as sink:
        engine = make_engine(url)
        try:
            schema.upgrade(engine)
            yield from _deploy(engine, url, queue, sink)
        finally:
            engine.dispose()
            redis.Redis.from_url(services.REDIS_URL).delete(queue)


def _deploy(engine: Engine, url: str, queue: str, sink: HttpSink) -> Iterator[Deployment]:
    env = worker_env(
        url, services.REDIS_URL, queue, NOTIFY_WEBHOOK_URL=sink.url, VOUCHERHOOK_LOG_LEVEL="INFO"
    )
    with Fleet(env) as fleet:
        # Two web processes on one port: a scrape reaches either, and must count for both.
        receiver = fleet.receiver("--workers", "2", ready_within=180)
        worker = fleet.worker()
        prometheus = PrometheusServer(
            {
                "voucherhook-web": [f"127.0.0.1:{receiver.port}"],
                "voucherhook-worker": [f"127.0.0.1:{worker.metrics_port}"],
            }
        )
        try:
            ordinary = [
                deliver(receiver.webhook_url, sample_events.redemption(datetime.now(UTC)))
                for _ in range(REDEMPTIONS)
            ]
            # The same order booked with two amounts: the second is a ledger conflict, failed
            # at once.
            order = f"ord_{uuid.uuid4().hex[:12]}"
            first = recorded.redemption(f"r_{uuid.uuid4().hex[:12]}", order_id=order)
            second = recorded.redemption(f"r_{uuid.uuid4().hex[:12]}", order_id=order, amount=8000)
            ordinary.append(deliver(receiver.webhook_url, first))
            wait_for(lambda: _none_pending(engine), 90, what="the first of the pair processed")
            conflicting = deliver(receiver.webhook_url, second)
            refused = post(receiver.webhook_url, b'{"forged": true}', "0" * 64)
            assert refused.status_code == 401
            deployed = Deployment(
                engine, fleet, receiver, worker, prometheus, sink, ordinary, conflicting
            )
            wait_for(deployed.settled, 120, what="every event and notification settled")
            yield deployed
        finally:
            prometheus.stop()


@contextlib.contextmanager
def running(sink: HttpSink) -> Iterator[HttpSink]:
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def _none_pending(engine: Engine) -> bool:
    with engine.connect() as conn:
        pending = conn.scalar(select(func.count()).where(events.c.status == "pending"))
    return pending == 0


def test_prometheus_reads_what_was_done(deployment: Deployment) -> None:
    prometheus = deployment.prometheus
    stored = deployment.stored()
    assert stored == {"processed": REDEMPTIONS + 1, "failed": 1}, stored
    sent = deployment.notifications_sent()
    assert sent == len(deployment.sink.requests) > 0

    prometheus.wait_for_value('sum(up{job=~"voucherhook-.*"})', 2)
    # Counted by the two web processes, whichever answered the scrape.
    prometheus.wait_for_value('sum(voucherhook_deliveries_total{outcome="accepted"})', 14)
    prometheus.wait_for_value('sum(voucherhook_deliveries_total{outcome="unauthorized"})', 1)
    prometheus.wait_for_value("sum(voucherhook_processing_latency_seconds_count)", 13)
    prometheus.wait_for_value(
        'sum(voucherhook_handler_runs_total{handler="ledger",outcome="failed"})', 1
    )
    prometheus.wait_for_value(
        'sum(voucherhook_handler_runs_total{handler="ledger",outcome="done"})', 13
    )
    prometheus.wait_for_value("sum(voucherhook_ledger_conflicts_total)", 1)
    prometheus.wait_for_value(
        'sum(voucherhook_notifications_total{channel="webhook",outcome="sent"})', sent
    )
    prometheus.wait_for_value(
        'sum(voucherhook_notification_send_seconds_count{channel="webhook"})', sent
    )
    # The state from the database, as the web processes read it.
    prometheus.wait_for_value('voucherhook_events{status="failed",type="redemption.succeeded"}', 1)
    prometheus.wait_for_value(
        'voucherhook_events{status="processed",type="redemption.succeeded"}', 13
    )
    prometheus.wait_for_value("voucherhook_backlog_events", 0)
    prometheus.wait_for_value("voucherhook_database_up", 1)
    # The failed event fires its alert in the real server, from the shipped rules.
    prometheus.wait_for_value('count(ALERTS{alertname="VoucherhookEventsFailed"})', 1)


def test_the_scraped_text_passes_promtool(deployment: Deployment) -> None:
    for name, text in deployment.scrapes().items():
        checked = promtool("check", "metrics", stdin=text)
        assert checked.returncode == 0 and not checked.stdout.strip(), (
            name,
            checked.stdout + checked.stderr,
        )


def test_the_dashboard_and_the_alerts_read_metrics_that_exist(deployment: Deployment) -> None:
    scraped: set[str] = set()
    for text in deployment.scrapes().values():
        scraped |= scraped_names(text)
    queries = dashboard_queries()
    assert len(queries) >= 20
    missing = metric_names(queries) - scraped
    assert not missing, f"the dashboard reads metrics no scrape has: {sorted(missing)}"
    rules = [rule["expr"] for rule in alert_rules()]
    missing = metric_names(rules) - scraped
    assert not missing, f"the alert rules read metrics no scrape has: {sorted(missing)}"
    for query in queries:
        deployment.prometheus.query(query)  # valid PromQL, as Grafana sends it
    assert deployment.prometheus.query(
        "sum(rate(voucherhook_processing_latency_seconds_count[1m]))"
    )


def test_labels_are_bounded(deployment: Deployment) -> None:
    """No event id is a label value, and a type without handlers is `other`."""
    texts = "\n".join(deployment.scrapes().values())
    for event_id in [*deployment.ordinary, deployment.conflicting]:
        assert event_id not in texts
    body = b'{"type": "voucher.deleted", "data": {"id": "v_1"}}'
    answer = httpx.post(
        deployment.receiver.webhook_url + "/voucher.deleted", content=body, headers=signed(body)
    )
    assert answer.status_code == 202, answer.text
    deployment.prometheus.wait_for_value('voucherhook_events{type="other",status="ignored"}', 1)
    assert deployment.prometheus.query('voucherhook_events{type="voucher.deleted"}') == []


def test_one_grep_follows_an_event_from_receipt_to_its_notification(
    deployment: Deployment,
) -> None:
    lines = [
        json.loads(line)
        for process in [deployment.receiver, deployment.worker]
        for line in process.output().splitlines()
        if line.startswith("{")
    ]
    event_id = deployment.ordinary[0]
    about = [line for line in lines if event_id in json.dumps(line)]
    names = [line["event"] for line in sorted(about, key=lambda line: line["timestamp"])]
    assert names[0] == "events_accepted", names
    assert "events_processed" in names
    assert names[-1] == "notification_sent", names
    assert all(
        line.get("event_id") == event_id or event_id in line.get("event_ids", ()) for line in about
    ), about
    failed = [line for line in lines if line.get("event_id") == deployment.conflicting]
    handler_failed = [line for line in failed if line["event"] == "handler_failed"]
    assert [line["handler"] for line in handler_failed] == ["ledger"], failed
    assert "event_failed" in [line["event"] for line in failed]


def test_counts_outlive_a_web_process_and_start_again_with_a_worker(
    deployment: Deployment,
) -> None:
    """Run last: it kills processes of the deployment."""
    prometheus, receiver = deployment.prometheus, deployment.receiver
    web_processes = _web_processes(receiver)
    assert len(web_processes) == 2, web_processes
    os.kill(web_processes[0], signal.SIGKILL)
    wait_for(
        lambda: len(set(_web_processes(receiver)) - set(web_processes)) == 1,
        60,
        what="uvicorn to start a web process in place of the one killed",
    )
    # Whichever process answers, the one killed still counts (a scrape is cached a second).
    for _ in range(6):
        text = deployment.scrape(f"{receiver.url}/metrics")
        assert 'voucherhook_deliveries_total{outcome="accepted"} 14.0' in text
        time.sleep(1.1)

    old = deployment.worker
    processed = 'sum(voucherhook_processing_latency_seconds_count{job="voucherhook-worker"})'
    prometheus.wait_for_value(processed, 13)
    old.stop()  # a restart: SIGTERM, as a service manager sends it
    deployment.fleet.workers.remove(old)
    deployment.worker = deployment.fleet.worker("--metrics-port", str(old.metrics_port))
    wait_for(lambda: _answers(deployment.worker.metrics_url), 60, what="the new worker's /metrics")
    for _ in range(3):
        deliver(receiver.webhook_url, sample_events.redemption(datetime.now(UTC)))
    wait_for(deployment.settled, 90, what="the new worker to process the new events")
    # Counted from 0 again by the new worker; Prometheus sees the reset, which rate() and
    # increase() take into account.
    prometheus.wait_for_value(processed, 3)
    prometheus.wait_for_value('up{job="voucherhook-worker"}', 1)
    resets = prometheus.value(
        'resets(voucherhook_processing_latency_seconds_count{job="voucherhook-worker"}[5m])'
    )
    assert resets == 1


def _web_processes(receiver: Receiver) -> list[int]:
    """The web processes uvicorn started (multiprocessing's resource tracker aside)."""
    found = []
    for pid in pool_children(receiver):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command and b"resource_tracker" not in command:
            found.append(pid)
    return found


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, headers=ADMIN, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
