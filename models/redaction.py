"""Personal data in what is stored, and how it is taken out: pure, no I/O.

A stored delivery is redacted by walking its JSON:

- a **person** (a dict under `customer`, `holder`, `referrer`, `referee` or `user`, or any dict
  whose `object` is `customer` or `user`) keeps only its `id` and `object`; every other field
  (name, email, phone, address, birthdate, source_id, metadata, summary, ...) becomes null;
- anywhere else, the fields in `PERSONAL_FIELDS` become null (email, phone, first/last names,
  addresses, birthdate/birthday, `metadata`, `tracking_id`, IP addresses, user agents);
- then every other string that is one of the personal values just removed (a `tracking_id`
  equal to the customer's source id, an order `source_id` that is their email), or contains
  one or an email address, is taken out too, except in `PROTECTED_FIELDS`.

Everything the ledger, the loyalty cards and the notification keys read is kept: ids (`id`,
`*_id`, a child's parent `redemption`), amounts, points, balances, times, statuses, types,
codes, campaign and reward names. So the books folded from a redacted log are the books folded
from the original one, and a redacted event has no email address to notify.

A redacted JSON object body carries `"voucherhook_redacted": true` at its root
(`is_redacted`); a body that is not JSON is replaced whole by `REDACTED_BODY`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"
"""What stands where personal text was: a notification's body, part of a free-text string."""

REDACTED_BODY = REDACTED.encode()
"""The whole stored body of a delivery that is not JSON and had to go."""

MARK = "voucherhook_redacted"
"""The root key of a redacted JSON object body."""

PERSON_KEYS = frozenset({"customer", "holder", "referrer", "referee", "user"})
"""A dict under one of these keys is a person."""

PERSON_OBJECTS = frozenset({"customer", "user"})
"""A dict whose `object` is one of these is a person, wherever it is."""

PERSON_KEPT = frozenset({"id", "object"})
"""What a person keeps: the id the loyalty cards name as holder, and what it is."""

PERSONAL_FIELDS = frozenset(
    {
        "email",
        "emails",
        "phone",
        "phone_number",
        "phones",
        "mobile",
        "first_name",
        "last_name",
        "middle_name",
        "full_name",
        "customer_name",
        "birthdate",
        "birthday",
        "date_of_birth",
        "address",
        "addresses",
        "billing_address",
        "shipping_address",
        "metadata",
        "tracking_id",
        "ip",
        "ip_address",
        "client_ip",
        "remote_addr",
        "user_agent",
    }
)
"""Fields that are null in a redacted body wherever they are."""

_NOT_LOOKED_FOR = frozenset(
    {
        "metadata",
        "birthdate",
        "birthday",
        "date_of_birth",
        "ip",
        "ip_address",
        "client_ip",
        "remote_addr",
        "user_agent",
    }
)
"""Personal fields whose values are not looked for elsewhere in the body: metadata's values
are words like "en" or "EMEA" that would take innocent strings with them, and a date, an IP
address or a user agent is not what names a person in other fields."""

_NAMES_A_PERSON = frozenset({"name", "source_id"})
"""Fields personal in a person only (a campaign has a name, an order a source id): removed
there with the rest of the person, and their values looked for elsewhere."""

_IDENTIFYING = (PERSONAL_FIELDS - _NOT_LOOKED_FOR) | _NAMES_A_PERSON
"""Removed fields whose strings are looked for elsewhere in the body."""

PROTECTED_FIELDS = frozenset(
    {
        "id",
        "object",
        "type",
        "status",
        "result",
        "state",
        "date",
        "created_at",
        "updated_at",
        "redemption",
        "code",
        MARK,
    }
)
"""Strings never changed outside a person (with every `*_id` but `source_id`): the ids, times,
statuses and codes the rules read."""

_UNPROTECTED_IDS = frozenset({"source_id", "tracking_id"})

SAFE_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})
"""The stored request headers a redacted event keeps; the others (user agent, forwarded-for
addresses, anything added later) go."""

KEPT_RECIPIENT_CHANNELS = frozenset({"webhook"})
"""Channels whose recipient is not a person (the operations webhook): it stays."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_SHORTEST_EQUAL = 3
"""A personal value shorter than this is not looked for elsewhere (initials, "Al")."""
_SHORTEST_INSIDE = 6
"""A personal value is looked for inside longer strings only from this length (or if it is an
email address): a short name would cut words out of unrelated text."""


@dataclass(frozen=True)
class Redaction:
    value: Any
    """The redacted copy."""
    removed: frozenset[str]
    """The personal strings taken out (to look for in the row's other columns)."""


@dataclass(frozen=True)
class RedactedBody:
    body: bytes
    removed: frozenset[str]
    json: bool
    """False when the body was not JSON and is now `REDACTED_BODY` whole."""


def redact(value: Any, also: Iterable[str] = ()) -> Redaction:
    """A copy of a JSON value without its personal data; `also` are strings known to be
    personal (a forgotten customer's email) that go wherever they appear."""
    removed: set[str] = set()
    walked = _walk(value, None, removed)
    wanted = _wanted(removed | {text for text in also if text})
    return Redaction(_scrub(walked, None, wanted), frozenset(removed))


def redact_body(body: bytes, also: Iterable[str] = ()) -> RedactedBody:
    """A stored body redacted (`redact`), as compact JSON with the `MARK`; a body that is not
    JSON, or too deep to walk, becomes `REDACTED_BODY`."""
    try:
        parsed = json.loads(body)
        done = redact(parsed, also)
        value = done.value
        if isinstance(value, dict):
            value[MARK] = True
        text = json.dumps(value, separators=(",", ":"))
    except (ValueError, RecursionError):
        return RedactedBody(REDACTED_BODY, frozenset(), json=False)
    return RedactedBody(text.encode(), done.removed, json=True)


def is_redacted(body: Mapping[str, Any]) -> bool:
    """Whether a parsed body is one `redact_body` wrote."""
    return body.get(MARK) is True


def redact_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in headers.items() if name.lower() in SAFE_HEADERS}


def scrub_text(text: str | None, also: Iterable[str] = (), *, marker: str = REDACTED) -> str | None:
    """Free text (an error message) without email addresses and without the strings `also`,
    each replaced by `marker`."""
    if text is None:
        return None
    wanted = _wanted(also)
    return _replace_inside(text, wanted.inside, marker) if text else text


@dataclass(frozen=True)
class NotificationRedaction:
    recipient: str
    subject: str
    body: str
    error: str | None


def redact_notification(
    seq: int, channel: str, recipient: str, subject: str, error: str | None, also: Iterable[str]
) -> NotificationRedaction:
    """A delivery without its rendered text or its person's address.

    An email recipient becomes `[redacted #SEQ]`: one per delivery, so two deliveries of one
    object to two addresses stay distinct under their unique key, and none is a real address.
    """
    kept = channel in KEPT_RECIPIENT_CHANNELS
    return NotificationRedaction(
        recipient=recipient if kept else f"{REDACTED[:-1]} #{seq}]",
        subject=REDACTED if subject else "",
        body=REDACTED,
        error=scrub_text(error, [*also, *([] if kept else [recipient])]),
    )


# A customer's data, for an erasure request -------------------------------------------------


def customer_values(value: Any, customer_id: str) -> frozenset[str]:
    """The personal strings of the persons with this id in a JSON value: their emails, names,
    source ids, phones, address lines."""
    found: set[str] = set()
    for person in _persons(value, None):
        if person.get("id") == customer_id:
            for key, field in person.items():
                if key in _IDENTIFYING:
                    found.update(_strings(field))
    return frozenset(text for text in found if text)


def email_terms(values: Iterable[str]) -> list[str]:
    """The email addresses among a customer's personal strings, as given and in lower case."""
    emails = {text for text in values if _EMAIL.fullmatch(text.strip())}
    return sorted(emails | {email.lower() for email in emails})


def search_terms(customer_id: str, values: Iterable[str]) -> list[str]:
    """What to look for in stored bodies to find everything about a customer: the id, and their
    email addresses (`email_terms`)."""
    return sorted({customer_id, *email_terms(values)})


def mentions(body: bytes, customer_id: str, emails: Collection[str] = ()) -> bool:
    """Whether a stored body names the customer: their id as a whole word in any string (or
    anywhere, in a body that is not JSON), or one of their email addresses."""
    word = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(customer_id)}(?![A-Za-z0-9_])")
    folded = [email.casefold() for email in emails]
    try:
        strings: Iterable[str] = list(_strings(json.loads(body)))
    except (ValueError, RecursionError):
        text = body.decode("utf-8", "replace")
        return bool(word.search(text)) or any(email in text.casefold() for email in folded)
    return any(
        word.search(text) or any(email in text.casefold() for email in folded) for text in strings
    )


# The walk ---------------------------------------------------------------------------------


def _is_person(key: str | None, value: Mapping[str, Any]) -> bool:
    return key in PERSON_KEYS or value.get("object") in PERSON_OBJECTS


def _walk(value: Any, key: str | None, removed: set[str]) -> Any:
    if isinstance(value, dict):
        if _is_person(key, value):
            kept: dict[str, Any] = {}
            for name, field in value.items():
                if name in PERSON_KEPT:
                    kept[name] = field
                    continue
                if name in _IDENTIFYING:
                    removed.update(_strings(field))
                kept[name] = None
            return kept
        out: dict[str, Any] = {}
        for name, field in value.items():
            if name in PERSONAL_FIELDS:
                if name in _IDENTIFYING:
                    removed.update(_strings(field))
                out[name] = None
            else:
                out[name] = _walk(field, name, removed)
        return out
    if isinstance(value, list):
        return [_walk(item, key, removed) for item in value]
    return value


@dataclass(frozen=True)
class _Wanted:
    equal: frozenset[str]
    """Case-folded values: a string equal to one goes."""
    inside: re.Pattern[str]
    """Emails and longer values: replaced where they appear inside a string."""


def _wanted(values: Iterable[str]) -> _Wanted:
    cleaned = {text.strip() for text in values if isinstance(text, str)}
    equal = frozenset(text.casefold() for text in cleaned if len(text) >= _SHORTEST_EQUAL)
    inside = sorted(
        (t for t in cleaned if len(t) >= _SHORTEST_INSIDE or "@" in t), key=len, reverse=True
    )
    alternatives = [_EMAIL.pattern, *(re.escape(text) for text in inside)]
    return _Wanted(equal, re.compile("|".join(alternatives), re.IGNORECASE))


def _protected(key: str | None) -> bool:
    if key is None:
        return False
    if key in PROTECTED_FIELDS:
        return True
    return key.endswith(("_id", "_ids")) and key not in _UNPROTECTED_IDS


def _scrub(value: Any, key: str | None, wanted: _Wanted) -> Any:
    if isinstance(value, dict):
        return {name: _scrub(field, name, wanted) for name, field in value.items()}
    if isinstance(value, list):
        return [_scrub(item, key, wanted) for item in value]
    if isinstance(value, str) and value and not _protected(key):
        if value.strip().casefold() in wanted.equal:
            return None
        return _replace_inside(value, wanted.inside)
    return value


def _replace_inside(text: str, pattern: re.Pattern[str], marker: str = REDACTED) -> str:
    return pattern.sub(marker, text)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for field in value.values():
            yield from _strings(field)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _persons(value: Any, key: str | None) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, dict):
        if _is_person(key, value):
            yield value
        for name, field in value.items():
            yield from _persons(field, name)
    elif isinstance(value, list):
        for item in value:
            yield from _persons(item, key)
