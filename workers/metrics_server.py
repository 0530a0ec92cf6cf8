"""A worker's /metrics: what its processes counted (`workers.metrics`), added up from their
files, for Prometheus, with the operators' token as the web processes ask it.

A small HTTP server on a thread of the worker's main process. What reaches it before the token
is checked costs little and for a short time: a request line and headers of bounded size (the
standard library's limits), `TIMEOUT` seconds at most per connection, `CONNECTIONS`
connections at once (more are closed at once), no body read, and a scrape's text computed at
most once a second however many ask.
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from receiver.limits import Throttled

log = structlog.get_logger(__name__)

TIMEOUT = 10.0
CONNECTIONS = 8
CACHE_SECONDS = 1.0


class MetricsPortUnavailable(Exception):
    """The port cannot be listened on; the message says what to do."""


class MetricsServer:
    """Listens as soon as it is made (so a taken port fails the worker's start), serves once
    started."""

    def __init__(self, host: str, port: int, token: str, directory: str) -> None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        try:
            self._server = _Server((host, port), _Handler, token.encode(), registry)
        except OSError as exc:
            raise MetricsPortUnavailable(
                f"worker /metrics cannot listen on {host}:{port} ({exc.strerror or exc}): "
                "another worker on this machine has it? give each worker its own "
                "VOUCHERHOOK_WORKER_METRICS_PORT (or --metrics-port), or 0 for none"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("metrics_serving", port=self.port)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        token: bytes,
        registry: CollectorRegistry,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.token = token
        self._registry = registry
        self._slots = threading.BoundedSemaphore(CONNECTIONS)
        self._lock = threading.Lock()
        self._text = b""
        self._at = float("-inf")
        self.refused = Throttled(lambda **fields: log.warning("admin_unauthorized", **fields))
        super().__init__(address, handler)

    def scrape(self) -> bytes:
        with self._lock:
            if time.monotonic() - self._at >= CACHE_SECONDS:
                self._text = generate_latest(self._registry)
                self._at = time.monotonic()
            return self._text

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    timeout = TIMEOUT
    server: _Server
    server_version = "voucherhook"
    sys_version = ""

    def do_GET(self) -> None:
        if self.path.partition("?")[0] != "/metrics":
            self._answer(404, b"not found: the worker serves /metrics only\n")
            return
        scheme, _, given = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), self.server.token
        ):
            self.server.refused(path="/metrics")
            self._answer(
                401,
                b"missing or wrong admin token: send `Authorization: Bearer <token>` with the "
                b"value of VOUCHERHOOK_ADMIN_TOKEN\n",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        self._answer(200, self.server.scrape(), content_type=CONTENT_TYPE_LATEST)

    def _answer(
        self,
        code: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if code != 200:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the scrapes are the metrics' own business."""
