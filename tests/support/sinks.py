"""Real peers for notifications on loopback: an SMTP server and an HTTP endpoint."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.services import free_port


class SmtpSink:
    """aiosmtpd on a free port; refuses the first `refuse` messages with a 451 (they are kept
    in `.refused_messages`), and the recipients in `refuse_to` with a 550 that quotes them.
    `.arrivals` holds when each message was accepted (time.monotonic())."""

    def __init__(self, refuse: int = 0, refuse_to: Collection[str] = ()) -> None:
        self.messages: list[Message] = []
        self.arrivals: list[float] = []
        self.refused = 0
        self.refused_messages: list[Message] = []
        self._refuse = refuse
        self._refuse_to = frozenset(refuse_to)
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self._refuse_to:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            assert isinstance(envelope.content, bytes)
            if self.refused < self._refuse:
                self.refused += 1
                self.refused_messages.append(message_from_bytes(envelope.content))
                return "451 4.3.0 try again later"
            self.messages.append(message_from_bytes(envelope.content))
            self.arrivals.append(time.monotonic())
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


class _Server(ThreadingHTTPServer):
    # The standard library's listen backlog of 5 resets connections when a worker's parallel
    # sends arrive together: a real endpoint accepts them.
    request_queue_size = 128
    daemon_threads = True


class HttpSink:
    """A threaded HTTP server that records every JSON body POSTed to it, and when it came
    (`.arrivals`, time.monotonic()), and answers `status`; `on_post(count)`, when given, is
    called with the number of posts received so far before each is answered."""

    def __init__(self, status: int = 200, on_post: Callable[[int], None] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.keys: Counter[str] = Counter()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with sink._lock:
                    sink.arrivals.append(time.monotonic())
                    sink.requests.append(body)
                    sink.keys[self.headers.get("idempotency-key", "")] += 1
                    count = len(sink.requests)
                if on_post is not None:
                    on_post(count)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.port = free_port()
        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/ops"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class Sinks:
    """Where the workers' notifications go: a real HTTP endpoint and a real SMTP server."""

    webhook: HttpSink
    smtp: SmtpSink

    def env(self) -> dict[str, str]:
        return {"NOTIFY_WEBHOOK_URL": self.webhook.url, "SMTP_URL": self.smtp.url}


@contextlib.contextmanager
def running_sinks(refuse_emails: int = 0) -> Iterator[Sinks]:
    """Both sinks, started, and stopped afterwards; the SMTP server refuses the first
    `refuse_emails` messages."""
    sinks = Sinks(HttpSink(), SmtpSink(refuse=refuse_emails))
    sinks.webhook.start()
    sinks.smtp.start()
    try:
        yield sinks
    finally:
        sinks.webhook.stop()
        sinks.smtp.stop()
