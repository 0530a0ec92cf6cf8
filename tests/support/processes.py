"""The real `voucherhook` processes, started as an operator would start them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.support.services import free_port, wait_for

SECRET = "whsec_test_secret_0123456789"


def base_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOUCHERHOOK_", "REDIS_"))}
    env.update(
        DATABASE_URL=database_url,
        VOUCHERIFY_WEBHOOK_SECRET=SECRET,
        VOUCHERHOOK_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def worker_env(postgres_url: str, redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    """For tests with workers: fast sweeps and retries, so recovery shows within seconds."""
    return base_env(
        postgres_url,
        redis_url,
        VOUCHERHOOK_QUEUE=queue,
        VOUCHERHOOK_SWEEP_INTERVAL="0.5",
        VOUCHERHOOK_SWEEP_AFTER="2",
        VOUCHERHOOK_REDISPATCH_AFTER="8",
        VOUCHERHOOK_RETRY_BACKOFF="0.5",
        VOUCHERHOOK_RETRY_BACKOFF_MAX="2",
        **extra,
    )


class Process:
    """A child process whose output goes to a file, shown when a test fails."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.log = Path(tempfile.mkstemp(prefix="vh-proc-", suffix=".log")[1])
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker has children)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(30)
        self._out.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()


def voucherhook(*args: str) -> list[str]:
    return [sys.executable, "-m", "workers.cli", *args]


class Receiver(Process):
    def __init__(self, env: dict[str, str], *extra: str, cwd: Path | None = None) -> None:
        self.port = free_port()
        super().__init__(voucherhook("serve", "--port", str(self.port), *extra), env, cwd)
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_url = f"{self.url}/webhooks/voucherify"
        try:
            wait_for(self._healthy, 30, what=f"receiver on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"receiver exited:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class Worker(Process):
    def __init__(self, env: dict[str, str], *extra: str) -> None:
        super().__init__(voucherhook("worker", *extra), env)
