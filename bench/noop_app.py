"""The baseline of `bench.worker`: a Celery no-op task on voucherhook's own Celery settings.

The app comes from `workers.celery_app.make_celery` with the settings of the environment
(REDIS_URL, VOUCHERHOOK_QUEUE, ...), so broker, acks_late, prefetch multiplier, serializer and
transport options are exactly those of `voucherhook worker`; only the task does nothing.

Run by the benchmark as:
    celery -A bench.noop_app worker --pool=prefork --concurrency=2 --queues=<queue> ...
"""

from __future__ import annotations

from workers.celery_app import make_celery
from workers.settings import load_settings

NOOP = "bench.noop"

app = make_celery(load_settings())


@app.task(name=NOOP, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def noop(ids: list[str]) -> None:
    """Takes what `process_events` takes (a list of event ids) and does nothing with it."""
    del ids
