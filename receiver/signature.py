"""Voucherify's webhook signature: lowercase hex HMAC-SHA256 of the body, in constant time.

Verified over the raw bytes first, then over the body with the whitespace outside JSON strings
removed (Voucherify signs the compacted form). Parsed JSON is never re-serialised to verify:
separators, escaping and number formats differ between JSON libraries.

Everything here runs before the sender is authenticated, so each step is linear in the body:
the compaction pattern matches a string literal possessively, to its closing quote or to the
end of the body, and never scans the same bytes twice.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

HEADER = "x-voucherify-signature"

# A string literal (possessive, so an unclosed one ends at the end of the body instead of
# being retried from every later quote), or a run of JSON whitespace.
_STRING_OR_SPACE = re.compile(rb'("(?:[^"\\]++|\\.)*+"?)|[ \t\n\r]++', re.DOTALL)
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sign(body: bytes, secret: bytes) -> str:
    return hmac.digest(secret, body, "sha256").hex()


def compact(body: bytes) -> bytes:
    """Remove JSON whitespace outside string literals, leaving strings byte for byte."""
    return _STRING_OR_SPACE.sub(rb"\1", body)


def parse_header(signature: str | None) -> bytes | None:
    """The header as 64 lowercase hex digits, or None when it cannot be a signature at all.
    Checked before the body is read: a request without one is refused unread."""
    if signature is None or len(signature) > 200:
        return None
    given = signature.strip().lower()
    return given.encode("ascii") if _HEX64.fullmatch(given) else None


def signed_form(body: bytes, given: bytes, secrets: Sequence[bytes]) -> bytes | None:
    """The bytes the signature `given` (from parse_header) was made over: `body` itself or its
    compacted form; None when neither matches under any secret."""
    if _matches(body, given, secrets):
        return body
    compacted = compact(body)
    if compacted != body and _matches(compacted, given, secrets):
        return compacted
    return None


def verify(body: bytes, signature: str | None, secrets: Sequence[bytes]) -> bool:
    """True when `signature` is the HMAC of `body` (raw or compacted) under any secret."""
    given = parse_header(signature)
    return given is not None and signed_form(body, given, secrets) is not None


def _matches(body: bytes, given: bytes, secrets: Sequence[bytes]) -> bool:
    # Every secret is tried, so the time taken does not tell which one matched. The one-shot
    # hmac.digest is OpenSSL's, without the HMAC object hmac.new builds in Python.
    wanted = bytes.fromhex(given.decode("ascii"))
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(hmac.digest(secret, body, "sha256"), wanted)
    return found
