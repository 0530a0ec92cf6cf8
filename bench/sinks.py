"""The worker benchmark's peers on loopback: an HTTP endpoint and an SMTP server that accept
every message and count them, in a process of their own.

They stand for Slack's servers and a mail relay, which run on other machines: here they share
the benchmark machine's cores with the worker, so each costs as little CPU per message as a
real server on this machine can. The HTTP endpoint is uvicorn (httptools, uvloop, keep-alive,
no access log) with a bare ASGI app that reads the body and answers 200; the SMTP server is
aiosmtpd, which answers each command and counts each message without parsing it. The counts
live in shared memory, so that polling them costs neither process a request.

Both refuse nothing: retries and refusals are the tests' business (`tests/support/sinks.py`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from bench.receiver import HOST, BenchError, free_port, process_cpu_seconds

START_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
WEBHOOKS, EMAILS = 0, 1


def _serve(http_port: int, smtp_port: int, counts: Any, ready: Any) -> None:
    """The sinks' process: both servers on one event loop, until SIGTERM."""
    # Forked with the benchmark's own SIGTERM handler: uvicorn takes the signal, shuts down,
    # then raises it again, which must end this process, not run the benchmark's cleanup.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import uvicorn
    from aiosmtpd.smtp import SMTP, Envelope, Session

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            counts[WEBHOOKS] += 1
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    class Count:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            counts[EMAILS] += 1
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        smtp = await loop.create_server(
            lambda: SMTP(Count(), hostname="bench-sink"), HOST, smtp_port
        )
        config = uvicorn.Config(
            app, host=HOST, port=http_port, log_level="warning", access_log=False,
            lifespan="off", backlog=2048,
        )  # fmt: skip
        server = uvicorn.Server(config)

        async def announce() -> None:
            while not server.started:
                await asyncio.sleep(0.01)
            ready.set()

        waiting = asyncio.create_task(announce())
        try:
            await server.serve()
        finally:
            waiting.cancel()
            smtp.close()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


class LoopbackSinks:
    """The process serving both sinks; `webhooks` and `emails` are the messages accepted."""

    def __init__(self) -> None:
        # Forked: the benchmark has started no thread yet, and a spawned process would import
        # the whole benchmark again first.
        context = multiprocessing.get_context("fork")
        self.http_port = free_port()
        self.smtp_port = free_port()
        self._counts: SynchronizedArray[int] = context.Array("q", 2, lock=False)  # type: ignore[assignment]
        self._ready = context.Event()
        self._process = context.Process(
            target=_serve,
            args=(self.http_port, self.smtp_port, self._counts, self._ready),
            name="bench-sinks",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}/hooks/bench"

    @property
    def smtp_url(self) -> str:
        return f"smtp://{HOST}:{self.smtp_port}"

    @property
    def webhooks(self) -> int:
        return int(self._counts[WEBHOOKS])

    @property
    def emails(self) -> int:
        return int(self._counts[EMAILS])

    def cpu_seconds(self) -> float:
        """User + system CPU the sinks' process has used."""
        pid = self._process.pid
        return 0.0 if pid is None else process_cpu_seconds(pid)

    def __enter__(self) -> LoopbackSinks:
        self._process.start()
        if not self._ready.wait(START_TIMEOUT):
            self.__exit__()
            raise BenchError(f"the loopback sinks did not start within {START_TIMEOUT:g}s")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._process.pid is None:
            return
        self._process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        self._process.join(max(0.0, deadline - time.monotonic()))
        if self._process.is_alive():
            self._process.kill()
            self._process.join(STOP_TIMEOUT)
