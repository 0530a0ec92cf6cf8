"""The webhook endpoint: verify, store, answer. Nothing else happens before the answer.

A bare ASGI app under the Starlette router, not a Starlette request handler: it reads the few
headers it needs from the ASGI scope in one pass, reads the body from `receive`, and sends an
answer whose bytes are built with orjson. On a loaded machine the event loop is what limits
the receiver, and a Request, a JSONResponse and their wrappers cost about as much per
delivery as verifying the signature (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from starlette.concurrency import run_in_threadpool

from models.db.eventlog import NewEvent
from models.identity import Identified, identify
from receiver.config import ReceiverConfig
from receiver.deadlines import Deadlines
from receiver.limits import ByteBudget, Throttled
from receiver.metrics import DeliveryCounts, ReceiverMetrics
from receiver.signature import HEADER, parse_header, signed_form
from receiver.store import EventWriter, StoreUnavailable

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Headers kept with each event: what helps a person tell where a delivery came from. Never
# the signature: with the body it would be a delivery anyone reading a backup could replay.
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "x-forwarded-for")
_WANTED = frozenset(name.encode() for name in (HEADER, *KEPT_HEADERS))
RETRY_AFTER = "30"
# Bodies up to this size are verified on the event loop (well under a millisecond); larger
# ones in a thread, so one large body never holds up the other requests.
INLINE_BYTES = 64 * 1024
# A refusal before or instead of reading the body ends the connection: nothing unread is
# drained, and the client cannot keep a refused connection busy.
CLOSE = {"Connection": "close"}


class BodyTooLarge(Exception):
    pass


class Busy(Exception):
    """The bytes allowed for unauthenticated bodies are all in use."""


class Disconnected(Exception):
    """The client went away before its body was read: there is no one to answer."""


class Answer:
    """The status, headers and JSON body of one answer, and the outcome it is counted under."""

    __slots__ = ("body", "code", "headers", "outcome")

    def __init__(
        self, outcome: str, code: int, headers: dict[str, str] | None = None, /, **body: Any
    ) -> None:
        self.outcome = outcome
        self.code = code
        self.headers = headers
        self.body = body


class DeliveryEndpoint:
    """POST /webhooks/voucherify[/{event_type}] as an ASGI app."""

    def __init__(
        self,
        config: ReceiverConfig,
        writer: EventWriter,
        metrics: ReceiverMetrics,
        budget: ByteBudget,
    ) -> None:
        self._config = config
        self._secrets = config.secrets
        self._writer = writer
        self.counts = DeliveryCounts(metrics)
        self._budget = budget
        self._reading: Deadlines[asyncio.Task[Any]] = Deadlines(config.body_timeout, self._time_out)
        self._timed_out: set[asyncio.Task[Any]] = set()
        self._log_unauthorized = Throttled(
            lambda **fields: log.info("delivery_unauthorized", **fields)
        )

    def _time_out(self, task: asyncio.Task[Any]) -> None:
        """A body not read within the timeout: its read is cancelled, and answered 408."""
        if task.cancel():
            self._timed_out.add(task)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            answer = await self._handle(scope, receive)
        except Disconnected:
            return
        self.counts.count(answer.outcome, time.perf_counter() - started)
        await _send(send, answer)

    async def _handle(self, scope: Scope, receive: Receive) -> Answer:
        config = self._config
        headers = _headers(scope)
        # Nothing is read before the header could be a signature and the size is allowed.
        header = headers.get(HEADER)
        given = parse_header(header)
        if given is None:
            return self._unauthorized(scope, "missing" if header is None else "malformed")
        declared = _declared_length(headers.get("content-length"))
        if declared is not None and declared > config.max_body_bytes:
            return self._too_large()
        reader = _BodyReader(self._budget, config.max_body_bytes)
        path_type = scope.get("path_params", {}).get("event_type")
        task = asyncio.current_task()
        assert task is not None  # uvicorn runs each request in a task
        try:
            # One deadline among all the reads' (receiver.deadlines), not a timeout scope: a
            # timer per request costs the event loop more than verifying the signature.
            self._reading.add(task)
            try:
                body = await reader.read(receive, declared)
            except asyncio.CancelledError:
                if task not in self._timed_out:
                    raise
                self._timed_out.discard(task)
                task.uncancel()
                raise TimeoutError from None
            finally:
                self._reading.discard(task)
            if len(body) <= INLINE_BYTES:
                verdict = _check(body, given, self._secrets, path_type)
            else:
                verdict = await run_in_threadpool(_check, body, given, self._secrets, path_type)
        except BodyTooLarge:
            return self._too_large()
        except Busy:
            return Answer(
                "busy",
                503,
                CLOSE,
                status="unavailable",
                error="too many large requests at once; retry later",
            )
        except TimeoutError:
            return Answer(
                "timeout",
                408,
                CLOSE,
                status="rejected",
                error=f"body not received within {config.body_timeout:g}s",
            )
        finally:
            reader.release()
        if verdict is None:
            return self._unauthorized(scope, "does not match")
        received_at = datetime.now(UTC)
        client = scope.get("client")
        event = NewEvent(
            id=verdict.event_id,
            type=verdict.event_type,
            status=verdict.status,
            received_at=received_at,
            body=body,
            headers={k: v for k in KEPT_HEADERS if (v := headers.get(k)) is not None},
            remote_addr=client[0] if client else None,
            delivery_id=verdict.delivery_id,
            error=verdict.reason,
            # Stamped as handed to the broker in the same insert, since publishing follows the
            # commit; a failed publish clears it. Only a crash in between leaves it stamped
            # but unpublished, and VOUCHERHOOK_REDISPATCH_AFTER then catches it.
            dispatched_at=received_at if verdict.status == "pending" else None,
        )
        try:
            new = await self._writer.store(event, config.store_timeout)
        except StoreUnavailable as exc:
            return Answer(
                "unavailable",
                503,
                status="unavailable",
                error=f"database unavailable ({exc}); retry later",
            )
        if not new:
            return Answer("duplicate", 200, status="duplicate", event_id=event.id)
        if verdict.status == "quarantined":
            log.warning("delivery_quarantined", event_id=event.id, reason=verdict.reason)
            return Answer(
                "quarantined", 202, status="quarantined", event_id=event.id, reason=verdict.reason
            )
        return Answer(
            verdict.status if verdict.status == "ignored" else "accepted",
            202,
            status="accepted",
            event_id=event.id,
            type=event.type,
        )

    def _unauthorized(self, scope: Scope, reason: str) -> Answer:
        self._log_unauthorized(reason=reason, path=str(scope.get("path", ""))[:200])
        return Answer(
            "unauthorized",
            401,
            CLOSE,
            status="rejected",
            error=f"signature {reason}: {HEADER} must be the HMAC-SHA256 of the body "
            "under VOUCHERIFY_WEBHOOK_SECRET",
        )

    def _too_large(self) -> Answer:
        return Answer(
            "too_large",
            413,
            CLOSE,
            status="rejected",
            error=f"body larger than {self._config.max_body_bytes} bytes "
            "(raise VOUCHERHOOK_MAX_BODY_BYTES to accept it)",
        )


def _check(
    body: bytes, given: bytes, secrets: list[bytes], path_type: str | None
) -> Identified | None:
    """Verify, then identify by the signed bytes; None when the signature does not match."""
    signed = signed_form(body, given, secrets)
    if signed is None:
        return None
    return identify(signed, path_type)


def _headers(scope: Scope) -> dict[str, str]:
    """The headers this endpoint reads, by lowercase name; of a repeated one, the first (as
    Starlette's `Headers.get` gives it)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


def _declared_length(declared: str | None) -> int | None:
    if declared is None or not declared.isdigit() or len(declared) > 18:
        return None
    return int(declared)


async def _send(send: Send, answer: Answer) -> None:
    try:
        content = orjson.dumps(answer.body)
    except TypeError:  # a string orjson refuses (a lone surrogate): json escapes it
        content = json.dumps(answer.body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    extra = answer.headers or {}
    if answer.code == 503:
        extra = {**extra, "Retry-After": RETRY_AFTER}
    raw.extend((name.lower().encode(), value.encode("latin-1")) for name, value in extra.items())
    await send({"type": "http.response.start", "status": answer.code, "headers": raw})
    await send({"type": "http.response.body", "body": content})


class _BodyReader:
    """Reads one body within the size limit, holding its bytes against the shared budget
    (the declared length up front, else chunk by chunk) until `release`."""

    def __init__(self, budget: ByteBudget, limit: int) -> None:
        self._budget = budget
        self._limit = limit
        self._held = 0

    async def read(self, receive: Receive, declared: int | None) -> bytes:
        if declared is not None:
            self._take(declared)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self._limit:
                    raise BodyTooLarge
                if size > self._held:
                    self._take(size - self._held)
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _take(self, size: int) -> None:
        if not self._budget.take(size):
            raise Busy
        self._held += size

    def release(self) -> None:
        self._budget.give(self._held)
        self._held = 0
