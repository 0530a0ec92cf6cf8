"""The logs as a person meets them, at the default settings: `serve` on the embedded default
names every event it accepted, processed or failed, shows no Celery banner nor a line per task,
and stops on Ctrl-C without a traceback; a worker stopped while it waits for its broker exits
cleanly; on a terminal the lines are readable, piped they are JSON; and a command that prints
its result (`replay`) prints nothing else."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.db import schema
from models.db.engine import make_engine
from models.db.tables import events
from tests.support.processes import Receiver, base_env, voucherhook
from tests.support.processing import store
from tests.support.services import free_port, wait_for
from tests.support.sinks import HttpSink
from tests.support.terminal import OnTerminal
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION
from workers import logs

pytestmark = pytest.mark.timeout(300)

BAD = "redemption.succeeded:r_logs_bad"


def statuses(database: Path) -> dict[str, str]:
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            return {
                row.id: row.status for row in conn.execute(select(events.c.id, events.c.status))
            }
    finally:
        engine.dispose()


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`voucherhook serve` on the embedded default (its worker beside it), logging at INFO as
    by default; a good sample and an unusable payload sent to it; then Ctrl-C."""
    folder = tmp_path_factory.mktemp("serve")
    database = folder / "voucherhook.db"
    env = base_env(f"sqlite:///{database}", None, VOUCHERHOOK_LOG_LEVEL="INFO")
    del env["VOUCHERHOOK_ADMIN_TOKEN"]  # as a new user runs it
    bad = recorded.redemption("r_logs_bad", order_id="ord_logs_bad")
    bad["voucher"] = bad["promotion_tier"] = None  # a stack child naming nothing: unusable
    bad["redemption"]["redemption"] = "r_logs_parent"
    (folder / "bad.json").write_text(json.dumps(bad))
    receiver = Receiver(env, cwd=folder)
    try:
        send = {**env, "PORT": str(receiver.port)}
        sent = subprocess.run(
            voucherhook("send", "--sample", "redemption.succeeded"),
            env=send, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        good = json.loads(sent.stdout.partition(" ")[2])["event_id"]
        subprocess.run(
            voucherhook("send", str(folder / "bad.json"), "--type", REDEMPTION),
            env=send, capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        wait_for(
            lambda: statuses(database) == {good: "processed", BAD: "failed"},
            120,
            what="the worker beside the receiver to settle both",
        )
        wait_for(lambda: "event_failed" in receiver.output(), 10, what="the failed line")
        receiver.process.send_signal(signal.SIGINT)  # Ctrl-C
        code = receiver.process.wait(60)
    finally:
        receiver.stop()
    yield {"env": env, "good": good, "output": receiver.output(), "code": code}


def test_serve_logs_the_event_ids_accepted_processed_and_failed(session: dict[str, Any]) -> None:
    lines = json_lines(session["output"])
    accepted = [
        i for line in lines if line["event"] == "events_accepted" for i in line["event_ids"]
    ]
    processed = [
        i for line in lines if line["event"] == "events_processed" for i in line["event_ids"]
    ]
    failed = [line for line in lines if line["event"] == "event_failed"]

    assert accepted == [session["good"], BAD]
    assert processed == [session["good"]]
    assert [line["event_id"] for line in failed] == [BAD]
    assert failed[0]["error"].startswith("ledger: redemption.redemption: names a parent")
    assert failed[0]["see"] == f"voucherhook events show {BAD}"


def test_serve_piped_logs_json_and_neither_a_banner_nor_a_line_per_task(
    session: dict[str, Any],
) -> None:
    output = session["output"]
    plain = [line for line in output.splitlines() if line.strip() and not line.startswith("{")]

    assert " succeeded in " not in output and "] received" not in output
    assert "[tasks]" not in output and "[queues]" not in output
    assert all(
        line.startswith(
            (
                "voucherhook: admin token",
                "    curl -H",
                "    open the console:",
                "worker: Warm shutdown",
            )
        )
        for line in plain
    ), plain


def test_serve_stops_on_ctrl_c_without_a_traceback(session: dict[str, Any]) -> None:
    assert session["code"] == 0, session["output"]
    assert "Traceback" not in session["output"]
    assert "Error" not in "".join(line["event"] for line in json_lines(session["output"]))


def test_replay_prints_its_result_and_no_log_line(session: dict[str, Any]) -> None:
    replayed = subprocess.run(
        voucherhook("replay", "--event-id", BAD),
        env=session["env"],
        cwd=Path(session["env"]["DATABASE_URL"].removeprefix("sqlite:///")).parent,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert replayed.returncode == 1
    assert replayed.stderr == ""
    assert replayed.stdout.startswith("selected 1, re-run 0, unchanged 0, failed 1")
    assert replayed.stdout.splitlines()[1].startswith(f"  failed {BAD}: ledger: ")


def test_replay_counts_the_notifications_refused_instead_of_logging_them(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'voucherhook.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    event_id = store(engine, REDEMPTION, recorded.seed_redemption())
    engine.dispose()
    sink = HttpSink(status=503)
    sink.start()
    try:
        env = base_env(url, None, NOTIFY_WEBHOOK_URL=sink.url, VOUCHERHOOK_LOG_LEVEL="INFO")
        replayed = subprocess.run(
            voucherhook("replay", "--event-id", event_id),
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        sink.stop()

    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stderr == ""
    assert len(sink.requests) == 1
    assert replayed.stdout.splitlines() == [
        "selected 1, re-run 1, unchanged 0, failed 0, skipped 0 (quarantined or no handler); "
        "notifications sent 0",
        "  1 notification(s) refused: `voucherhook notifications list --status failed` (or "
        "`--status pending`: retried later) shows each error",
    ]


def test_a_worker_stopped_while_waiting_for_its_broker_exits_cleanly_with_readable_logs(
    tmp_path: Path,
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    env = base_env(f"sqlite:///{tmp_path / 'voucherhook.db'}", nowhere)
    env["VOUCHERHOOK_LOG_LEVEL"] = "INFO"
    worker = OnTerminal(voucherhook("worker"), env, columns=120)
    try:
        shown = worker.read(lambda text: "Cannot connect" in text, 120)
        assert "Cannot connect" in shown, shown
        code = worker.finish(60, signal.SIGTERM)
    finally:
        worker.kill()

    assert code == 0, worker.text
    assert "Traceback" not in worker.text and "RuntimeError" not in worker.text
    logged = [line for line in worker.text.splitlines() if "Cannot connect" in line]
    assert logged and not any(line.lstrip().startswith("{") for line in logged)
    assert "[error" in logged[0]


def test_auto_is_json_unless_the_stream_is_a_terminal() -> None:
    reader, writer = os.pipe()
    primary, secondary = pty.openpty()
    with os.fdopen(writer, "w") as piped, os.fdopen(secondary, "w") as terminal:
        assert logs.renders_json("auto", piped)
        assert not logs.renders_json("auto", terminal)
        assert not logs.renders_json("console", piped)
        assert logs.renders_json("json", terminal)
    os.close(reader)
    os.close(primary)
