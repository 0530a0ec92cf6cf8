"""A sender that behaves like Voucherify: distinct, realistic events, signed, sent at a steady
rate to one or more receivers, each delivery retried with backoff until it gets a 2xx.

    workload = Workload([receiver.webhook_url], Load(events=600, rate=40))
    workload.start()
    ...                      # inject faults meanwhile; workload.fault("what") notes each one
    workload.wait()
    check(engine, workload, webhook_sink=sink).assert_ok()   # tests.support.checker

What the events are: `redemption.succeeded` of discount vouchers, gift cards, promotion tiers
and loyalty cards paying with points, one stacked redemption (a parent and two children),
`customer.reward_redemptions.completed` on a few shared loyalty cards (so several workers lock
the same card), `redemption.rollback.succeeded` of redemptions in the set (the order kept or
cancelled), and a few types without a handler, which are only stored (`ignored`). About a
third are raw payloads (the type in the URL), the rest in a v2024-01-01 envelope, some of them
a distribution's. Every id carries a tag unique to the workload, so two workloads never share
a Voucherify object.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from receiver.signature import HEADER, compact, sign
from tests.support.payloads import REDEMPTION, REWARD_REDEMPTION, dumps, envelope
from tests.support.payloads import reward_redemption as reward_payload
from tests.support.processes import SECRET
from tests.unit.recorded import ROLLBACK, redemption, rollback, stack

Json = dict[str, Any]

KEY = SECRET.encode()
IGNORED_TYPES = ("voucher.updated", "voucher.published", "customer.created")
CAMPAIGNS = ("camp_kwMyXFKquedx8FzXNpVPN7QU", "camp_summer_sale", "camp_welcome_10")
# The share of each kind of event (a rollback needs an earlier redemption to roll back).
MIX = {
    "discount": 30,
    "gift": 8,
    "tier": 6,
    "loyalty": 10,
    "reward": 24,
    "rollback": 12,
    "ignored": 6,
}
RAW_SHARE = 0.3
BASE_TIME = datetime(2024, 5, 13, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    """One Voucherify event and the requests that deliver it."""

    event_id: str
    """The identity the receiver must answer (README, "Event identity")."""
    event_type: str
    data: Json
    """The event's payload: what the posting, card and notification rules read."""
    path: str
    """Appended to the receiver's webhook URL: "" for an envelope, "/TYPE" for a raw payload."""
    body: bytes
    redelivery: bytes
    """What a second delivery of it carries: an envelope with a fresh send-out id (the same
    event id), or the same raw bytes."""
    original: str | None = None
    """A rollback's original redemption id."""
    redemption_id: str | None = None
    """The `r_…` id of a redemption."""


@dataclass(frozen=True)
class Load:
    """How the workload sends: how many events, how fast, how many requests at once."""

    events: int = 600
    rate: float = 40.0
    """New events per second (each event's first attempt is due at i / rate)."""
    concurrency: int = 24
    """Requests in flight at most (retries included)."""
    duplicate: bool = False
    """Deliver every event twice at the same moment, to two different receivers."""
    shuffle: bool = False
    """Send in random order: rollbacks before their originals, cards' events in any order."""
    seed: int = 1

    def describe(self) -> str:
        parts = [
            f"{self.events} events at {self.rate:g}/s ({self.events / self.rate:.0f} s)",
            f"{self.concurrency} in flight",
        ]
        if self.duplicate:
            parts.append("each delivered twice concurrently")
        if self.shuffle:
            parts.append("shuffled")
        return ", ".join(parts)


@dataclass
class Delivery:
    """One copy of an event as the sender saw it: its attempts and how it ended."""

    attempts: int = 0
    status: int | None = None
    """The last answer's status code (None: never answered); a 2xx ends the retries."""
    event_id: str | None = None
    """The `event_id` the receiver answered."""
    last_error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def make_events(
    count: int, *, seed: int = 1, cards: int = 6, redeliver: bool = False
) -> list[Event]:
    """`count` distinct events (at least 20), in the order Voucherify produced them.
    `redeliver`: give enveloped ones a second send-out id (else `redelivery` is `body`)."""
    return _Generator(seed, cards, redeliver).events(max(count, 20))


class _Generator:
    def __init__(self, seed: int, cards: int, redeliver: bool) -> None:
        self.redeliver = redeliver
        self.rng = random.Random(seed)
        self.tag = uuid.uuid4().hex[:8]
        self.customers = [self._customer(n) for n in range(cards)]
        self.cards = [f"v_card_{self.tag}_{n}" for n in range(cards)]
        self.redemptions: list[Json] = []
        self.made: list[Event] = []

    def events(self, count: int) -> list[Event]:
        self._stack()
        kinds, weights = list(MIX), list(MIX.values())
        while len(self.made) < count:
            kind = self.rng.choices(kinds, weights)[0]
            if kind == "rollback" and not self.redemptions:
                kind = "discount"
            getattr(self, f"_{kind}")(len(self.made))
        return self.made

    # -- one method per kind of event -----------------------------------------------------

    def _discount(self, i: int) -> None:
        data = self._redemption(i, kind="discount", campaign_id=self.rng.choice(CAMPAIGNS))
        self._add_redemption(i, data)

    def _gift(self, i: int) -> None:
        data = self._redemption(i, kind="gift", voucher_id=f"v_gift_{self.tag}_{i % 5}")
        self._add_redemption(i, data)

    def _tier(self, i: int) -> None:
        campaign = self.rng.choice((None, *CAMPAIGNS))
        data = self._redemption(i, campaign_id=campaign, tier_id=f"promo_{self.tag}_{i % 3}")
        self._add_redemption(i, data)

    def _loyalty(self, i: int) -> None:
        n = self.rng.randrange(len(self.cards))
        points = self.rng.choice((0, *range(10, 400, 10)))
        data = self._redemption(i, kind="loyalty", voucher_id=self.cards[n], points=points)
        self._hold_card(data, n)
        voucher = data["voucher"]
        balance = self.rng.randrange(0, 5000)
        voucher["loyalty_card"] = {"points": balance + 400, "balance": balance}
        self._add_redemption(i, data)

    def _reward(self, i: int) -> None:
        n = self.rng.randrange(len(self.cards))
        rewr = f"rewr_{self.tag}{i:05d}"
        data = reward_payload(
            rewr,
            self.cards[n],
            balance=self.rng.randrange(0, 5000),
            points=self.rng.choice((0, *range(20, 300, 20))),
            at=self._time(i),
        )
        self._hold_card(data, n)
        data["reward_redemption"]["customer_id"] = self.customers[n]["id"]
        self._add(i, REWARD_REDEMPTION, data, rewr, distribution=self.rng.random() < 0.5)

    def _rollback(self, i: int) -> None:
        original = self.redemptions.pop(self.rng.randrange(len(self.redemptions)))
        rr = f"rr_{self.tag}{i:05d}"
        data = rollback(original, rr, order_status=self.rng.choice(("PAID", "CANCELED")))
        at = self._time(i)
        data["created_at"] = data["redemption_rollback"]["date"] = at
        self._add(i, ROLLBACK, data, rr, original=original["redemption"]["id"])

    def _ignored(self, i: int) -> None:
        event_type = self.rng.choice(IGNORED_TYPES)
        data = {
            "voucher": {"id": f"v_other_{self.tag}_{i}", "object": "voucher"},
            "customer": self.rng.choice(self.customers),
            "created_at": self._time(i),
        }
        self._add(i, event_type, data, None, raw=False)

    def _stack(self) -> None:
        """One stacked redemption: its parent and two children, under this workload's ids."""
        parent, children = stack()
        for data in (parent, *children):
            retagged: Json = json.loads(
                json.dumps(data).replace("r_stack", f"r_stack_{self.tag}")
                .replace("ord_stack", f"ord_stack_{self.tag}")
            )  # fmt: skip
            i = len(self.made)
            self._add(i, REDEMPTION, retagged, retagged["redemption"]["id"])

    # -- building blocks --------------------------------------------------------------------

    def _redemption(self, i: int, **options: Any) -> Json:
        amount = self.rng.randrange(500, 30000)
        applied = self.rng.choice((0, self.rng.randrange(1, amount // 4 + 2)))
        options.setdefault("voucher_id", f"v_{self.tag}_{i:05d}")
        data = redemption(
            f"r_{self.tag}{i:05d}",
            order_id=f"ord_{self.tag}{i:05d}",
            amount=amount,
            applied=applied,
            created_at=self._time(i),
            **options,
        )
        customer = self.rng.choice(self.customers)
        data["customer"] = copy.deepcopy(customer)
        data["redemption"]["customer_id"] = customer["id"]
        return data

    def _hold_card(self, data: Json, n: int) -> None:
        """The card's holder is the same customer in every event about the card."""
        holder = copy.deepcopy(self.customers[n])
        data["voucher"]["holder_id"] = holder["id"]
        data["customer"] = holder
        if "holder" in data:
            data["holder"] = copy.deepcopy(holder)
        if "redemption" in data and isinstance(data["redemption"], dict):
            data["redemption"]["customer_id"] = holder["id"]

    def _add_redemption(self, i: int, data: Json) -> None:
        self.redemptions.append(data)
        self._add(i, REDEMPTION, data, data["redemption"]["id"])

    def _add(
        self,
        i: int,
        event_type: str,
        data: Json,
        object_id: str | None,
        *,
        original: str | None = None,
        distribution: bool = False,
        raw: bool | None = None,
    ) -> None:
        if raw is None:
            raw = object_id is not None and self.rng.random() < RAW_SHARE
        redemption_id = data["redemption"]["id"] if event_type == REDEMPTION else None
        if raw:
            body = dumps(data)
            event = Event(
                f"{event_type}:{object_id}", event_type, data, f"/{event_type}", body, body,
                original, redemption_id,
            )  # fmt: skip
        else:
            event_id = f"evt_{self.tag}_{i:05d}"
            wrapped = envelope(event_type, data, event_id=event_id, distribution=distribution)
            wrapped["created_at"] = wrapped["event"]["created_at"] = self._time(i)
            body = dumps(wrapped)
            again = dumps({**wrapped, "id": f"whs_{uuid.uuid4().hex[:20]}"})
            event = Event(
                event_id, event_type, data, "", body, again if self.redeliver else body,
                original, redemption_id,
            )  # fmt: skip
        self.made.append(event)

    def _customer(self, n: int) -> Json:
        email = f"customer{n}.{self.tag}@example.com" if n % 3 else None
        return {
            "id": f"cust_{self.tag}_{n}",
            "name": f"Customer {n}",
            "email": email,
            "source_id": f"shopper-{n}",
            "metadata": {},
            "object": "customer",
        }

    def _time(self, i: int) -> str:
        at = BASE_TIME + timedelta(seconds=7 * i + self.rng.randrange(7))
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signed(body: bytes) -> dict[str, str]:
    """Voucherify's signature header: the HMAC of the body with JSON whitespace removed."""
    return {HEADER: sign(compact(body), KEY), "content-type": "application/json"}


@dataclass
class _Progress:
    started: float | None = None
    finished: float | None = None
    answers: Counter[str] = field(default_factory=Counter)
    faults: list[tuple[float, str]] = field(default_factory=list)


class Workload:
    """Sends the events of a `Load` to receivers in a background thread, as Voucherify does:
    every delivery is retried with exponential backoff until it is answered 2xx (or until
    `deadline` seconds after the start). Round-robin over `targets`, per attempt."""

    def __init__(
        self,
        targets: Sequence[str],
        load: Load | None = None,
        *,
        backoff: float = 0.5,
        backoff_max: float = 4.0,
        deadline: float = 180.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.load = load or Load()
        made = make_events(self.load.events, seed=self.load.seed, redeliver=self.load.duplicate)
        if self.load.shuffle:
            random.Random(self.load.seed).shuffle(made)
        self.events: list[Event] = made
        """In the order they are sent."""
        copies = 2 if self.load.duplicate else 1
        self.deliveries: dict[str, list[Delivery]] = {
            event.event_id: [Delivery() for _ in range(copies)] for event in made
        }
        self._targets = list(targets)
        self._backoff, self._backoff_max = backoff, backoff_max
        self._deadline, self._timeout = deadline, request_timeout
        self._progress = _Progress()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workload", daemon=True)
        self._error: BaseException | None = None

    # -- driving it -------------------------------------------------------------------------

    def start(self) -> Workload:
        self._progress.started = time.monotonic()
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> Workload:
        """Until every delivery ended (2xx, or the deadline passed)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the workload still runs after {timeout}s: {self.summary()}")
        if self._error is not None:
            raise self._error
        return self

    def run(self) -> Workload:
        return self.start().wait()

    def stop(self) -> None:
        """Give up on what is left (a test's cleanup)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def __enter__(self) -> Workload:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def retarget(self, targets: Sequence[str]) -> None:
        """Send the next attempts to these receivers (one was replaced by another)."""
        with self._lock:
            self._targets = list(targets)

    def fault(self, description: str) -> None:
        """Note a fault injected now; it goes into the checker's result and report."""
        with self._lock:
            self._progress.faults.append((self.elapsed(), description))

    # -- what happened ----------------------------------------------------------------------

    def elapsed(self) -> float:
        started = self._progress.started
        return 0.0 if started is None else time.monotonic() - started

    @property
    def duration(self) -> float:
        """From the start to the last answer (or now, while it runs)."""
        started, finished = self._progress.started, self._progress.finished
        if started is None:
            return 0.0
        return (finished or time.monotonic()) - started

    @property
    def faults(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._progress.faults)

    def answers(self) -> Counter[str]:
        """Every attempt's outcome: a status code ("202", "503"), "503 without Retry-After",
        or the name of the error (ConnectError, ReadTimeout, …)."""
        with self._lock:
            return Counter(self._progress.answers)

    def accepted_ids(self) -> set[str]:
        """Events every copy of which was answered 2xx."""
        return {
            event_id
            for event_id, copies in self.deliveries.items()
            if all(copy.accepted for copy in copies)
        }

    def accepted_count(self) -> int:
        return sum(
            all(copy.accepted for copy in copies) for copies in list(self.deliveries.values())
        )

    def wait_for_accepted(self, count: int, timeout: float = 120.0) -> None:
        """Until at least `count` events are accepted: "in the middle of the load"."""
        deadline = time.monotonic() + timeout
        while self.accepted_count() < count:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError(f"{count} events not accepted in time: {self.summary()}")
            time.sleep(0.05)

    def rollbacks_before_originals(self) -> int:
        """Rollbacks sent before the redemption they roll back."""
        position = {e.redemption_id: n for n, e in enumerate(self.events) if e.redemption_id}
        return sum(
            1
            for n, event in enumerate(self.events)
            if event.original is not None and n < position[event.original]
        )

    def summary(self) -> str:
        answers = " ".join(f"{k}: {v}" for k, v in sorted(self.answers().items()))
        return (
            f"{self.accepted_count()}/{len(self.events)} accepted after "
            f"{self.duration:.1f}s; answers {answers or 'none'}"
        )

    # -- the sender -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._send_all())
        except BaseException as exc:
            self._error = exc
        finally:
            self._progress.finished = time.monotonic()

    async def _send_all(self) -> None:
        load = self.load
        limit = asyncio.Semaphore(load.concurrency)
        limits = httpx.Limits(
            max_connections=load.concurrency, max_keepalive_connections=load.concurrency
        )
        started = self._progress.started or time.monotonic()
        async with httpx.AsyncClient(timeout=self._timeout, limits=limits) as client:
            tasks = []
            for n, event in enumerate(self.events):
                delay = started + n / load.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._stopping.is_set():
                    break
                copies = self.deliveries[event.event_id]
                bodies = (event.body, event.redelivery)
                tasks += [
                    asyncio.create_task(self._deliver(client, limit, event, bodies[k], k + n, c))
                    for k, c in enumerate(copies)
                ]
            await asyncio.gather(*tasks)

    async def _deliver(
        self,
        client: httpx.AsyncClient,
        limit: asyncio.Semaphore,
        event: Event,
        body: bytes,
        first_target: int,
        delivery: Delivery,
    ) -> None:
        give_up = (self._progress.started or time.monotonic()) + self._deadline
        while not self._stopping.is_set() and time.monotonic() < give_up:
            with self._lock:
                targets = self._targets
            url = targets[(first_target + delivery.attempts) % len(targets)] + event.path
            delivery.attempts += 1
            async with limit:
                outcome = await self._attempt(client, url, body, delivery)
            self._count(outcome)
            if delivery.accepted:
                return
            pause = min(self._backoff_max, self._backoff * 2 ** (delivery.attempts - 1))
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))

    async def _attempt(
        self, client: httpx.AsyncClient, url: str, body: bytes, delivery: Delivery
    ) -> str:
        try:
            response = await client.post(url, content=body, headers=signed(body))
        except httpx.HTTPError as exc:
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return type(exc).__name__
        delivery.status = response.status_code
        if delivery.accepted:
            delivery.event_id = response.json().get("event_id")
        else:
            delivery.last_error = f"{response.status_code}: {response.text[:200]}"
        if response.status_code == 503 and "retry-after" not in response.headers:
            return "503 without Retry-After"
        return str(response.status_code)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._progress.answers[outcome] += 1
