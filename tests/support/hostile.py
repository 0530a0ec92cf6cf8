"""Hostile deliveries for fuzzing the receiver: bodies, signature headers and event-type paths.

Each strategy draws one request as a plain `Delivery`; whether its signature is valid is
decided here, independently of the receiver, so a test can hold the answer to it.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from receiver.signature import HEADER, compact, sign
from tests.support.processes import SECRET

KEY = SECRET.encode()
WEBHOOK_PATH = "/webhooks/voucherify"
SUCCESS_STATUSES = {"accepted", "duplicate", "quarantined"}


@dataclass(frozen=True)
class Delivery:
    path: str
    body: bytes
    headers: dict[str, bytes] = field(default_factory=dict)

    @property
    def signature_valid(self) -> bool:
        """The receiver's rule, restated: hex HMAC of the raw or compacted body, any case,
        surrounding whitespace ignored (the header arrives latin-1 decoded)."""
        given = self.headers.get(HEADER)
        if given is None:
            return False
        text = given.decode("latin-1").strip().lower()
        return text in {sign(self.body, KEY), sign(compact(self.body), KEY)}


# --- bodies -------------------------------------------------------------------------------

# Surrogates included: json.dumps escapes them (\ud800), or they become invalid UTF-8 bytes.
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None)
short_text = st.text(any_char, max_size=12) | st.sampled_from(["", " ", "\x00", "\ud800", "é"])
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | short_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=10,
)
ids = short_text | st.from_regex(r"\Aev_[a-z0-9]{1,6}\Z") | st.sampled_from(["ev_same", "whs_1"])
event_types = (
    st.sampled_from(
        [
            "redemption.succeeded",
            "customer.reward_redemptions.completed",
            "voucher.loyalty_card.points_added",
            "my custom name",
            "",
        ]
    )
    | short_text
)


def encode(value: Any, ascii_only: bool, indent: int | None) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode(
        "utf-8", "surrogatepass"
    )


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A v2024-01-01 envelope whose every field may be missing, mistyped or odd."""
    payload: dict[str, Any] = {}
    maybe = st.booleans()
    if draw(maybe):
        payload["id"] = draw(ids | json_values)
    if draw(maybe):
        payload["type"] = draw(event_types | json_values)
    payload["data"] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "redemption": st.fixed_dictionaries({"id": ids | json_values}),
                "reward_redemption": st.fixed_dictionaries({"id": ids}),
                "transaction": json_values,
            },
        )
        | json_values
    )
    if draw(maybe):
        payload["event"] = draw(
            st.fixed_dictionaries({}, optional={"id": ids | json_values, "type": event_types})
            | json_values
        )
    payload.update(draw(st.dictionaries(short_text, json_values, max_size=3)))
    return encode(payload, draw(maybe), draw(st.sampled_from([None, 0, 2])))


@st.composite
def raw_payloads(draw: st.DrawFn) -> bytes:
    """An envelope-less payload, as a distribution's "raw payload" option sends it."""
    key = draw(st.sampled_from(["redemption", "reward_redemption", "redemption_rollback"]))
    payload = {
        key: {"id": draw(ids | json_values)},
        **draw(st.dictionaries(short_text, json_values)),
    }
    return encode(payload, draw(st.booleans()), None)


@st.composite
def jsonish(draw: st.DrawFn) -> bytes:
    """JSON text, sometimes cut short or with a byte changed."""
    body = encode(draw(json_values), draw(st.booleans()), draw(st.sampled_from([None, 1])))
    cut = draw(st.sampled_from(["whole", "truncate", "flip"]))
    if cut == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif cut == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    return body


@st.composite
def pathological(draw: st.DrawFn) -> bytes:
    """What makes a backtracking scanner slow: a string that never closes, full of escaped
    quotes, quotes or backslashes, or runs of whitespace and brackets."""
    unit = draw(st.sampled_from([b'\\"', b'"', b"\\", b'"\\', b" \t", b"[", b'{"a":']))
    return b'"' + unit * draw(st.integers(1, 50_000)) + draw(st.binary(max_size=4))


@st.composite
def respaced(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` (compact JSON) with JSON whitespace added between its tokens or around it,
    strings untouched: the same signed content, other bytes."""
    spaces = st.sampled_from([b" ", b"\n", b"\t", b"\r\n", b"  " * 50])
    out = bytearray(draw(spaces) if draw(st.booleans()) else b"")
    in_string = escaped = False
    for byte in body:
        out.append(byte)
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b",:[]{}" and draw(st.integers(0, 3)) == 0:
            out += draw(spaces)
    return bytes(out) + (draw(spaces) if draw(st.booleans()) else b"")


bodies = (
    st.binary(max_size=600)
    | jsonish()
    | envelopes()
    | raw_payloads()
    | pathological()
    | st.sampled_from(
        [b"", b"{}", b"[]", b"null", b" \n", b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00"]
    )
)


# --- paths --------------------------------------------------------------------------------

path_chars = st.characters(min_codepoint=1, max_codepoint=0x10FFFF, exclude_categories=["Cs"])
path_text = (
    st.text(path_chars, max_size=30)
    | st.text(st.sampled_from("./%-_azAZ09"), max_size=30)
    | st.from_regex(r"\A[a-z]{1,10}(\.[a-z_]{1,12}){0,4}\Z")
    | st.integers(200, 3000).map(lambda n: "a" * n)
    | st.integers(1, 200).map(lambda n: "x." * n)
)


@st.composite
def event_type_paths(draw: st.DrawFn) -> str:
    """The delivery URL's path: none, or an event type percent-encoded in several ways.

    NUL (%00) is left out here: it has a test of its own (a known failure on PostgreSQL)."""
    kind = draw(st.sampled_from(["none", "quoted", "raw-percent", "double-quoted"]))
    if kind == "none":
        return WEBHOOK_PATH
    text = draw(path_text)
    if kind == "quoted":
        segment = quote(text, safe="/.-_~")
    elif kind == "double-quoted":
        segment = quote(quote(text, safe=""), safe="")
    else:
        # Percent signs kept as they are: "%zz", "%4", "%2F" and friends reach the server raw.
        keep = "/.-_~%" + string.ascii_letters + string.digits
        segment = quote(text, safe=keep)
    return f"{WEBHOOK_PATH}/{segment.replace('%00', '%2500')}"


# --- headers ------------------------------------------------------------------------------

# What an HTTP client may put in a header value: visible ASCII, spaces and tabs inside, and
# obs-text (bytes 0x80-0xff, which the server decodes as latin-1).
header_bytes = st.binary(max_size=80).map(
    lambda raw: bytes(b if (0x20 <= b <= 0x7E or b >= 0x80 or b == 9) else 0x2D for b in raw).strip(
        b" \t"
    )
)


@st.composite
def signature_headers(draw: st.DrawFn, body: bytes) -> bytes | None:
    """A valid signature in about half the cases, in every spelling the receiver accepts;
    otherwise missing, empty, the wrong length, the right length but wrong, or not ASCII."""
    good = sign(body, KEY)
    if draw(st.booleans()):
        form = draw(st.sampled_from(["raw", "upper", "compacted", "nbsp"]))
        if form == "compacted":
            good = sign(compact(body), KEY)
        encoded = (good.upper() if form == "upper" else good).encode()
        # A client cannot send spaces around a value (h11 refuses them); a no-break space,
        # latin-1 0xa0, gets through and the receiver's str.strip() removes it.
        return b"\xa0" + encoded + b"\xa0" if form == "nbsp" else encoded
    form = draw(
        st.sampled_from(
            ["missing", "empty", "short", "long", "flipped", "other-secret", "non-ascii", "junk"]
        )
    )
    if form == "missing":
        return None
    if form == "empty":
        return b""
    if form == "short":
        return good[: draw(st.integers(1, 63))].encode()
    if form == "long":
        return (good + draw(st.text("0123456789abcdef", min_size=1, max_size=64))).encode()
    if form == "flipped":
        at = draw(st.integers(0, 63))
        digit = draw(st.sampled_from([c for c in "0123456789abcdef" if c != good[at]]))
        return (good[:at] + digit + good[at + 1 :]).encode()
    if form == "other-secret":
        return sign(
            body, draw(st.binary(min_size=1, max_size=32).filter(lambda k: k != KEY))
        ).encode()
    if form == "non-ascii":
        at = draw(st.integers(0, 63))
        return (
            good[:at].encode()
            + draw(st.sampled_from([b"\xe9", b"\xff", b"\x80"]))
            + good[at + 1 :].encode()
        )
    return draw(header_bytes)


@st.composite
def deliveries(draw: st.DrawFn, body_strategy: st.SearchStrategy[bytes] = bodies) -> Delivery:
    body = draw(body_strategy)
    headers: dict[str, bytes] = {}
    signature = draw(signature_headers(body))
    if signature is not None:
        headers[HEADER] = signature
    content_type = draw(
        st.sampled_from([None, b"application/json", b"text/plain", b"application/json; x=\xe9"])
        | header_bytes
    )
    if content_type is not None:
        headers["content-type"] = content_type
    for name in ("user-agent", "x-forwarded-for", "x-extra"):
        if draw(st.booleans()):
            headers[name] = draw(header_bytes)
    return Delivery(draw(event_type_paths()), body, headers)
