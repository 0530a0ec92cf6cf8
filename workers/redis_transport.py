"""Kombu's Redis transport, with one fix: a channel of a closed connection fails as a connection
error, which Celery handles, instead of an `AttributeError`, which stops the worker.

When the broker connection breaks, Celery (5.7) collects the old connection, which detaches its
transport, then closes it and reconnects. A channel of the old connection can still be used after
that: its close restores the messages it holds unacknowledged, and a task that finishes acks its
message on it. Both build a Redis client from the connection's parameters, which are gone, and
raised `AttributeError: 'NoneType' object has no attribute 'hostname'`. Celery takes that for an
unrecoverable error, and the worker stopped taking messages for good after a Redis restart.

As a connection error, the close is ignored and the ack is logged and skipped; the message is not
lost: it is still in Redis's unacked set (or the sweep re-publishes its events), and processing an
event twice books it once.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES, redis
from redis.exceptions import ConnectionError as RedisConnectionError


def install() -> None:
    """Make redis:// and rediss:// broker URLs use this transport in this process (kombu's
    registry of URL schemes), so that logs still show the URL as given."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"


class Channel(redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise RedisConnectionError(
                "this broker connection was closed after an error; a new one is being opened"
            )
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params

    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        """One client per connection pool, instead of kombu's new `redis.Redis` (with its table
        of some 170 response callbacks) for every publish and every acknowledgement: a fifth of
        the CPU a publish costs. A client is a thread-safe front of its pool, so sharing it
        changes nothing else; a new pool (after a fork or a close) gets a new client."""
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(redis.Transport):
    Channel = Channel
