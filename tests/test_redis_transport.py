"""voucherhook's Redis transport: a channel of a broker connection that Celery dropped after an
error fails with a connection error, which Celery logs and gets past, and never with the
AttributeError that stopped the worker for good after a Redis restart (the end-to-end proof is
`test_faults.py::test_redis_restarted_under_load_loses_nothing`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Consumer, Producer, Queue
from kombu.common import ignore_errors
from kombu.message import Message

from tests.support.services import RedisServer
from workers import redis_transport


@pytest.fixture
def dropped(redis_server: RedisServer) -> Iterator[tuple[Connection, Message]]:
    """A channel holding one message unacknowledged, in the state Celery's reconnect leaves it:
    the channel's own close failed half-way (Redis was down), and `Connection.collect()` then
    detached the transport from the connection."""
    redis_transport.install()
    queue = Queue("vh-transport")
    connection = Connection(redis_server.url)
    received: list[Message] = []
    Producer(connection.channel()).publish({"ids": ["e1"]}, routing_key=queue.name, declare=[queue])
    channel = connection.channel()
    Consumer(channel, [queue], callbacks=[lambda _, m: received.append(m)]).consume()
    connection.drain_events(timeout=5)
    assert len(received) == 1
    channel._disconnect_pools()  # what the failed close did before Redis refused it
    connection._do_close_transport()  # what collect() does after the close failed
    yield connection, received[0]
    ignore_errors(connection, channel.close)


def test_redis_urls_use_voucherhook_transport_and_keep_their_scheme(
    redis_server: RedisServer,
) -> None:
    redis_transport.install()
    with Connection(redis_server.url) as connection:
        assert isinstance(connection.transport, redis_transport.Transport)
        assert connection.as_uri() == f"redis://:**@127.0.0.1:{redis_server.port}/0"


def test_an_ack_on_a_dropped_connection_is_a_connection_error(
    dropped: tuple[Connection, Message],
) -> None:
    connection, message = dropped
    with pytest.raises(redis.exceptions.ConnectionError, match="was closed after an error"):
        message.ack()
    assert redis.exceptions.ConnectionError in connection.connection_errors


def test_closing_a_dropped_channel_holding_messages_raises_only_what_celery_ignores(
    dropped: tuple[Connection, Message],
) -> None:
    connection, message = dropped
    ignore_errors(connection, message.channel.close)  # exactly how Celery closes it
    assert message.channel.closed


def test_a_channel_shares_one_client_per_pool_across_threads(redis_server: RedisServer) -> None:
    """kombu builds a client per publish; this transport one per pool, used by every thread
    that publishes on the channel, and a new one once the pool is replaced."""
    redis_transport.install()
    queue = Queue("vh-shared-client")
    with Connection(redis_server.url) as connection:
        channel = connection.channel()
        first = channel._create_client()
        assert channel._create_client() is first
        producer = Producer(channel)
        producer.publish({"n": -1}, routing_key=queue.name, declare=[queue])

        def publish(start: int) -> None:
            for n in range(start, start + 200):
                producer.publish({"n": n}, routing_key=queue.name)

        threads = [threading.Thread(target=publish, args=(i * 200,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert channel._create_client() is first
        channel._disconnect_pools()  # a fork or a close: the pool is replaced
        assert channel._create_client() is not first
        assert channel._create_client().connection_pool is channel.pool

        received: list[int] = []
        Consumer(channel, [queue], callbacks=[lambda body, m: received.append(body["n"])]).consume()
        while len(received) < 801:
            connection.drain_events(timeout=5)
        assert sorted(received) == list(range(-1, 800))
        channel.close()
