"""`voucherhook listen`: a local endpoint for NOTIFY_WEBHOOK_URL that prints what it receives,
so that trying voucherhook out shows the whole loop, notifications included, with nothing to
sign up for. It is a toy for one machine: it binds to 127.0.0.1 unless told otherwise, reads
at most `MAX_BODY` bytes of a request, gives a client `TIMEOUT` seconds, and prints text only
(control characters, which could drive the terminal, are dropped)."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

from workers.commands import CommandError
from workers.settings import Settings

MAX_BODY = 64 * 1024
TIMEOUT = 10
_printing = Lock()


def cmd_listen(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        server = ThreadingHTTPServer((args.host, args.port), _Handler)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            "(--port chooses another port)"
        ) from None
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown_host}:{args.port}/"
    print(
        f"voucherhook: listening on {url}; start the receiver with NOTIFY_WEBHOOK_URL={url} "
        "to see its notifications here (Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def readable(body: bytes) -> str:
    """A notification as a person reads it: its `text` (Slack's field), else the body."""
    try:
        text = json.loads(body).get("text")
    except (ValueError, AttributeError):
        text = None
    if not isinstance(text, str):
        text = body.decode("utf-8", "replace")
    return "".join(
        ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")
    )


class _Handler(BaseHTTPRequestHandler):
    timeout = TIMEOUT  # a client that sends nothing is dropped after this long

    def do_POST(self) -> None:
        declared = self.headers.get("content-length", "")
        if not declared.isdigit():
            self._answer(HTTPStatus.LENGTH_REQUIRED)
            return
        if int(declared) > MAX_BODY:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        body = self.rfile.read(int(declared))
        at = datetime.now(UTC).strftime("%H:%M:%SZ")
        lines = readable(body).splitlines() or [""]
        with _printing:
            print(f"{at}  {lines[0]}", *(f"           {line}" for line in lines[1:]), sep="\n")
            sys.stdout.flush()
        self._answer(HTTPStatus.OK)

    def _answer(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def log_message(self, *_args: object) -> None:
        pass  # the notifications themselves are the output
