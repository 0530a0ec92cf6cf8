"""Trying voucherhook out from a terminal: `send` reaches the local receiver without a URL and
takes several files, `listen` shows the notifications a worker posts, and `serve` says when
no worker runs beside it. Real processes on loopback throughout."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from models.db.engine import make_engine
from models.db.tables import events
from tests.support.processes import Process, Receiver, base_env, voucherhook
from tests.support.services import free_port, wait_for
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(voucherhook(*args), env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, dict[str, str]]]:
    """A receiver on the embedded default, alone; the environment a `send` beside it has
    (PORT the receiver's, no URL given)."""
    folder = tmp_path_factory.mktemp("local")
    env = base_env(f"sqlite:///{folder / 'voucherhook.db'}", None)
    receiver = Receiver(env, "--no-worker", cwd=folder)
    try:
        yield receiver, {**env, "PORT": str(receiver.port)}
    finally:
        receiver.stop()


def envelopes(folder: Path) -> list[tuple[Path, str]]:
    """Two envelope files, and the event id each one is."""
    made = []
    for n, (event_type, data) in enumerate(
        [
            (REDEMPTION, recorded.seed_redemption()),
            (REWARD_REDEMPTION, recorded.seed_reward_redemption()),
        ]
    ):
        body = recorded.envelope(event_type, data)
        body["id"] = f"evt_trying_out_{n}"
        body["event"]["id"] = f"evt_trying_out_{n}"
        path = folder / f"{n}.json"
        path.write_text(json.dumps(body))
        made.append((path, f"evt_trying_out_{n}"))
    return made


def answers(stdout: str) -> list[tuple[int, str, str]]:
    found = []
    for line in stdout.splitlines():
        code, _, body = line.partition(" ")
        answer = json.loads(body)
        found.append((int(code), answer["status"], answer["event_id"]))
    return found


def test_send_posts_several_files_in_order_to_the_local_receiver_without_a_url(
    local: tuple[Receiver, dict[str, str]], tmp_path: Path
) -> None:
    _, env = local
    files = envelopes(tmp_path)
    paths = [str(path) for path, _ in files]

    first = run(["send", *paths], env)
    again = run(["send", *paths], env)

    assert first.returncode == 0, first.stderr
    assert answers(first.stdout) == [(202, "accepted", event_id) for _, event_id in files]
    assert answers(again.stdout) == [(200, "duplicate", event_id) for _, event_id in files]


def test_send_with_a_missing_file_sends_none_of_them(
    local: tuple[Receiver, dict[str, str]], tmp_path: Path
) -> None:
    _, env = local
    [(path, _), _] = envelopes(tmp_path)
    path.write_text(path.read_text().replace("evt_trying_out_0", "evt_never_sent"))

    result = run(["send", str(path), str(tmp_path / "nope.json")], env)

    assert result.returncode == 1
    assert (
        result.stderr == f"voucherhook: {tmp_path / 'nope.json'}: no such file; nothing was sent\n"
    )
    assert result.stdout == ""
    engine = make_engine(f"sqlite:///{receiver_db(env)}")
    try:
        with engine.connect() as conn:
            stored = conn.scalar(select(func.count()).where(events.c.id == "evt_never_sent"))
    finally:
        engine.dispose()
    assert stored == 0


def receiver_db(env: dict[str, str]) -> str:
    return env["DATABASE_URL"].removeprefix("sqlite:///")


def test_send_with_no_receiver_at_the_default_url_says_what_to_do() -> None:
    port = free_port()
    env = {**base_env("sqlite:///unused.db", None), "PORT": str(port)}

    result = run(["send", "--sample", "redemption.succeeded"], env)

    assert result.returncode == 1
    assert result.stderr.startswith(
        f"voucherhook: could not POST to http://127.0.0.1:{port}/webhooks/voucherify: "
    )
    assert result.stderr.endswith(" (is `voucherhook serve` running? --url sends elsewhere)\n")
    assert result.stderr.count("\n") == 1


def test_serve_with_redis_says_in_one_line_that_no_worker_runs_and_how_to_start_one(
    tmp_path: Path, redis_url: str
) -> None:
    env = base_env(f"sqlite:///{tmp_path / 'voucherhook.db'}", redis_url)
    receiver = Receiver(env, cwd=tmp_path)
    try:
        told = [line for line in receiver.output().splitlines() if "no worker" in line]
    finally:
        receiver.stop()

    assert told == [
        "voucherhook: no worker runs beside the receiver (REDIS_URL is set): start one with "
        "`voucherhook worker`, here or on any machine with the same settings, or pass "
        "--with-worker"
    ]


@pytest.fixture
def listener() -> Iterator[tuple[Process, str]]:
    port = free_port()
    process = Process(voucherhook("listen", "--port", str(port)), base_env("sqlite:///x", None))
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: "listening on" in process.output(), 30, what="listen to start")
        yield process, url
    finally:
        process.stop()


def test_listen_prints_each_notification_s_text_and_answers_200(
    listener: tuple[Process, str],
) -> None:
    process, url = listener
    text = "Redemption r_1 of \x1b[31mRed\x1b[0m: 70.00 USD\nsecond line"

    answer = httpx.post(url, json={"text": text}, timeout=10)
    plain = httpx.post(url, content=b"not json", timeout=10)
    wait_for(lambda: "not json" in process.output(), 10, what="both printed")

    assert (answer.status_code, plain.status_code) == (200, 200)
    output = process.output()
    assert f"listening on {url}; start the receiver with NOTIFY_WEBHOOK_URL={url}" in output
    assert "Redemption r_1 of [31mRed[0m: 70.00 USD\n           second line\n" in output
    assert "\x1b" not in output


def test_listen_refuses_a_body_over_64_kib_unread(listener: tuple[Process, str]) -> None:
    process, url = listener

    answer = httpx.post(url, json={"text": "x" * 70_000}, timeout=10)

    assert answer.status_code == 413
    assert "xxxx" not in process.output()
