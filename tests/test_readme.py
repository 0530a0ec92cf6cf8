"""The README's start command, run as a new user would: in a fresh copy of the repository,
with only the secret set, then tried with `voucherhook send`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from models.db.engine import make_engine
from models.db.tables import events
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


@pytest.mark.skipif(shutil.which("uv") is None, reason="the README's commands need uv")
def test_readme_start_command_answers_a_signed_send(tmp_path: Path) -> None:
    command = readme_command("start-command")
    assert command.startswith("VOUCHERIFY_WEBHOOK_SECRET=")
    secret = command.split()[0].split("=", 1)[1]
    repo = fresh_copy(tmp_path / "voucherhook")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOUCHERHOOK_", "VIRTUAL_ENV"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env["PORT"] = str(port)
    server = Process(["bash", "-c", command], env, cwd=repo)
    try:
        wait_for(
            lambda: _healthy(port, server), 180, interval=0.5, what="the README's start command"
        )
        sent = subprocess.run(
            [
                "uv",
                "run",
                "voucherhook",
                "send",
                "workers/samples/redemption.succeeded.json",
                "--url",
                f"http://127.0.0.1:{port}/webhooks/voucherify",
                "--type",
                "redemption.succeeded",
            ],
            cwd=repo,
            env={**env, "VOUCHERIFY_WEBHOOK_SECRET": secret},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith('202 {"status": "accepted"'), sent.stdout
        event_id = "redemption.succeeded:r_0e2500291ae016adea"
        assert event_id in sent.stdout
        engine = make_engine(f"sqlite:///{repo / 'voucherhook.db'}")
        try:
            # The worker that `serve` started beside the receiver processes it.
            wait_for(lambda: _status(engine, event_id) == "processed", 90, what="processing")
        finally:
            engine.dispose()
    finally:
        server.stop()
    assert (repo / "voucherhook-broker.db").exists()


def _healthy(port: int, server: Process) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"the start command exited:\n{server.output()}")
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _status(engine: object, event_id: str) -> str | None:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    with engine.connect() as conn:
        return conn.scalar(select(events.c.status).where(events.c.id == event_id))
