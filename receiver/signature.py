"""Voucherify's webhook signature: lowercase hex HMAC-SHA256 of the body, in constant time.

Verified over the raw bytes first, then over the body with the whitespace outside JSON strings
removed (Voucherify signs the compacted form). Parsed JSON is never re-serialised to verify:
separators, escaping and number formats differ between JSON libraries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

HEADER = "x-voucherify-signature"

_STRING_OR_SPACE = re.compile(rb'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)
_HEX64 = re.compile(rb"^[0-9a-f]{64}$")


def sign(body: bytes, secret: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def compact(body: bytes) -> bytes:
    """Remove JSON whitespace outside string literals, leaving strings byte for byte."""
    return _STRING_OR_SPACE.sub(lambda match: match.group(1) or b"", body)


def verify(body: bytes, signature: str | None, secrets: Sequence[bytes]) -> bool:
    """True when `signature` is the HMAC of `body` (raw or compacted) under any secret."""
    if signature is None:
        return False
    given = signature.strip().lower().encode("ascii", "replace")
    if not _HEX64.match(given):
        return False
    if _matches(body, given, secrets):
        return True
    compacted = compact(body)
    return compacted != body and _matches(compacted, given, secrets)


def _matches(body: bytes, given: bytes, secrets: Sequence[bytes]) -> bool:
    # Every secret is tried, so the time taken does not tell which one matched.
    found = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
        found |= hmac.compare_digest(expected, given)
    return found
