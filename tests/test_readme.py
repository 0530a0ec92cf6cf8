"""The README's quick start, run as a new user would: in a fresh copy of the repository, with
only the secret set, its whole loop: a listener for the notifications, the receiver (and its
worker) told to notify it, a sample and a recorded payload sent, and what the books say."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.checkout import repo_files
from tests.support.payloads import REPO
from tests.support.processes import Process
from tests.support.services import free_port, wait_for


def readme_command(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.+?)\n```", text, re.DOTALL)
    assert match, f"README.md has no {marker} block"
    return match.group(1).strip()


def fresh_copy(target: Path) -> Path:
    for name in repo_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    return target


def test_the_readme_test_command_is_what_ci_runs() -> None:
    assert readme_command("test-command") == "uv run pytest"
    assert "README.md" in (REPO / ".ci" / "run").read_text()


def readme_commands(marker: str) -> list[str]:
    """The commands of a README block, one a line, without their comments."""
    return [line.split("   #")[0].strip() for line in readme_command(marker).splitlines()]


def test_the_loop_s_receiver_is_the_start_command_told_where_to_notify() -> None:
    [_, serve, _] = readme_commands("loop-commands")
    start = readme_command("start-command")
    secret, rest = start.split(" ", 1)
    assert serve == f"{secret} NOTIFY_WEBHOOK_URL=http://127.0.0.1:9000/ {rest}"


@pytest.mark.skipif(shutil.which("uv") is None, reason="the README's commands need uv")
def test_the_readme_s_whole_loop_books_the_sends_and_shows_the_notifications(
    tmp_path: Path,
) -> None:
    """The README's commands as written, in a fresh copy; the only change is the ports: the
    receiver's through PORT, the listener's a free one too (`--port`), so that the test can
    run beside anything."""
    listen, serve, send = readme_commands("loop-commands")
    assert serve.startswith("VOUCHERIFY_WEBHOOK_SECRET=")
    repo = fresh_copy(tmp_path / "voucherhook")
    port, sink_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOUCHERHOOK_", "VIRTUAL_ENV"))}
    for name in ("DATABASE_URL", "REDIS_URL", "NOTIFY_WEBHOOK_URL", "SMTP_URL"):
        env.pop(name, None)
    env["PORT"] = str(port)

    def shell(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=180
        )

    sink = Process(["bash", "-c", f"{listen} --port {sink_port}"], env, cwd=repo)
    server = Process(["bash", "-c", serve.replace(":9000/", f":{sink_port}/")], env, cwd=repo)
    try:
        wait_for(
            lambda: _healthy(port, server), 240, interval=0.5, what="the README's serve command"
        )
        sent = shell(send)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith('202 {"status": "accepted"'), sent.stdout
        from_file = shell(readme_command("file-command").splitlines()[0])
        assert from_file.returncode == 0, from_file.stderr
        file_id = "redemption.succeeded:r_0e2500291ae016adea"
        assert file_id in from_file.stdout, from_file.stdout
        wait_for(
            lambda: sink.output().count("Redemption r_") == 2,
            120,
            what=f"both notifications in the listener\n{sink.output()}\n{server.output()}",
        )
        looked = [shell(command) for command in readme_commands("look-commands")]
    finally:
        server.stop()
        sink.stop()
    sample_id = json.loads(sent.stdout.partition(" ")[2])["event_id"]
    for result in looked:
        assert result.returncode == 0, result.stderr
    listed, balances, notes = (result.stdout for result in looked)
    assert {row.split("\t")[1]: row.split("\t")[3] for row in listed.splitlines()[1:]} == {
        sample_id: "processed",
        file_id: "processed",
    }
    assert "sales\t-140.00 USD" in balances.splitlines()
    assert [row.split("\t")[4] for row in notes.splitlines()[1:]] == ["sent", "sent"]
    assert "70.00 USD, discount 10.00 USD." in sink.output()
    logged = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    accepted = [
        i for line in logged if line["event"] == "events_accepted" for i in line["event_ids"]
    ]
    assert accepted == [sample_id, file_id]
    assert (repo / "voucherhook-broker.db").exists()


def _healthy(port: int, server: Process) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"the start command exited:\n{server.output()}")
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
