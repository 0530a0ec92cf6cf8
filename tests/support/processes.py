"""The real `voucherhook` processes, started as an operator would start them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from receiver.signature import HEADER
from tests.support.services import free_port, wait_for

SECRET = "whsec_test_secret_0123456789"
ADMIN_TOKEN = "admin_test_token_5f0c9e2a71d4"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def base_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOUCHERHOOK_", "REDIS_", "PROMETHEUS_"))
    }
    env.update(
        DATABASE_URL=database_url,
        VOUCHERIFY_WEBHOOK_SECRET=SECRET,
        VOUCHERHOOK_ADMIN_TOKEN=ADMIN_TOKEN,
        VOUCHERHOOK_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def worker_env(postgres_url: str, redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    """For tests with workers: fast sweeps and retries, so recovery shows within seconds, and
    notification rate limits the loopback sinks can take, so that a thousand events do not
    wait on the defaults (one webhook a second: `tests/test_notification_pacing.py` holds
    the workers to the defaults). What a dead worker held is recovered by its leases at their
    default expiry (tests/test_recovery.py runs with the recovery settings at their defaults)."""
    return base_env(
        postgres_url,
        redis_url,
        VOUCHERHOOK_QUEUE=queue,
        VOUCHERHOOK_SWEEP_INTERVAL="0.5",
        VOUCHERHOOK_SWEEP_AFTER="2",
        VOUCHERHOOK_RETRY_BACKOFF="0.5",
        VOUCHERHOOK_RETRY_BACKOFF_MAX="2",
        **{**SINK_RATES, **extra},
    )


SINK_RATES = {"VOUCHERHOOK_NOTIFY_WEBHOOK_RATE": "1000", "VOUCHERHOOK_NOTIFY_EMAIL_RATE": "1000"}


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

    def shutdown(self, timeout: float = 60) -> None:
        """SIGTERM to the process alone, as a service manager that spares its children does:
        a worker finishes the tasks under way (its pool processes, sent SIGTERM too, would
        die at once), then exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout)
        self._out.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()


def post(url: str, body: bytes, signature: str | None = None, **headers: str) -> httpx.Response:
    """POST a delivery as Voucherify does, with `signature` in its header when given."""
    if signature is not None:
        headers[HEADER] = signature
    return httpx.post(url, content=body, headers=headers, timeout=30)


def voucherhook(*args: str) -> list[str]:
    return [sys.executable, "-m", "workers.cli", *args]


class Receiver(Process):
    def __init__(
        self,
        env: dict[str, str],
        *extra: str,
        cwd: Path | None = None,
        ready_within: float = 30,
    ) -> None:
        self.port = free_port()
        super().__init__(voucherhook("serve", "--port", str(self.port), *extra), env, cwd)
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_url = f"{self.url}/webhooks/voucherify"
        try:
            wait_for(self._healthy, ready_within, what=f"receiver on port {self.port}")
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
    """`voucherhook worker`; its /metrics on a free port of its own (`metrics_url`), unless
    `--metrics-port` is given, so that several run side by side."""

    def __init__(self, env: dict[str, str], *extra: str) -> None:
        if "--metrics-port" in extra:
            self.metrics_port = int(extra[extra.index("--metrics-port") + 1])
        else:
            self.metrics_port = free_port()
            extra = (*extra, "--metrics-port", str(self.metrics_port))
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        super().__init__(voucherhook("worker", *extra), env)


def pool_children(process: Process) -> list[int]:
    """The pids of a process's direct children (a prefork worker's pool processes)."""
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    try:
        return [int(pid) for pid in path.read_text().split()]
    except OSError:
        return []


class Fleet:
    """The receivers and workers of one test; `stop()` ends every one of them, whatever
    happened, and `logs()` gathers their output for a failure message."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.receivers: list[Receiver] = []
        self.workers: list[Worker] = []
        self._ended: list[Process] = []

    def receiver(
        self, *extra: str, env: dict[str, str] | None = None, ready_within: float = 30
    ) -> Receiver:
        receiver = Receiver(env or self.env, "--no-worker", *extra, ready_within=ready_within)
        self.receivers.append(receiver)
        return receiver

    def worker(self, *extra: str, env: dict[str, str] | None = None) -> Worker:
        worker = Worker(env or self.env, *extra)
        self.workers.append(worker)
        return worker

    def kill(self, process: Receiver | Worker) -> None:
        """SIGKILL the process and its children; it stays in `logs()`."""
        process.kill()
        for group in (self.receivers, self.workers):
            if process in group:
                group.remove(process)  # type: ignore[arg-type]
        self._ended.append(process)

    @property
    def webhook_urls(self) -> list[str]:
        return [receiver.webhook_url for receiver in self.receivers]

    def stop(self) -> None:
        for process in [*self.receivers, *self.workers]:
            process.stop()
        self._ended += [*self.receivers, *self.workers]
        self.receivers, self.workers = [], []

    def logs(self, tail: int = 3000) -> str:
        processes = [*self._ended, *self.receivers, *self.workers]
        return "\n".join(
            f"--- {type(p).__name__} pid {p.pid}:\n{p.output()[-tail:]}" for p in processes
        )

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.stop()
        if kind is not None:
            print(self.logs())  # shown by pytest with the failure
