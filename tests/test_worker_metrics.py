"""A worker's /metrics: the operators' token or nothing, a port that is taken named with what
to do, a bounded number of connections before the token is read; and the embedded `serve`,
whose /metrics counts the work of the worker it runs beside the receiver."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.payloads import REDEMPTION
from tests.support.processes import (
    ADMIN,
    Process,
    Receiver,
    Worker,
    base_env,
    voucherhook,
    worker_env,
)
from tests.support.services import free_port, wait_for
from tests.support.workload import signed
from workers import metric_files, sample_events
from workers.metrics_server import CONNECTIONS

PARENT = metric_files.parent_dir()
"""Where the commands started by these tests keep their metrics' directories."""


def answers(url: str, **headers: str) -> httpx.Response | None:
    try:
        return httpx.get(url, headers=headers, timeout=2)
    except httpx.HTTPError:
        return None


@pytest.fixture
def worker(postgres_url: str, redis_url: str, queue: str) -> Iterator[Worker]:
    process = Worker(worker_env(postgres_url, redis_url, queue))
    try:
        wait_for(lambda: answers(process.metrics_url, **ADMIN), 60, what="the worker's /metrics")
        yield process
    finally:
        process.stop()


def test_a_worker_serves_metrics_to_the_admin_token_only(worker: Worker) -> None:
    opened = httpx.get(worker.metrics_url, headers=ADMIN)
    assert opened.status_code == 200
    assert opened.headers["content-type"].startswith("text/plain; version=")
    assert 'voucherhook_handler_runs_total{handler="ledger",outcome="done"} 0.0' in opened.text

    bare = httpx.get(worker.metrics_url)
    wrong = httpx.get(worker.metrics_url, headers={"Authorization": "Bearer not-the-token"})
    for refused in (bare, wrong):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "VOUCHERHOOK_ADMIN_TOKEN" in refused.text
        assert "voucherhook_" not in refused.text
    elsewhere = httpx.get(worker.metrics_url.replace("/metrics", "/"), headers=ADMIN)
    assert elsewhere.status_code == 404


def test_connections_beyond_the_limit_are_closed_at_once(worker: Worker) -> None:
    """Idle connections (a client that sends nothing) hold at most CONNECTIONS threads; one
    more is closed at once, and the endpoint serves again when they go."""
    address = ("127.0.0.1", worker.metrics_port)
    idle = [socket.create_connection(address) for _ in range(CONNECTIONS)]
    try:
        time.sleep(0.5)  # each taken by the server
        extra = socket.create_connection(address)
        extra.settimeout(5)
        started = time.monotonic()
        assert extra.recv(1) == b""  # closed without an answer
        assert time.monotonic() - started < 4
        extra.close()
    finally:
        for connection in idle:
            connection.close()
    wait_for(lambda: answers(worker.metrics_url, **ADMIN), 10, what="/metrics again")


def test_a_taken_port_stops_the_worker_saying_what_to_do(
    postgres_url: str, redis_url: str, queue: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            voucherhook("worker", "--metrics-port", str(port)),
            env=worker_env(postgres_url, redis_url, queue),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"voucherhook: worker /metrics cannot listen on 127.0.0.1:{port}"
    )
    assert "VOUCHERHOOK_WORKER_METRICS_PORT" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_port_is_a_setting_and_0_turns_metrics_off(
    postgres_url: str, redis_url: str, queue: str
) -> None:
    port = free_port()
    on = worker_env(postgres_url, redis_url, queue, VOUCHERHOOK_WORKER_METRICS_PORT=str(port))
    off = {**on, "VOUCHERHOOK_WORKER_METRICS_PORT": "0", "VOUCHERHOOK_LOG_LEVEL": "INFO"}
    serving, silent = Process(voucherhook("worker"), on), Process(voucherhook("worker"), off)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/metrics", **ADMIN), 60)
        wait_for(lambda: " ready." in silent.output(), 60, what="the second worker ready")
        assert "metrics_serving" not in silent.output()
        assert silent.process.poll() is None
    finally:
        serving.stop()
        silent.stop()


def test_the_embedded_serve_counts_the_work_of_its_worker(tmp_path: Path) -> None:
    """One process type, one scrape: the worker beside the receiver counts in the receiver's
    directory, and the receiver's /metrics adds its counts in."""
    env = base_env(f"sqlite:///{tmp_path / 'voucherhook.db'}", None)
    receiver = Receiver(env, cwd=tmp_path)
    try:
        [delivery] = sample_events.deliveries(REDEMPTION)
        body = delivery.encoded()
        sent = httpx.post(receiver.webhook_url, content=body, headers=signed(body), timeout=30)
        assert sent.status_code == 202, sent.text

        def counted() -> bool:
            text = httpx.get(f"{receiver.url}/metrics", headers=ADMIN).text
            return "voucherhook_processing_latency_seconds_count 1.0" in text

        wait_for(counted, 90, interval=1, what="the worker's count in serve's /metrics")
        text = httpx.get(f"{receiver.url}/metrics", headers=ADMIN).text
        assert 'voucherhook_handler_runs_total{handler="ledger",outcome="done"} 1.0' in text
        assert 'voucherhook_deliveries_total{outcome="accepted"} 1.0' in text
        # One directory, named after serve's process: the receiver's file and its worker's.
        files = {path.name.split("_")[0] for path in (PARENT / str(receiver.pid)).iterdir()}
        assert files == {"counter", "histogram"}
        assert len(list((PARENT / str(receiver.pid)).iterdir())) >= 4
        assert str(receiver.pid) not in {p.name for p in metric_files.remove_dead(PARENT)}
    finally:
        receiver.stop()
    # Gone when serve exits, or removed by the next command when a signal ended it.
    metric_files.remove_dead(PARENT)
    assert not (PARENT / str(receiver.pid)).exists()


def test_the_directories_of_commands_that_no_longer_run_are_removed(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    (tmp_path / str(ended.pid)).mkdir()
    (tmp_path / str(ended.pid) / "counter_1.db").write_bytes(b"\0" * 16)
    (tmp_path / str(os.getppid())).mkdir()
    (tmp_path / "notes").mkdir()
    assert metric_files.remove_dead(tmp_path) == [tmp_path / str(ended.pid)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([str(os.getppid()), "notes"])
