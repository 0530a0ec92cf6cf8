"""Voucherify's signature: HMAC-SHA256 hex over the raw body, or over its compacted form."""

from __future__ import annotations

import json

from receiver.signature import compact, sign, verify
from tests.support.payloads import REDEMPTION, example_bytes

SECRET = b"secret"


def test_signature_over_the_raw_bytes_verifies() -> None:
    body = example_bytes(REDEMPTION)
    assert verify(body, sign(body, SECRET), [SECRET])


def test_signature_over_the_compacted_body_verifies_the_pretty_body() -> None:
    pretty = example_bytes(REDEMPTION)
    assert b"\n  " in pretty
    assert verify(pretty, sign(compact(pretty), SECRET), [SECRET])


def test_compaction_keeps_whitespace_inside_strings() -> None:
    body = b'{ "name" : "Jane  Doe",\n\t"q": "say \\"hi there\\"" ,"n": [1, 2] }'
    assert compact(body) == b'{"name":"Jane  Doe","q":"say \\"hi there\\"","n":[1,2]}'
    assert json.loads(compact(body)) == json.loads(body)


def test_compaction_of_the_examples_equals_compact_json_dumps() -> None:
    body = example_bytes(REDEMPTION)
    expected = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
    assert compact(body) == expected


def test_a_tampered_body_does_not_verify() -> None:
    body = example_bytes(REDEMPTION)
    signature = sign(body, SECRET)
    assert not verify(body.replace(b"7000", b"7001"), signature, [SECRET])


def test_the_wrong_secret_does_not_verify() -> None:
    body = b"{}"
    assert not verify(body, sign(body, b"other"), [SECRET])


def test_any_of_several_secrets_verifies_during_a_rotation() -> None:
    body = b'{"a": 1}'
    secrets = [b"old", b"new"]
    assert verify(body, sign(body, b"old"), secrets)
    assert verify(body, sign(body, b"new"), secrets)
    assert not verify(body, sign(body, b"older"), secrets)


def test_uppercase_hex_and_surrounding_spaces_are_tolerated() -> None:
    body = b"{}"
    assert verify(body, f"  {sign(body, SECRET).upper()} ", [SECRET])


def test_missing_short_or_non_hex_signatures_do_not_verify() -> None:
    body = b"{}"
    good = sign(body, SECRET)
    for bad in (None, "", good[:-1], good + "0", "g" * 64, "é" * 64):
        assert not verify(body, bad, [SECRET]), bad
